//go:build !wasip1

package pluginclient

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/producerd/producerd/internal/strategywire"
	"github.com/producerd/producerd/internal/strategywire/strategypb"
	"github.com/producerd/producerd/plugins/sdk"
)

// Session is the host side of the one long-lived stream to a plugin. It implements the
// sdk contract (Selector, Observer, HealthReporter, HealthSeeder, Describer) on top of
// the stream, so that a host can call it like an in-process strategy:
//
//   - Select sends the decision and waits for its answer (or until ctx is done). Many
//     callers are pipelined: a sender goroutine packs every waiting request into one
//     stream message, answers are matched by id, and while two such messages are
//     unanswered new requests wait and leave together with the next answer
//     (self-clocked batching: a lone caller never waits, many callers get large
//     batches). The queue list crosses only when (topic, RouteVersion) is new to the
//     plugin. On any failure Select returns -1 and an error wrapping a sentinel
//     (ErrSessionClosed, ErrOverloaded, strategywire.ErrDecisionTimeout,
//     strategywire.ErrSelectFailed, ...); the caller falls back. The index is not
//     range-checked.
//   - DecisionTimeout measures the plugin's lateness, not the host's own queueing: an
//     answer is late when the plugin took longer than DecisionTimeout between receiving
//     the request and sending its answer (it stamps both with the machine's clock),
//     however long the request and the answer spent between the two processes, which on
//     a saturated machine is the scheduling of busy processes (measured: 5-17 ms on 2
//     cores at 30k msgs/s, while the plugin answered in 0.1 ms). A request without an
//     answer fails DecisionTimeout after it was handed to the stream plus twice the
//     largest such transit (or delay of the session's own timer) of the last one to two
//     seconds (at least DecisionTimeout, at most a second): on a machine that is not
//     saturated, a silent plugin costs twice DecisionTimeout. A request still waiting
//     to be sent fails the same way, from when it was made.
//   - Observe batches outcomes and returns without waiting; they leave after at most
//     FlushInterval or FlushOutcomes outcomes. An urgent outcome (Kind.Failed(), or OK
//     and slower than the Descriptor's UrgentLatency) is sent at once and Observe waits,
//     at most UrgentTimeout, until the plugin has applied it and published its health
//     table, so that a selection made after Observe returns sees its effect.
//   - Health returns the last table the plugin published.
//
// A Session is safe for concurrent use. After the stream breaks, every call fails fast
// with ErrSessionClosed and Done is closed.
type Session struct {
	info   Info
	opts   SessionOptions
	stream strategypb.Strategy_SessionClient
	cancel context.CancelFunc

	mu       sync.Mutex
	closed   bool
	nextID   uint64
	calls    map[uint64]*call
	sels     []*strategypb.Select
	routes   []*strategypb.Route
	sent     map[string]*sentRoutes // mirror of the plugin's route cache
	outcomes outcomeBatch
	seed     *strategypb.HealthTable
	syncReq  uint64
	nextSync uint64
	upsSent  uint64        // Up messages carrying selections
	upsDone  uint64        // of those, answered completely (Down.answered)
	expiries []expiry      // FIFO, deadline order; the last len(sels) are not sent yet
	sweep    chan struct{} // the expiry queue became non-empty

	// lagCur and lagPrev are the largest transits (ns) of a request and its answer
	// between the processes (the round trip less the plugin's own time), in the
	// current and the previous second (lagSec). Guarded by mu.
	lagCur, lagPrev int64
	lagSec          int64
	// upSentAt is when each of the last Up messages with selections was handed to
	// the stream (unix ns), by number (upsSent) modulo its length.
	upSentAt [2 * maxUpsInFlight]int64

	wake chan struct{} // something must be sent now
	arm  chan struct{} // an outcome entered an empty batch: start the flush timer

	acked atomic.Uint64
	ackMu sync.Mutex
	ackCh chan struct{} // closed and replaced on every ack

	health atomic.Pointer[[]sdk.BrokerHealth]

	done    chan struct{}
	errOnce sync.Once
	err     error
	wg      sync.WaitGroup

	timeouts atomic.Uint64
	dropped  atomic.Uint64
	lastRecv atomic.Int64
}

// sentRoutes mirrors a plugin's route cache: both sides apply the same definitions in
// the same order with the same eviction rule, so the host knows what the plugin holds.
type sentRoutes = strategywire.TopicRoutes[struct{}]

type call struct {
	ch chan callResult
}

// expiry is a decision's deadline. Every decision of a session has the same timeout,
// and requests leave in the order they were made, so expiries are queued in deadline
// order and one sweeper times them out: no timer per decision. A request's deadline
// runs from when it was made until it is sent, then from when it was sent.
type expiry struct {
	id       uint64
	deadline int64 // unix ns
}

