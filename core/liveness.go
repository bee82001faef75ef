package core

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/producerd/producerd/remoting"
)

// The attempt cap is a liveness check, not a deadline (DESIGN.md "Timeout policy"). An
// attempt that has another attempt after it waits for its answer until the send's budget
// ends, as in Java, but every AttemptTimeout the broker must show a sign of life: any bytes
// read from its connection since the last check, or an answer to a HEART_BEAT probe sent on
// the same connection. The broker serves heartbeats on another executor than sends, so a
// broker that is slow to store answers the probe at once, while a stopped, hung or
// partitioned one does not. Only when the probe goes unanswered is the attempt abandoned
// and the send retried on another broker.

// probeWindow is how long before each check the probe is sent, and so how long it may take
// to answer: a quarter of the cap, at least 50ms and at most 500ms.
func probeWindow(cap time.Duration) time.Duration {
	return min(max(cap/4, 50*time.Millisecond), 500*time.Millisecond, cap)
}

// ErrBrokerSilent means an attempt was abandoned because its broker showed no sign of life
// within the attempt cap (no answer, nothing read from the connection, the heartbeat probe
// unanswered). It matches remoting.ErrTimeout.
var ErrBrokerSilent = fmt.Errorf("%w: core: broker showed no sign of life", remoting.ErrTimeout)

// alive looks for a sign of life from addr since the given time: bytes read, else an answer
// (any code) to a HEART_BEAT probe that must come by deadline.
func (p *Producer) alive(ctx context.Context, addr string, since, deadline time.Time) (bool, error) {
	rc := p.client.rc
	if rc.ReadSince(addr, since) {
		return true, nil
	}
	err := p.client.probe(ctx, addr, since, deadline)
	if err == nil || rc.ReadSince(addr, since) {
		return true, nil
	}
	if errors.Is(err, context.Canceled) {
		return true, err // the attempt ended: no verdict
	}
	return false, err
}

// probeCall is one liveness probe of an address, shared by every attempt that needs one
// meanwhile: a hung broker with many sends waiting gets one probe per window, not one
// per send.
type probeCall struct {
	sent time.Time
	done chan struct{}
	err  error
}

// probe sends a HEART_BEAT to addr, or joins one sent at or after since, and waits for its
// answer until deadline. nil means the broker answered (whatever the code).
func (c *Client) probe(ctx context.Context, addr string, since, deadline time.Time) error {
	c.mu.Lock()
	pc := c.probes[addr]
	if pc == nil || pc.sent.Before(since) {
		if c.closed {
			c.mu.Unlock()
			return ErrClosed
		}
		pc = &probeCall{sent: time.Now(), done: make(chan struct{})}
		c.probes[addr] = pc
		c.wg.Add(1)
		go c.runProbe(addr, pc, deadline)
	}
	c.mu.Unlock()
	t := time.NewTimer(time.Until(deadline))
	defer t.Stop()
	select {
	case <-pc.done:
		return pc.err
	case <-ctx.Done():
		return fmt.Errorf("core: liveness probe of %s: %w", addr, context.Canceled)
	case <-t.C:
		return fmt.Errorf("%w: %s: no answer to the heartbeat probe by %v", remoting.ErrTimeout, addr, deadline.Format("15:04:05.000"))
	}
}

func (c *Client) runProbe(addr string, pc *probeCall, deadline time.Time) {
	defer c.wg.Done()
	ctx, cancel := context.WithDeadline(context.Background(), deadline)
	defer cancel()
	c.cancelOnStop(ctx, cancel)
	_, pc.err = c.rc.InvokeSync(ctx, addr, remoting.NewRequest(remoting.HeartBeat, nil, c.heartbeatBody()))
	close(pc.done)
	c.mu.Lock()
	if c.probes[addr] == pc && pc.err != nil {
		delete(c.probes, addr) // a failed probe proves nothing to later windows
	}
	c.mu.Unlock()
}

// attemptWatch is the liveness check of one attempt. It costs no goroutine and no
// allocation until its first check is due (most attempts are answered long before): a
// pooled AfterFunc timer runs the check. A verdict of death is a receive on abort, which
// a sync attempt's InvokeSyncUntil selects on, and a call of giveUp (async attempts).
type attemptWatch struct {
	timer *time.Timer   // runs fire; reused with the pooled value
	abort chan struct{} // capacity 1: the attempt gives up on a receive
	idle  chan struct{} // capacity 1: a check ended after stop began

	mu           sync.Mutex
	p            *Producer
	addr, broker string
	since, check time.Time
	fireAt       time.Time // a fire before this is stale (a previous use) and ignored
	cap, window  time.Duration
	giveUp       func(error)        // called once with the verdict of death, or nil
	armed        bool               // between watchAttempt and stop/release
	firing       bool               // a check is running
	orphan       bool               // released while checking: the check pools it
	then         func(dead error)   // run by an orphaned check with its verdict
	cancel       context.CancelFunc // ends the running check's probe
	dead         error
}

// attemptWatches pools watches with their timers; New is set in init (fire refers back
// to the pool).
var attemptWatches sync.Pool

func init() {
	attemptWatches.New = func() any {
		w := &attemptWatch{abort: make(chan struct{}, 1), idle: make(chan struct{}, 1)}
		w.timer = time.AfterFunc(time.Hour, w.fire)
		w.timer.Stop()
		return w
	}
}

