package wasm

import (
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/api"

	"github.com/producerd/producerd/internal/strategywire"
	"github.com/producerd/producerd/plugins/sdk"
	"github.com/producerd/producerd/plugins/sdk/pick"
	"github.com/producerd/producerd/plugins/sdk/wasmguest/wasmabi"
)

// Strategy is a WebAssembly strategy loaded by Load. It implements the whole sdk
// contract; Features reports which optional parts the module really implements
// (Observe, Health and Seed are no-ops otherwise). All methods are safe for concurrent
// use.
type Strategy interface {
	sdk.Selector
	sdk.Observer
	sdk.Describer
	sdk.HealthReporter
	sdk.HealthSeeder
	// Features reports the optional interfaces the module declares.
	Features() strategywire.Features
	io.Closer
	// Stats returns the strategy's counters.
	Stats() Stats
}

// Stats are a Strategy's counters since Load.
type Stats struct {
	// Instances is the pool size; Live the instances currently running (the others
	// are being replaced).
	Instances, Live int
	// Calls counts calls into the guest (every kind).
	Calls uint64
	// Timeouts and Traps count calls that killed their instance (see ErrTimeout and
	// ErrTrap); Replaced counts instances started to replace them, ReplaceFailures
	// failed attempts to.
	Timeouts, Traps, Replaced, ReplaceFailures uint64
	// GuestErrors counts error codes returned by the guest (ErrGuest).
	GuestErrors uint64
}

var _ Strategy = (*strategy)(nil)

// observeChunk bounds the outcomes per producerd_observe call (and so the input
// buffer a guest must hold).
const observeChunk = 1024

// Ordinary outcomes wait for a broadcast until observeBatch of them are pending or
// observeFlush has passed since the first of them arrived; past observeBacklog waiting
// outcomes, Observe broadcasts them itself.
const (
	observeBatch   = 64
	observeFlush   = 2 * time.Millisecond
	observeBacklog = 4 * observeChunk
)

type strategy struct {
	opts      Options
	path      string
	log       hclog.Logger
	ctx       context.Context // for wazero calls: never done, so wazero adds nothing per call
	epoch     time.Time       // monotonic origin of deadlines and of the guests' clock
	epochWall int64

	rt       wazero.Runtime
	compiled wazero.CompiledModule
	desc     wasmabi.Description
	features strategywire.Features
	clock    bool // the module reads the time: pass it with every decision
	// local decides for a module that declares LocalApply: package pick over the policy
	// the module publishes (its health table, if it reports one), read again after every
	// broadcast of outcomes or seed. nil otherwise: every decision calls the guest.
	local *pick.Picker

	slots []*slot
	// obsMu orders Observe and Seed broadcasts, and the seeding of a replacement, so
	// that every instance applies the same outcomes in the same order.
	obsMu  sync.Mutex
	obsBuf []byte
	obsEnc wasmabi.ObserveEncoder // obsMu
	taken  []sdk.Outcome          // the batch being broadcast; obsMu
	// policyStale: an instance reported a policy change that is not installed yet (the
	// health read failed); every flush retries it until one succeeds. obsMu.
	policyStale bool
	// policy is the table the local picker decides from (the last one an instance
	// published); it seeds a replacement that has no live sibling. obsMu.
	policy []sdk.BrokerHealth
	// pendMu guards pending, the outcomes not yet broadcast, in arrival order. Observe
	// only appends to it; the broadcast runs on the flusher goroutine (or on the
	// caller's for an urgent outcome), so that a connection's reader goroutine, which
	// reports most outcomes, never waits for the guest.
	pendMu   sync.Mutex
	pending  []sdk.Outcome
	flushNow chan struct{} // a full batch waits
	arm      chan struct{} // an outcome entered an empty batch: start the flush timer

	watchMu  sync.Mutex
	watched  map[*instance]struct{}
	watchers sync.WaitGroup // the watchdog
	workers  sync.WaitGroup // replacements
	done     chan struct{}  // closed first by shutdown: stops replacements
	stop     chan struct{}  // closed last by shutdown: stops the watchdog
	closed   atomic.Bool
	workMu   sync.Mutex // orders starting a replacement (workers.Add) with shutdown
	closeMu  sync.Mutex
	shut     bool

	timeouts, traps, replaced, replaceFailures, guestErrors atomic.Uint64
	lastFailure                                             atomic.Pointer[error] // of the last instance that died
	logNext                                                 [numLogKinds]atomic.Int64
	logSuppressed                                           [numLogKinds]atomic.Uint64
}