type callResult struct {
	idx int32
	err error
}

// maxUpsInFlight bounds the Up messages with selections that the plugin has not
// answered completely yet.
const maxUpsInFlight = 2

var callPool = sync.Pool{New: func() any { return &call{ch: make(chan callResult, 1)} }}

var (
	_ sdk.Selector       = (*Session)(nil)
	_ sdk.Observer       = (*Session)(nil)
	_ sdk.HealthReporter = (*Session)(nil)
	_ sdk.HealthSeeder   = (*Session)(nil)
	_ sdk.Describer      = (*Session)(nil)
)

func newSession(stream strategypb.Strategy_SessionClient, cancel context.CancelFunc, info Info, opts SessionOptions) *Session {
	s := &Session{
		info:   info,
		opts:   opts,
		stream: stream,
		cancel: cancel,
		calls:  make(map[uint64]*call),
		sent:   make(map[string]*sentRoutes),
		wake:   make(chan struct{}, 1),
		arm:    make(chan struct{}, 1),
		sweep:  make(chan struct{}, 1),
		ackCh:  make(chan struct{}),
		done:   make(chan struct{}),
	}
	s.lastRecv.Store(time.Now().UnixNano())
	s.wg.Add(3)
	go s.sender()
	go s.receiver()
	go s.sweeper()
	return s
}

// Info returns what the plugin declared in Describe.
func (s *Session) Info() Info { return s.info }

// Describe implements sdk.Describer with the plugin's declared sdk.Descriptor.
func (s *Session) Describe() sdk.Descriptor { return s.info.Descriptor }

// Select implements sdk.Selector; see the type's documentation.
func (s *Session) Select(ctx context.Context, sel *sdk.Selection) (int, error) {
	if len(sel.Queues) == 0 {
		return -1, sdk.ErrNoQueues
	}
	if err := ctx.Err(); err != nil {
		return -1, err
	}
	c := callPool.Get().(*call)
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		callPool.Put(c)
		return -1, ErrSessionClosed
	}
	if len(s.calls) >= s.opts.MaxPending {
		s.mu.Unlock()
		callPool.Put(c)
		return -1, ErrOverloaded
	}
	s.nextID++
	id := s.nextID
	s.calls[id] = c
	if len(s.expiries) == 0 {
		s.notify(s.sweep)
	}
	s.expiries = append(s.expiries, expiry{id: id, deadline: time.Now().UnixNano() + int64(s.opts.DecisionTimeout)})
	tr := s.sent[sel.Topic]
	if tr == nil {
		if len(s.sent) >= strategywire.RouteTopicsKept {
			clear(s.sent) // the plugin does the same when it sees this definition
		}
		tr = &sentRoutes{}
		s.sent[sel.Topic] = tr
	}
	if _, ok := tr.Get(sel.RouteVersion); !ok {
		tr.Put(sel.RouteVersion, struct{}{})
		s.routes = append(s.routes, routeToPB(sel.Topic, sel.RouteVersion, sel.Queues))
	}
	s.sels = append(s.sels, selectToPB(id, sel, s.opts.DecisionTimeout))
	s.mu.Unlock()
	s.notify(s.wake)

	// The sweeper delivers strategywire.ErrDecisionTimeout; only cancellation, and the
	// end of the send's budget (sel.Remaining: ctx need not carry it), are handled here.
	// The sweeper may answer as late as the decision timeout plus its transit grace, so
	// only a send with less left than that needs a timer of its own (rarely: a retry
	// near the end of its budget).
	var budget <-chan time.Time
	if sel.Remaining > 0 && sel.Remaining < s.opts.DecisionTimeout+maxLagGrace+s.sweepTick() {
		t := time.NewTimer(sel.Remaining)
		defer t.Stop()
		budget = t.C
	}
	var r callResult
	if done := ctx.Done(); done == nil && budget == nil {
		r = <-c.ch
	} else {
		var err error
		select {
		case r = <-c.ch:
		case <-done:
			err = ctx.Err()
		case <-budget:
			err = context.DeadlineExceeded
		}
		if err != nil {
			s.mu.Lock()
			_, mine := s.calls[id]
			delete(s.calls, id)
			s.mu.Unlock()
			if !mine {
				<-c.ch // an answer raced the cancellation: drain it before reuse
			}
			callPool.Put(c)
			return -1, err
		}
	}
	callPool.Put(c)
	if r.err != nil {
		return -1, r.err
	}
	return int(r.idx), nil
}