// watchAttempt starts checking addr's life for an attempt whose request is sent at sent;
// giveUp, when not nil, is called (once, on a timer goroutine) when the broker is judged
// dead.
func (p *Producer) watchAttempt(addr, broker string, sent time.Time, cap time.Duration, giveUp func(error)) *attemptWatch {
	w := attemptWatches.Get().(*attemptWatch)
	w.mu.Lock()
	w.p, w.addr, w.broker, w.cap, w.window, w.giveUp = p, addr, broker, cap, probeWindow(cap), giveUp
	w.since, w.check = sent, sent.Add(cap)
	w.fireAt = w.check.Add(-w.window)
	w.armed, w.dead = true, nil
	w.timer.Reset(time.Until(w.fireAt))
	w.mu.Unlock()
	return w
}

// fire runs one check on the timer's goroutine and arms the next one.
func (w *attemptWatch) fire() {
	w.mu.Lock()
	if !w.armed || w.firing || time.Now().Before(w.fireAt) {
		w.mu.Unlock() // stopped, already checking, or a stale fire from a previous use
		return
	}
	w.firing = true
	ctx, cancel := context.WithCancel(context.Background())
	w.cancel = cancel
	p, addr, broker, since, check := w.p, w.addr, w.broker, w.since, w.check
	w.mu.Unlock()

	alive, err := p.alive(ctx, addr, since, check)
	cancel()

	w.mu.Lock()
	w.firing, w.cancel = false, nil
	var giveUp func(error)
	var dead error
	if !alive {
		// Recorded even if the attempt ended meanwhile: the probe's timeout may have
		// closed the silent connection, failing the attempt first.
		w.dead = fmt.Errorf("%w: %s (%s): no answer, nothing read for %v and a heartbeat probe unanswered: %w",
			ErrBrokerSilent, broker, addr, time.Since(since).Round(time.Millisecond), err)
		select {
		case w.abort <- struct{}{}:
		default:
		}
		if w.armed {
			giveUp, dead = w.giveUp, w.dead
		}
	}
	switch {
	case w.orphan: // released while checking: nobody waits; then gets the verdict
		then, verdict := w.then, w.dead
		w.mu.Unlock()
		w.recycle()
		if then != nil {
			then(verdict)
		}
		return
	case !w.armed:
		w.idle <- struct{}{} // stop is waiting for this check
	case alive:
		w.since, w.check = check.Add(-w.window), check.Add(w.cap)
		w.fireAt = w.check.Add(-w.window)
		w.timer.Reset(time.Until(w.fireAt))
	}
	w.mu.Unlock()
	if giveUp != nil {
		giveUp(dead) // may release w: w is not touched after this
	}
}

// stop ends the watch, waits for a running check, returns the value to the pool and
// returns why the broker was judged dead, or nil. A nil w is a watch that never started.
//
// With failed set (the attempt ended in an error) a running check is not cancelled but
// waited for (at most its probe window): the error may be the probe's own doing (its
// timeout closes a silent connection), and the verdict must decide, not the race.
func (w *attemptWatch) stop(failed bool) error {
	if w == nil {
		return nil
	}
	w.mu.Lock()
	w.armed = false
	w.timer.Stop()
	running := w.firing
	if running && !failed {
		w.cancel()
	}
	w.mu.Unlock()
	if running {
		<-w.idle
	}
	w.mu.Lock()
	dead := w.dead
	w.mu.Unlock()
	w.recycle()
	return dead
}

// release ends the watch without waiting (on a connection's goroutine) and returns the
// verdict so far. A check still running returns the watch to the pool when it ends.
func (w *attemptWatch) release() error {
	if w == nil {
		return nil
	}
	w.mu.Lock()
	w.armed = false
	w.timer.Stop()
	dead := w.dead
	if w.firing {
		w.cancel()
		w.orphan = true
		w.mu.Unlock()
		return dead
	}
	w.mu.Unlock()
	w.recycle()
	return dead
}

// releaseThen is release for a failed attempt on a connection's goroutine: when a check
// is running, it is not cancelled, and then runs with its verdict when it ends (on the
// check's goroutine), as stop(true) waits for it; otherwise then runs at once with the
// verdict so far. then must not block.
func (w *attemptWatch) releaseThen(then func(dead error)) {
	if w == nil {
		then(nil)
		return
	}
	w.mu.Lock()
	w.armed = false
	w.timer.Stop()
	if w.firing {
		w.orphan, w.then = true, then
		w.mu.Unlock()
		return
	}
	dead := w.dead
	w.mu.Unlock()
	w.recycle()
	then(dead)
}

// recycle clears the watch and returns it to the pool; nothing may use it afterwards.
func (w *attemptWatch) recycle() {
	w.mu.Lock()
	w.p, w.dead, w.giveUp, w.orphan, w.then = nil, nil, nil, false, nil
	w.mu.Unlock()
	select {
	case <-w.abort:
	default:
	}
	attemptWatches.Put(w)
}

// abortC is the channel the attempt selects on; nil (never ready) for a nil watch.
func (w *attemptWatch) abortC() <-chan struct{} {
	if w == nil {
		return nil
	}
	return w.abort
}