// slot holds one instance of the pool. mu serialises the calls into it; inst is nil
// while a replacement starts (it is atomic only so that Stats can count without
// locking).
type slot struct {
	mu    sync.Mutex
	id    int
	inst  atomic.Pointer[instance]
	calls atomic.Uint64 // calls into this slot's instances
}

func (s *strategy) nanos() int64           { return int64(time.Since(s.epoch)) }
func (s *strategy) wall(nanos int64) int64 { return s.epochWall + nanos }

// acquire locks a slot with a live instance: the first free one from a random start,
// else it waits for one. Decisions run in parallel up to the pool size.
func (s *strategy) acquire() (*slot, *instance, error) {
	if s.closed.Load() {
		return nil, nil, ErrClosed
	}
	n := len(s.slots)
	start := 0
	if n > 1 {
		start = int(rand.Uint32N(uint32(n)))
	}
	for k := range n {
		sl := s.slots[(start+k)%n]
		if sl.mu.TryLock() {
			if in := sl.inst.Load(); in != nil {
				return sl, in, nil
			}
			sl.mu.Unlock()
		}
	}
	for k := range n {
		sl := s.slots[(start+k)%n]
		sl.mu.Lock()
		if in := sl.inst.Load(); in != nil {
			return sl, in, nil
		}
		sl.mu.Unlock()
	}
	if s.closed.Load() {
		return nil, nil, ErrClosed
	}
	if last := s.lastFailure.Load(); last != nil {
		return nil, nil, fmt.Errorf("%w; the last one failed with: %v", ErrNoInstance, *last) // not %w: the decision did not time out
	}
	return nil, nil, ErrNoInstance
}

// Select implements sdk.Selector. The queue list crosses into the instance only when
// that instance has not seen (Topic, RouteVersion, len(Queues)) yet. An error (ErrTimeout,
// ErrTrap, ErrGuest, ErrNoInstance, ErrClosed, or ctx's error when it is already done)
// means this decision must fall back.
func (s *strategy) Select(ctx context.Context, sel *sdk.Selection) (int, error) {
	n := len(sel.Queues)
	if n == 0 {
		return -1, sdk.ErrNoQueues
	}
	if done := ctx.Done(); done != nil {
		select {
		case <-done:
			return -1, ctx.Err()
		default:
		}
	}
	if s.local != nil {
		return s.local.Pick(sel), nil
	}
	sl, in, err := s.acquire()
	if err != nil {
		return -1, err
	}
	defer sl.mu.Unlock()
	var now int64
	if s.clock {
		now = s.wall(s.nanos())
	}
	rs, known := in.routes[sel.Topic]
	withQueues := !known || rs.version != sel.RouteVersion || rs.n != n
	if !known {
		if len(in.routes) >= wasmabi.MaxRouteSlots {
			clear(in.routes) // slots restart at 0; each is redefined before use
		}
		rs.slot = uint32(len(in.routes))
	}
	if sel.Message != nil && !s.desc.Descriptor.NeedsMessage {
		// Only strategies that declare NeedsMessage get the message.
		c := *sel
		c.Message = nil
		sel = &c
	}
	for {
		in.enc = wasmabi.AppendSelect(in.enc[:0], sel, now, rs.slot, withQueues)
		code, err := s.callInput(in, in.fnSelect, in.enc, s.opts.CallTimeout)
		if err != nil {
			s.fail(sl, in, "select")
			return -1, err
		}
		if code >= 0 {
			if withQueues {
				in.routes[sel.Topic] = routeState{slot: rs.slot, version: sel.RouteVersion, n: n}
			}
			return int(code), nil
		}
		if code == wasmabi.CodeRouteUnknown && !withQueues {
			withQueues = true // the guest dropped the route: send it again
			continue
		}
		s.guestErrors.Add(1)
		text := s.guestText(in, code)
		if in.dead != nil {
			s.fail(sl, in, "select")
		}
		return -1, selectError(code, text)
	}
}

