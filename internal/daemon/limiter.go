package daemon

import (
	"context"
	"sync"

	"github.com/producerd/producerd/core"
)

// limiter bounds the messages (and their bytes) accepted and not yet answered, across
// every API. acquire never waits: over the bound it fails at once, so a unary client
// sees RESOURCE_EXHAUSTED instead of an unbounded queue. acquireWait waits for room
// instead: a stream stops reading while it waits, and gRPC flow control holds the
// client back. While draining both refuse everything with errDraining.
//
// Bytes may also be reserved without a message (reserve), for request bodies being
// read before they become messages.
type limiter struct {
	mu                sync.Mutex
	msgs, bytes       int64
	maxMsgs, maxBytes int64
	draining          bool
	// idle, made by wait only while messages are in flight, is closed when the last
	// one is released: a send does not make a channel.
	idle chan struct{}
	// changed is closed (and replaced) when room may have appeared or draining
	// started, if someone waits for it (waiters > 0).
	changed chan struct{}
	waiters int
	// admitted counts the takes of messages and overlapped those made while other
	// messages were in flight (Requests).
	admitted, overlapped uint64
}

func newLimiter(maxMsgs int, maxBytes int64) *limiter {
	return &limiter{maxMsgs: int64(maxMsgs), maxBytes: maxBytes, changed: make(chan struct{})}
}

// admit reports why n messages of b bytes cannot be taken now (nil: they can); l.mu
// is held.
func (l *limiter) admit(n int, b int64) error {
	switch {
	case l.draining:
		return errDraining
	case l.msgs+int64(n) > l.maxMsgs:
		return errBusy
	case l.bytes+b > l.maxBytes && (l.msgs > 0 || l.bytes > 0):
		// A message larger than the byte bound alone still passes when nothing else
		// is in flight (max_message_size bounds it), so it cannot starve.
		return errBusy
	}
	return nil
}

// take records n messages of b bytes; l.mu is held.
func (l *limiter) take(n int, b int64) {
	if n > 0 {
		l.admitted++
		if l.msgs > 0 {
			l.overlapped++
		}
	}
	l.msgs += int64(n)
	l.bytes += b
}

// acquire reserves n messages of b bytes in total, or fails at once.
func (l *limiter) acquire(n int, b int64) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if err := l.admit(n, b); err != nil {
		return err
	}
	l.take(n, b)
	return nil
}

// acquireWait reserves n messages of b bytes, waiting for room until ctx ends. It
// fails at once with errDraining while draining (also when draining starts while it
// waits), and with a batch that can never fit (n > max messages).
func (l *limiter) acquireWait(ctx context.Context, n int, b int64) error {
	l.mu.Lock()
	for {
		err := l.admit(n, b)
		if err == nil {
			l.take(n, b)
			l.mu.Unlock()
			return nil
		}
		if err == errDraining || int64(n) > l.maxMsgs {
			l.mu.Unlock()
			return err
		}
		ch := l.changed
		l.waiters++
		l.mu.Unlock()
		select {
		case <-ch:
		case <-ctx.Done():
			l.mu.Lock()
			l.waiters--
			l.mu.Unlock()
			return ctx.Err()
		}
		l.mu.Lock()
		l.waiters--
	}
}

// reserve charges b bytes without a message (a request body being read); it fails
// at once over the bound.
func (l *limiter) reserve(b int64) error { return l.acquire(0, b) }

// charge counts b bytes that are in memory already (a queued stream ack) without
// admission: they must be counted, they cannot be refused.
func (l *limiter) charge(b int64) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.bytes += b
}

// release returns what acquire reserved.
func (l *limiter) release(n int, b int64) {
	if n == 0 && b == 0 {
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	l.msgs -= int64(n)
	l.bytes -= b
	if l.msgs == 0 && l.idle != nil {
		close(l.idle)
		l.idle = nil
	}
	l.signal()
}

// signal wakes the waiters of acquireWait; l.mu is held.
func (l *limiter) signal() {
	if l.waiters > 0 {
		close(l.changed)
		l.changed = make(chan struct{})
	}
}

func (l *limiter) load() (msgs, bytes int64) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.msgs, l.bytes
}

// requests returns the takes of messages so far and how many were made while others
// were in flight.
func (l *limiter) requests() (admitted, overlapped uint64) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.admitted, l.overlapped
}

func (l *limiter) bounds() (msgs, bytes int64) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.maxMsgs, l.maxBytes
}

// setBounds changes the bounds (reload); messages already in flight stay.
func (l *limiter) setBounds(maxMsgs int, maxBytes int64) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.maxMsgs, l.maxBytes = int64(maxMsgs), maxBytes
	l.signal()
}

// setDraining turns refusing new messages on or off.
func (l *limiter) setDraining(on bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.draining = on
	l.signal()
}

func (l *limiter) isDraining() bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.draining
}

// wait blocks until no message is in flight or ctx ends, and returns what remains.
func (l *limiter) wait(ctx context.Context) int64 {
	l.mu.Lock()
	if l.msgs == 0 {
		l.mu.Unlock()
		return 0
	}
	if l.idle == nil {
		l.idle = make(chan struct{})
	}
	idle := l.idle
	l.mu.Unlock()
	select {
	case <-idle:
	case <-ctx.Done():
	}
	n, _ := l.load()
	return n
}

// messageSize is what a message built as a core.Message (the v2 listener's) charges to
// the in-flight bytes: the whole message, body, topic, tags, keys and properties (user
// and system), as the daemon's own APIs charge the encoded producerd.v1 message (unary:
// proto.Size, stream: the frame), so that small bodies with large properties cannot
// pass the byte bound.
func messageSize(m *core.Message) int64 {
	n := len(m.Topic) + len(m.Body) + len(m.Tags) + len(m.ShardingKey) + len(m.UniqKey)
	for _, k := range m.Keys {
		n += len(k) + 1
	}
	for k, v := range m.Properties {
		n += len(k) + len(v) + 2
	}
	for k, v := range m.SystemProperties {
		n += len(k) + len(v) + 2
	}
	return int64(n)
}