// sweeper times out decisions whose deadline passed (see the type's documentation).
// It ticks only while decisions are pending, at a tenth of the decision timeout (at
// least every millisecond).
func (s *Session) sweeper() {
	defer s.wg.Done()
	tick := s.sweepTick()
	t := time.NewTimer(time.Hour)
	t.Stop()
	var due int64 // when t should fire
	for {
		select {
		case <-s.sweep:
			t.Reset(tick)
			due = time.Now().UnixNano() + int64(tick)
			continue
		case <-t.C:
		case <-s.done:
			return
		}
		now := time.Now().UnixNano()
		s.mu.Lock()
		// A sweep that runs late measures how long this process itself did not get to
		// run: its receiver was held up as long, so that counts as transit too.
		s.rotateLag(now)
		s.lagCur = max(s.lagCur, now-due)
		grace := int64(s.lagGrace(now))
		n := 0
		for n < len(s.expiries) {
			e := &s.expiries[n]
			if now <= e.deadline+grace {
				break // deadlines only grow along the queue
			}
			if c, ok := s.calls[e.id]; ok {
				delete(s.calls, e.id)
				s.timeouts.Add(1)
				c.ch <- callResult{idx: -1, err: strategywire.ErrDecisionTimeout}
			}
			n++
		}
		if n > 0 {
			s.expiries = append(s.expiries[:0], s.expiries[n:]...)
			if unsent := min(len(s.expiries), len(s.sels)); unsent < len(s.sels) {
				// Requests that timed out before they were sent do not go to the plugin:
				// they were the oldest waiting.
				drop := len(s.sels) - unsent
				clear(s.sels[:drop])
				s.sels = append(s.sels[:0], s.sels[drop:]...)
			}
		}
		more := len(s.expiries) > 0
		s.mu.Unlock()
		if more {
			t.Reset(tick)
			due = now + int64(tick)
		}
	}
}

// sweepTick is the sweeper's period while decisions are pending.
func (s *Session) sweepTick() time.Duration { return max(s.opts.DecisionTimeout/10, time.Millisecond) }

// lagGrace is how long past its deadline a request without an answer is kept: twice
// the largest transit between the processes in the last one to two seconds, at least
// DecisionTimeout and at most maxLagGrace. s.mu is held.
func (s *Session) lagGrace(now int64) time.Duration {
	s.rotateLag(now)
	return min(max(2*time.Duration(max(s.lagCur, s.lagPrev)), s.opts.DecisionTimeout), maxLagGrace)
}

// rotateLag starts a new second of lag samples when now is in a later one. s.mu is held.
func (s *Session) rotateLag(now int64) {
	switch sec := now / int64(time.Second); {
	case sec == s.lagSec+1:
		s.lagPrev, s.lagCur, s.lagSec = s.lagCur, 0, sec
	case sec > s.lagSec:
		s.lagPrev, s.lagCur, s.lagSec = 0, 0, sec
	}
}

// noteTransit records the transit of the requests of Up message number up, whose
// answer was read at now, the plugin having taken took of it. Answers to requests that
// already timed out count too: they tell how late to expect the next. s.mu is held.
func (s *Session) noteTransit(now int64, up uint64, took int64) {
	if up == 0 || up > s.upsSent || s.upsSent-up >= uint64(len(s.upSentAt)) {
		return
	}
	s.rotateLag(now)
	s.lagCur = max(s.lagCur, now-s.upSentAt[up%uint64(len(s.upSentAt))]-took)
}

// errMalformedAnswer fails a request whose id came without an index.
var errMalformedAnswer = fmt.Errorf("%w: malformed answer", strategywire.ErrRemote)

// maxLagGrace bounds the transit allowance of a request without an answer.
const maxLagGrace = time.Second

// Observe implements sdk.Observer; see the type's documentation. Outcomes are dropped when
// the plugin does not observe, when the session is closed, or when
// MaxPendingOutcomes are already waiting (counted in Stats().Dropped).
func (s *Session) Observe(ctx context.Context, outcomes []sdk.Outcome) {
	if len(outcomes) == 0 || !s.info.Features.Observer {
		return
	}
	urgent := false
	ul := s.info.Descriptor.UrgentLatency
	for i := range outcomes {
		if o := &outcomes[i]; o.Kind.Failed() || (ul > 0 && o.Latency > ul) {
			urgent = true
			break
		}
	}
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return
	}
	n := s.outcomes.len()
	if n+len(outcomes) > s.opts.MaxPendingOutcomes {
		s.mu.Unlock()
		s.dropped.Add(uint64(len(outcomes)))
		return
	}
	for i := range outcomes {
		s.outcomes.add(&outcomes[i])
	}
	full := s.outcomes.len() >= s.opts.FlushOutcomes
	var id uint64
	if urgent {
		s.nextSync++
		id = s.nextSync
		s.syncReq = id
	}
	s.mu.Unlock()
	switch {
	case urgent || full:
		s.notify(s.wake)
	case n == 0:
		s.notify(s.arm)
	}
	if urgent {
		_ = s.waitAck(ctx, id, s.opts.UrgentTimeout)
	}
}

