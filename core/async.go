package core

import (
	"context"
	"errors"
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
	a := &asyncSend{p: p, pr: pr, pi: pi, sel: sel, release: release, cb: cb,
		start: start, deadline: start.Add(p.cfg.SendTimeout), attempts: 1 + p.cfg.AsyncRetries}
	if d, ok := sel.(sdk.Describer); ok && d.Describe().NeedsMessage {
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

	start, deadline time.Time
	attempts        int
	attempt         int
	lastBroker      string
	brokers         []string

	// per attempt
	q        sdk.Queue
	addr     string
	tAttempt time.Time
	cancel   context.CancelFunc
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
	a.q = a.p.selectQueue(ctx, a.sel, a.pi, a.pr, a.lastBroker, a.attempt, remaining)
	a.brokers = append(a.brokers, a.q.Broker)
	a.tAttempt = now
	bctx, bcancel := context.WithDeadline(ctx, a.deadline)
	addr, err := a.p.brokerAddr(bctx, a.pi, a.q.Broker)
	bcancel()
	if err != nil {
		// Never on the caller's goroutine: cb must not run inside SendAsync.
		go a.failed(sdk.Outcome{Kind: sdk.OutcomeOther}, err, true)
		return
	}
	a.addr = addr
	attemptDeadline := a.deadline
	if t := a.p.cfg.AttemptTimeout; t > 0 && a.attempt < a.attempts-1 && remaining > t {
		attemptDeadline = now.Add(t)
	}
	var actx context.Context
	actx, a.cancel = context.WithDeadline(ctx, attemptDeadline)
	req := remoting.NewRequest(a.pr.reqCode, a.p.header(a.pr, a.q), a.pr.body)
	if err := a.p.client.rc.InvokeAsync(actx, addr, req, a.onResponse); err != nil {
		a.cancel()
		o := sdk.Outcome{}
		classifyTransport(&o, err)
		go a.failed(o, err, true)
	}
}

// onResponse runs on the connection's goroutine: it must not block, so anything that
// may (a retry, an urgent outcome report) moves to a new goroutine.
func (a *asyncSend) onResponse(resp *remoting.Command, err error) {
	a.cancel()
	if err != nil {
		o := sdk.Outcome{}
		classifyTransport(&o, err)
		go a.failed(o, err, true)
		return
	}
	res, rerr := a.p.result(a.addr, a.pr, a.q, resp)
	o := sdk.Outcome{}
	classifyResponse(&o, resp, rerr)
	if rerr != nil {
		go a.failed(o, rerr, false) // broker codes are not retried in async mode
		return
	}
	res.Attempts = a.attempt + 1
	if time.Since(a.tAttempt) > slowOutcome {
		// A slow success may change a latency strategy's decisions, and reporting it
		// can wait for the strategy: keep it off the connection's goroutine.
		go func() { a.report(o); a.finish(res, nil) }()
		return
	}
	a.report(o)
	a.finish(res, nil)
}

// slowOutcome is the latency above which an async success is reported off the
// connection goroutine.
const slowOutcome = 50 * time.Millisecond

func (a *asyncSend) report(o sdk.Outcome) {
	o.Topic, o.Broker, o.Queue = a.pr.topic, a.q.Broker, a.q.ID
	o.Latency = time.Since(a.tAttempt)
	a.p.observe(context.Background(), a.sel, a.pr.topic, o)
}

// failed reports a failed attempt and retries when allowed.
func (a *asyncSend) failed(o sdk.Outcome, err error, retryable bool) {
	a.report(o)
	a.lastBroker = a.q.Broker
	a.attempt++
	retryKeyed, err := a.p.keyedRetry(a.pr, a.q, err)
	if retryable && retryKeyed && a.attempt < a.attempts && time.Now().Before(a.deadline) {
		a.try()
		return
	}
	a.finish(nil, &SendError{Topic: a.pr.topic, Attempts: len(a.brokers), Brokers: a.brokers,
		Elapsed: time.Since(a.start), Timeout: !time.Now().Before(a.deadline), Last: err})
}

func (a *asyncSend) finish(res *SendResult, err error) {
	a.release()
	<-a.p.asyncSem
	defer a.p.inflight.Done()
	if a.cb != nil {
		a.cb(res, err)
	}
}
