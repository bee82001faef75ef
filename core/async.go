package core

import (
	"context"
	"errors"
	"sync/atomic"
	"time"

	"github.com/producerd/producerd/plugins/sdk"
	"github.com/producerd/producerd/remoting"
)

// SendAsync sends m without waiting and calls cb exactly once with the outcome. It
// returns an error (and never calls cb) when m is invalid, the producer is closed, the
// route cannot be found, or ctx ends while waiting for room under MaxAsyncInFlight.
//
// Transport failures (connect, timeout, broken connection) are retried up to AsyncRetries
// times, each retry on a freshly selected queue of another broker with a valid queue id,
// within what is left of SendTimeout; broker error codes are not retried, as in the Java
// client. cb runs on an internal goroutine and must not block for long. ctx bounds only
// the call itself: cancelling it later does not cancel the send.
func (p *Producer) SendAsync(ctx context.Context, m *Message, cb func(*SendResult, error)) error {
	if err := p.begin(); err != nil {
		return err
	}
	pr, err := p.prepare(m)
	if err != nil {
		p.inflight.Done()
		return err
	}
	select {
	case p.asyncSem <- struct{}{}:
	case <-ctx.Done():
		p.inflight.Done()
		return errors.Join(ErrTooManyRequests, ctx.Err())
	}
	start := time.Now()
	pi, err := p.route(ctx, pr.topic)
	if err != nil {
		<-p.asyncSem
		p.inflight.Done()
		return err
	}
	sel, release := p.strategy()
	a := &asyncSend{p: p, pr: pr, pi: pi, sel: sel, release: release, cb: cb, vals: context.WithoutCancel(ctx),
		start: start, deadline: start.Add(p.cfg.SendTimeout), attempts: 1 + p.cfg.AsyncRetries}
	if d, ok := sel.(sdk.Describer); ok && d.Describe().NeedsMessage && !decidesInProcess(sel) {
		// A per-message strategy may answer across a process boundary: deciding on the
		// caller's goroutine would serialize one caller's async sends behind those round
		// trips, so each send decides on its own goroutine and the decisions pipeline.
		go a.try()
		return nil
	}
	a.try()
	return nil
}

// Future is the pending result of SendFuture.
type Future struct {
	done chan struct{}
	res  *SendResult
	err  error
}

// Done is closed when the result is ready.
func (f *Future) Done() <-chan struct{} { return f.done }