// Health implements HealthReporter: the last table the plugin published (nil before
// the first one). The caller may modify the returned slice.
func (s *Session) Health() []sdk.BrokerHealth {
	p := s.health.Load()
	if p == nil {
		return nil
	}
	return append([]sdk.BrokerHealth(nil), (*p)...)
}

// Seed implements HealthSeeder: it sends rows to the plugin and waits, at most
// SyncTimeout, until the plugin applied them. It does nothing when the plugin does not
// declare sdk.HealthSeeder.
func (s *Session) Seed(rows []sdk.BrokerHealth) {
	if !s.info.Features.HealthSeeder {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), s.opts.SyncTimeout)
	defer cancel()
	_ = s.sync(ctx, strategywire.HealthToPB(rows))
}

// Sync waits until the plugin has applied everything sent before it (outcomes, seeds)
// and answered; it is the session's health check. It fails with ctx's error,
// ErrSessionClosed, or strategywire.ErrDecisionTimeout after SyncTimeout.
func (s *Session) Sync(ctx context.Context) error {
	return s.sync(ctx, nil)
}

func (s *Session) sync(ctx context.Context, seed *strategypb.HealthTable) error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return ErrSessionClosed
	}
	if seed != nil {
		s.seed = seed
	}
	s.nextSync++
	id := s.nextSync
	s.syncReq = id
	s.mu.Unlock()
	s.notify(s.wake)
	return s.waitAck(ctx, id, s.opts.SyncTimeout)
}

func (s *Session) waitAck(ctx context.Context, id uint64, timeout time.Duration) error {
	if s.acked.Load() >= id {
		return nil
	}
	t := time.NewTimer(timeout)
	defer t.Stop()
	for {
		s.ackMu.Lock()
		ch := s.ackCh
		s.ackMu.Unlock()
		if s.acked.Load() >= id {
			return nil
		}
		select {
		case <-ch:
		case <-t.C:
			return strategywire.ErrDecisionTimeout
		case <-ctx.Done():
			return ctx.Err()
		case <-s.done:
			return ErrSessionClosed
		}
	}
}

// SessionStats are a Session's counters.
type SessionStats struct {
	// Pending is the number of decisions waiting for an answer.
	Pending int
	// Timeouts counts decisions that got no answer within DecisionTimeout.
	Timeouts uint64
	// Dropped counts outcomes dropped because MaxPendingOutcomes were waiting.
	Dropped uint64
	// LastReceive is when the plugin last sent anything.
	LastReceive time.Time
}

// Stats returns the session's counters.
func (s *Session) Stats() SessionStats {
	s.mu.Lock()
	n := len(s.calls)
	s.mu.Unlock()
	return SessionStats{
		Pending:     n,
		Timeouts:    s.timeouts.Load(),
		Dropped:     s.dropped.Load(),
		LastReceive: time.Unix(0, s.lastRecv.Load()),
	}
}

// Done is closed when the session has ended.
func (s *Session) Done() <-chan struct{} { return s.done }

// Err returns why the session ended, or nil while it runs. After Close it wraps
// ErrSessionClosed.
func (s *Session) Err() error {
	select {
	case <-s.done:
		return s.err
	default:
		return nil
	}
}

// Close ends the session: waiting decisions fail with ErrSessionClosed. It waits for
// the session's goroutines and is safe to call more than once.
func (s *Session) Close() error {
	s.fail(ErrSessionClosed)
	s.wg.Wait()
	return nil
}

func (s *Session) fail(err error) {
	s.errOnce.Do(func() {
		if !errors.Is(err, ErrSessionClosed) {
			err = fmt.Errorf("%w: %w", ErrSessionClosed, err)
		}
		s.err = err
		s.mu.Lock()
		s.closed = true
		calls := s.calls
		s.calls = make(map[uint64]*call)
		s.mu.Unlock()
		for _, c := range calls {
			c.ch <- callResult{idx: -1, err: err}
		}
		close(s.done)
		s.cancel()
	})
}

func (s *Session) notify(ch chan struct{}) {
	select {
	case ch <- struct{}{}:
	default:
	}
}