// Observe implements sdk.Observer. Every live instance receives the outcomes, in the
// same order for all (broadcasts are serialised), so that each instance's copy of the
// strategy's state stays the same. Ordinary outcomes (OK, not slower than the
// strategy's UrgentLatency) are batched: Observe only queues them, and the flusher
// goroutine broadcasts them with the next urgent outcome, once observeBatch of them
// wait, or observeFlush after the first of a batch arrived, because a broadcast costs
// one guest call per instance and 0.3-0.8 µs per outcome in a Go guest. An
// urgent outcome (a failure, or a slow OK) is applied at once on the caller's
// goroutine, after those waiting, and Observe returns when every instance has applied
// it, so the next Select sees it; so does any outcome that finds observeBacklog
// waiting (the guest is not keeping up). It does nothing when the module does not
// observe.
func (s *strategy) Observe(_ context.Context, outcomes []sdk.Outcome) {
	if !s.features.Observer || len(outcomes) == 0 || s.closed.Load() {
		return
	}
	urgent := false
	ul := s.desc.Descriptor.UrgentLatency
	for i := range outcomes {
		if o := &outcomes[i]; o.Kind.Failed() || (ul > 0 && o.Latency > ul) {
			urgent = true
			break
		}
	}
	s.pendMu.Lock()
	s.pending = append(s.pending, outcomes...)
	n := len(s.pending)
	s.pendMu.Unlock()
	switch {
	case urgent || n >= observeBacklog:
		// A backlog means the guest cannot keep up: the caller helps, which also
		// bounds the queue.
		s.obsMu.Lock()
		s.flushLocked()
		s.obsMu.Unlock()
	case n >= observeBatch:
		notify(s.flushNow)
	case n == len(outcomes):
		notify(s.arm)
	}
}

func notify(ch chan struct{}) {
	select {
	case ch <- struct{}{}:
	default:
	}
}

// flusher broadcasts batches of ordinary outcomes (see Observe). It runs from Load
// until shutdown, for a module that observes.
func (s *strategy) flusher() {
	defer s.workers.Done()
	t := time.NewTimer(time.Hour)
	t.Stop()
	armed := false
	for {
		select {
		case <-s.done:
			t.Stop()
			return
		case <-s.arm:
			if !armed {
				t.Reset(observeFlush)
				armed = true
			}
			continue
		case <-t.C:
			armed = false
		case <-s.flushNow:
		}
		s.obsMu.Lock()
		s.flushLocked()
		s.obsMu.Unlock()
	}
}

// flushLocked broadcasts the pending outcomes. s.obsMu is held.
func (s *strategy) flushLocked() {
	s.pendMu.Lock()
	pend := s.pending
	s.pending = s.taken[:0] // the batch broadcast last time: swap the two buffers
	s.pendMu.Unlock()
	s.taken = pend
	if len(pend) == 0 {
		return
	}
	now := s.wall(s.nanos())
	var flags uint32
	if s.local != nil && s.features.HealthReporter {
		flags = wasmabi.ObservePolicy
	}
	changed := false
	for len(pend) > 0 {
		chunk := pend[:min(len(pend), observeChunk)]
		pend = pend[len(chunk):]
		s.obsBuf = s.obsEnc.Append(s.obsBuf[:0], now, flags, chunk)
		s.broadcast(func(in *instance) {
			if s.inputCall(in, in.fnObserve, s.obsBuf, "observe") == wasmabi.ObservePolicyChanged {
				changed = true
			}
		})
	}
	clear(s.taken) // keep no outcome's strings alive
	if changed || s.policyStale {
		// Only then: reading and decoding the table after every batch cost more than
		// applying the batch. The guest reports a change once, so a read that failed
		// is retried at every flush until it succeeds.
		s.policyStale = true
		s.publishPolicy()
	}
}

// publishPolicy hands the local picker the policy one instance publishes now. It does
// nothing without a local picker. s.obsMu is held (or the strategy is not shared yet).
func (s *strategy) publishPolicy() {
	if s.local == nil || !s.features.HealthReporter {
		return
	}
	sl, in, err := s.acquire()
	if err != nil {
		return
	}
	defer sl.mu.Unlock()
	rows, err := s.health(in, s.opts.CallTimeout)
	if in.dead != nil {
		s.fail(sl, in, "health")
		return
	}
	if err != nil {
		s.logLimited(logGuestError, "wasm strategy health failed", "error", err)
		return
	}
	s.policyStale = false
	if wasmabi.SamePolicy(rows, s.policy) {
		return // most batches of ordinary outcomes change nothing the picker reads
	}
	s.policy = rows
	s.local.SetPolicy(pick.FromHealth(rows))
}

// Seed implements sdk.HealthSeeder: every live instance starts from rows (a
// replacement started later is seeded from a sibling). It does nothing when the
// module does not take a seed.
func (s *strategy) Seed(rows []sdk.BrokerHealth) {
	if !s.features.HealthSeeder || s.closed.Load() {
		return
	}
	s.obsMu.Lock()
	defer s.obsMu.Unlock()
	s.flushLocked()
	s.obsBuf = wasmabi.AppendSeed(s.obsBuf[:0], s.wall(s.nanos()), rows)
	s.broadcast(func(in *instance) { s.inputCall(in, in.fnSeed, s.obsBuf, "seed") })
	s.publishPolicy()
}