// Wait returns the result, or ctx's error if ctx ends first (the send goes on).
func (f *Future) Wait(ctx context.Context) (*SendResult, error) {
	select {
	case <-f.done:
		return f.res, f.err
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// SendFuture is SendAsync returning a Future; an error SendAsync would return is the
// Future's error.
func (p *Producer) SendFuture(ctx context.Context, m *Message) *Future {
	f := &Future{done: make(chan struct{})}
	if err := p.SendAsync(ctx, m, func(r *SendResult, err error) {
		f.res, f.err = r, err
		close(f.done)
	}); err != nil {
		f.err = err
		close(f.done)
	}
	return f
}

// asyncSend is one async send across its attempts.
type asyncSend struct {
	p       *Producer
	pr      *prepared
	pi      *publishInfo
	sel     sdk.Selector
	release func()
	cb      func(*SendResult, error)
	// vals carries the caller's context values (a trace span) to the outcome hooks,
	// without its cancellation: ctx bounds only the admission.
	vals context.Context

	start, deadline time.Time
	attempts        int
	attempt         int
	lastBroker      string
	brokers         []string
}

// asyncAttempt is one attempt of an async send. Exactly one of its answer, its timeout or
// the watchdog's verdict settles it (settled); whatever comes later is ignored.
type asyncAttempt struct {
	a       *asyncSend
	q       sdk.Queue
	addr    string
	t       time.Time
	w       *attemptWatch
	settled atomic.Bool
}

// try starts the next attempt. It runs on the caller's goroutine first and on a fresh
// goroutine for retries, never on a connection's reader; a failure it sees is handled on
// a new goroutine, so the callback never runs inside SendAsync.
func (a *asyncSend) try() {
	now := time.Now()
	remaining := a.deadline.Sub(now)
	if remaining <= 0 {
		go a.finish(nil, &SendError{Topic: a.pr.topic, Attempts: len(a.brokers), Brokers: a.brokers,
			Elapsed: now.Sub(a.start), Timeout: true})
		return
	}
	ctx := context.Background()
	at := &asyncAttempt{a: a, t: now}
	at.q = a.p.selectQueue(ctx, a.sel, a.pi, a.pr, a.lastBroker, a.attempt, remaining)
	a.brokers = append(a.brokers, at.q.Broker)
	addr, err := a.p.brokerAddr(ctx, a.pi, at.q.Broker, a.deadline)
	if err != nil {
		// Never on the caller's goroutine: cb must not run inside SendAsync.
		at.settled.Store(true)
		go a.failed(at, sdk.Outcome{Kind: sdk.OutcomeOther}, err, true)
		return
	}
	at.addr = addr
	// The request may wait for its answer until the budget ends; while another attempt
	// remains, the watchdog abandons it early only if the broker shows no sign of life.
	if t := a.p.cfg.AttemptTimeout; t > 0 && a.attempt < a.attempts-1 && remaining > t {
		at.w = a.p.watchAttempt(addr, at.q.Broker, now, t, at.abandon)
	}
	h := getHeader()
	err = a.p.client.rc.InvokeAsyncUntil(ctx, addr, a.p.header(h, a.pr, at.q), a.deadline, at.onResponse)
	putHeader(h)
	if err != nil {
		if at.settled.CompareAndSwap(false, true) {
			at.w.release()
			o := sdk.Outcome{}
			classifyTransport(&o, err)
			go a.failed(at, o, err, true)
		}
	}
}

// abandon is the watchdog's verdict: the broker showed no sign of life.
func (at *asyncAttempt) abandon(err error) {
	if !at.settled.CompareAndSwap(false, true) {
		return
	}
	at.w.release()
	o := sdk.Outcome{}
	classifyTransport(&o, err)
	go at.a.failed(at, o, err, true)
}

// onResponse runs on the connection's goroutine: it must not block, so anything that
// may (a retry, an urgent outcome report) moves to a new goroutine.
func (at *asyncAttempt) onResponse(resp *remoting.Command, err error) {
	if !at.settled.CompareAndSwap(false, true) {
		return // abandoned by the watchdog; a retry is under way
	}
	a := at.a
	if err != nil {
		// Never wait on the connection's goroutine: a running check settles it.
		at.w.releaseThen(func(dead error) {
			if dead != nil {
				err = dead
			}
			o := sdk.Outcome{}
			classifyTransport(&o, err)
			// A garbled answer still means the broker got the request: no retry.
			go a.failed(at, o, err, !errors.Is(err, remoting.ErrBadFrame))
		})
		return
	}
	at.w.release()
	res, rerr := a.p.result(at.addr, a.pr, at.q, resp)
	o := sdk.Outcome{}
	classifyResponse(&o, resp, rerr)
	if rerr != nil {
		go a.failed(at, o, rerr, false) // broker codes are not retried in async mode
		return
	}
	res.Attempts = a.attempt + 1
	if h := a.p.cfg.Hooks.OnStored; h != nil && res.TraceOn {
		h(a.p.traceRecord(a.pr, res, at.addr, at.t, time.Since(at.t))) // an enqueue: fine on this goroutine
	}
	if time.Since(at.t) > slowOutcome {
		// A slow success may change a latency strategy's decisions, and reporting it
		// can wait for the strategy: keep it off the connection's goroutine.
		go func() { at.report(o); a.finish(res, nil) }()
		return
	}
	at.report(o)
	a.finish(res, nil)
}

// slowOutcome is the latency above which an async success is reported off the
// connection goroutine.
const slowOutcome = 50 * time.Millisecond

func (at *asyncAttempt) report(o sdk.Outcome) {
	o.Topic, o.Broker, o.Queue = at.a.pr.topic, at.q.Broker, at.q.ID
	o.Latency = time.Since(at.t)
	at.a.p.observe(at.a.vals, at.a.sel, at.a.pr.topic, o)
}

// failed reports a failed attempt and retries when allowed.
func (a *asyncSend) failed(at *asyncAttempt, o sdk.Outcome, err error, retryable bool) {
	at.report(o)
	a.lastBroker = at.q.Broker
	a.attempt++
	retryKeyed, err := a.p.keyedRetry(a.pr, at.q, err)
	if retryable && retryKeyed && a.attempt < a.attempts && time.Now().Before(a.deadline) {
		a.try()
		return
	}
	a.finish(nil, &SendError{Topic: a.pr.topic, Attempts: len(a.brokers), Brokers: a.brokers,
		Elapsed: time.Since(a.start), Timeout: !time.Now().Before(a.deadline), Last: a.p.bareCause(err)})
}

func (a *asyncSend) finish(res *SendResult, err error) {
	a.release()
	<-a.p.asyncSem
	defer a.p.inflight.Done()
	if a.cb != nil {
		a.cb(res, err)
	}
}

// decidesInProcess reports whether sel's decisions never wait for another process (a
// built-in or a WebAssembly strategy run by package host: DecidesInProcess). Such a
// decision takes microseconds on the caller's goroutine; a goroutine per send would
// cost more, and a WebAssembly call grows each new goroutine's stack (copystack was 17 %
// of the CPU of async sends through a keyhash module).
func decidesInProcess(sel sdk.Selector) bool {
	d, ok := sel.(interface{ DecidesInProcess() bool })
	return ok && d.DecidesInProcess()
}
