package daemon

import (
	"context"
	"sync"
)

// limiter bounds the messages (and their body bytes) accepted and not yet answered,
// across every API. acquire never waits: over the bound it fails at once, so a client
// sees RESOURCE_EXHAUSTED instead of an unbounded queue. While draining it refuses
// everything with errDraining.
type limiter struct {
	mu                sync.Mutex
	msgs, bytes       int64
	maxMsgs, maxBytes int64
	draining          bool
	// idle is closed while nothing is in flight; replaced when something is accepted.
	idle chan struct{}
}

func newLimiter(maxMsgs int, maxBytes int64) *limiter {
	idle := make(chan struct{})
	close(idle)
	return &limiter{maxMsgs: int64(maxMsgs), maxBytes: maxBytes, idle: idle}
}

// acquire reserves n messages of b bytes in total.
func (l *limiter) acquire(n int, b int64) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	switch {
	case l.draining:
		return errDraining
	case l.msgs+int64(n) > l.maxMsgs:
		return errBusy
	case l.bytes+b > l.maxBytes && l.msgs > 0:
		// A message larger than the byte bound alone still passes when nothing else
		// is in flight (core's max_message_size bounds it), so it cannot starve.
		return errBusy
	}
	if l.msgs == 0 {
		l.idle = make(chan struct{})
	}
	l.msgs += int64(n)
	l.bytes += b
	return nil
}

// release returns what acquire reserved.
func (l *limiter) release(n int, b int64) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.msgs -= int64(n)
	l.bytes -= b
	if l.msgs == 0 {
		close(l.idle)
	}
}

func (l *limiter) load() (msgs, bytes int64) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.msgs, l.bytes
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
}

// setDraining turns refusing new messages on or off.
func (l *limiter) setDraining(on bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.draining = on
}

func (l *limiter) isDraining() bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.draining
}

// wait blocks until nothing is in flight or ctx ends, and returns what remains.
func (l *limiter) wait(ctx context.Context) int64 {
	l.mu.Lock()
	idle := l.idle
	l.mu.Unlock()
	select {
	case <-idle:
	case <-ctx.Done():
	}
	n, _ := l.load()
	return n
}