// broadcast runs f on every live instance, one at a time, holding its slot. s.obsMu
// is held.
func (s *strategy) broadcast(f func(in *instance)) {
	for _, sl := range s.slots {
		sl.mu.Lock()
		if in := sl.inst.Load(); in != nil {
			f(in)
			if in.dead != nil {
				s.fail(sl, in, "broadcast")
			}
		}
		sl.mu.Unlock()
	}
}

// inputCall calls fn with data and logs a guest error code. The caller handles a dead
// instance.
func (s *strategy) inputCall(in *instance, fn api.Function, data []byte, what string) int32 {
	code, err := s.callInput(in, fn, data, s.opts.CallTimeout)
	if err != nil || code >= 0 {
		return code
	}
	s.guestErrors.Add(1)
	text := s.guestText(in, code)
	s.logLimited(logGuestError, "wasm strategy returned an error", "call", what, "error", text)
	return code
}

// Health implements sdk.HealthReporter with the table of one live instance (they all
// saw the same outcomes). It returns nil when the module reports no health or no
// instance answered.
func (s *strategy) Health() []sdk.BrokerHealth {
	if !s.features.HealthReporter {
		return nil
	}
	if s.features.Observer {
		s.obsMu.Lock()
		s.flushLocked() // the table must reflect every outcome observed so far
		s.obsMu.Unlock()
	}
	sl, in, err := s.acquire()
	if err != nil {
		return nil
	}
	defer sl.mu.Unlock()
	rows, err := s.health(in, s.opts.CallTimeout)
	if in.dead != nil {
		s.fail(sl, in, "health")
	} else if err != nil {
		s.logLimited(logGuestError, "wasm strategy health failed", "error", err)
	}
	return rows
}

func (s *strategy) health(in *instance, timeout time.Duration) ([]sdk.BrokerHealth, error) {
	in.enc = wasmabi.AppendNow(in.enc[:0], s.wall(s.nanos()))
	if err := s.grow(in, len(in.enc), timeout); err != nil {
		return nil, err
	}
	if !in.mem.Write(in.buf, in.enc) {
		return nil, in.kill(ErrABI)
	}
	out, err := s.callOutput(in, in.fnHealth, len(in.enc), timeout)
	if err != nil {
		return nil, err
	}
	return wasmabi.DecodeHealth(out)
}

// Describe implements sdk.Describer: the module's Descriptor, read once at Load.
func (s *strategy) Describe() sdk.Descriptor { return s.desc.Descriptor }

// Features implements Strategy: the optional interfaces the module declares.
func (s *strategy) Features() strategywire.Features { return s.features }

// Stats implements Strategy.
func (s *strategy) Stats() Stats {
	st := Stats{
		Instances:       len(s.slots),
		Timeouts:        s.timeouts.Load(),
		Traps:           s.traps.Load(),
		Replaced:        s.replaced.Load(),
		ReplaceFailures: s.replaceFailures.Load(),
		GuestErrors:     s.guestErrors.Load(),
	}
	for _, sl := range s.slots {
		if sl.inst.Load() != nil {
			st.Live++
		}
		st.Calls += sl.calls.Load()
	}
	return st
}

// Close stops the strategy: decisions return ErrClosed, running calls finish (or are
// interrupted at their deadline), instances and the compiled module are released. It
// is idempotent and returns nil.
func (s *strategy) Close() error {
	s.closeMu.Lock()
	defer s.closeMu.Unlock()
	if !s.shut {
		s.shut = true
		s.shutdown()
	}
	return nil
}

// shutdown releases everything Load built. The watchdog stops last, so that a call
// stuck in a loop is still interrupted while Close waits for its slot.
func (s *strategy) shutdown() {
	s.workMu.Lock()
	s.closed.Store(true)
	s.workMu.Unlock()
	close(s.done)
	s.workers.Wait()
	for _, sl := range s.slots {
		if sl == nil {
			continue
		}
		sl.mu.Lock()
		if in := sl.inst.Swap(nil); in != nil {
			s.discard(in)
		}
		sl.mu.Unlock()
	}
	close(s.stop)
	s.watchers.Wait()
	ctx := context.Background()
	if s.compiled != nil {
		_ = s.compiled.Close(ctx)
	}
	_ = s.rt.Close(ctx)
}