// sender is the only goroutine that writes to the stream. Whatever is waiting when it
// wakes goes out in one message; ordinary outcomes wait for the flush timer unless
// something else is sent anyway.
func (s *Session) sender() {
	defer s.wg.Done()
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	armed := false
	for {
		select {
		case <-s.wake:
		case <-s.arm:
			if !armed {
				timer.Reset(s.opts.FlushInterval)
				armed = true
			}
			continue
		case <-timer.C:
			armed = false
		case <-s.done:
			_ = s.stream.CloseSend()
			return
		}
		s.mu.Lock()
		up := &strategypb.Up{Seed: s.seed, Sync: s.syncReq}
		// Self-clocked batching: while maxUpsInFlight messages of selections are
		// unanswered, new selections wait and leave together when an answer arrives.
		// A lone caller never waits; many concurrent callers get large batches.
		if len(s.sels) > 0 && s.upsSent-s.upsDone < maxUpsInFlight {
			up.Routes, up.Selects = s.routes, s.sels
			s.routes, s.sels = nil, nil
			s.upsSent++
			// The decision timeout runs from now: the time these requests waited for
			// earlier answers is the batching's, not the plugin's.
			now := time.Now().UnixNano()
			s.upSentAt[s.upsSent%uint64(len(s.upSentAt))] = now
			for i := len(s.expiries) - len(up.Selects); i < len(s.expiries); i++ {
				s.expiries[i].deadline = now + int64(s.opts.DecisionTimeout)
			}
		}
		if s.outcomes.len() > 0 {
			up.Outcomes = s.outcomes.take()
		}
		s.seed, s.syncReq = nil, 0
		s.mu.Unlock()
		if up.Outcomes != nil && armed {
			timer.Stop()
			armed = false
		}
		if len(up.Routes) == 0 && len(up.Selects) == 0 && up.Seed == nil && up.Sync == 0 && up.Outcomes == nil {
			continue
		}
		if err := s.stream.Send(up); err != nil {
			s.fail(err)
			return
		}
	}
}

func (s *Session) receiver() {
	defer s.wg.Done()
	for {
		d, err := s.stream.Recv()
		if err != nil {
			s.fail(err)
			return
		}
		now := time.Now().UnixNano()
		s.lastRecv.Store(now)
		if h := d.GetHealth(); h != nil {
			rows := strategywire.HealthFromPB[sdk.BrokerHealth](h)
			s.health.Store(&rows)
			if s.opts.OnHealth != nil {
				s.opts.OnHealth(rows)
			}
		}
		if ids, errs := d.GetIds(), d.GetErrors(); len(ids) > 0 || len(errs) > 0 || d.GetAnswered() != 0 {
			idx := d.GetIndexes()
			s.mu.Lock()
			if a := d.GetAnswered(); a > s.upsDone {
				s.upsDone = a
				if len(s.sels) > 0 {
					s.notify(s.wake)
				}
			}
			// The plugin's own time for this message's requests (0: it does not say).
			var took int64
			if recv, sent := d.GetReceivedUnixNano(), d.GetSentUnixNano(); recv != 0 && sent >= recv {
				took = sent - recv
				s.noteTransit(now, d.GetAnswered(), took)
			}
			for i, id := range ids {
				if c, ok := s.calls[id]; ok {
					delete(s.calls, id)
					var r callResult
					switch {
					case took > int64(s.opts.DecisionTimeout):
						s.timeouts.Add(1) // the plugin answered, after the deadline
						r = callResult{idx: -1, err: strategywire.ErrDecisionTimeout}
					case i < len(idx):
						r = callResult{idx: idx[i]}
					default:
						r = callResult{idx: -1, err: errMalformedAnswer}
					}
					c.ch <- r
				}
			}
			for _, e := range errs {
				if e.GetCode() == strategypb.Code_CODE_ROUTE_UNKNOWN {
					// The mirror went out of step (it should not): forget it, so every
					// route is defined again.
					s.sent = make(map[string]*sentRoutes)
				}
				if c, ok := s.calls[e.GetId()]; ok {
					delete(s.calls, e.GetId())
					err := strategywire.ErrOf(e.GetCode(), e.GetMessage())
					if err == nil {
						err = fmt.Errorf("%w: error without code", strategywire.ErrRemote)
					}
					c.ch <- callResult{idx: -1, err: err}
				}
			}
			s.mu.Unlock()
		}
		if a := d.GetAck(); a != 0 {
			for {
				cur := s.acked.Load()
				if a <= cur || s.acked.CompareAndSwap(cur, a) {
					break
				}
			}
			s.ackMu.Lock()
			close(s.ackCh)
			s.ackCh = make(chan struct{})
			s.ackMu.Unlock()
		}
	}
}
