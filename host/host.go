package host

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/producerd/producerd/plugins/roundrobin"
	"github.com/producerd/producerd/plugins/sdk"
)

// Host runs one strategy at a time, as an immutable generation behind an atomic
// pointer, and swaps it while traffic flows. All methods are safe for concurrent use.
type Host struct {
	cfg   Config
	log   hclog.Logger
	strat *strategy
	pool  *Pool // Config.Pool, or the Host's own

	mu      sync.Mutex // serialises Start, Swap, rollback and Close
	started bool
	closed  bool
	nextID  uint64

	cur     atomic.Pointer[generation]
	standby atomic.Pointer[generation] // the previous generation during probation

	regMu  sync.Mutex
	live   map[*generation]struct{}
	totals Totals // of closed generations

	swaps     atomic.Uint64
	rollbacks atomic.Uint64

	ctx    context.Context
	cancel context.CancelFunc
	bg     sync.WaitGroup
}

// New validates cfg and returns a Host. It does no I/O. Until Start, Strategy decides
// with an in-process round-robin (generation 0).
func New(cfg Config) (*Host, error) {
	cfg = cfg.withDefaults()
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	h := &Host{cfg: cfg, log: cfg.Logger, pool: cfg.Pool, live: make(map[*generation]struct{})}
	if h.pool == nil {
		h.pool = NewPool(cfg.Logger)
	}
	h.strat = &strategy{h: h}
	h.ctx, h.cancel = context.WithCancel(context.Background())
	g := &generation{
		h:      h,
		spec:   Spec{Name: "roundrobin", Plugin: "roundrobin", InProcess: true},
		log:    h.log,
		inproc: roundrobin.New(),
		rr:     roundrobin.New(),
		mode:   ModeInProcess,
	}
	g.fallback = g.rr
	g.releaseFn = g.release
	g.ctx, g.cancel = context.WithCancel(context.Background())
	d := descriptorOf(g.inproc)
	g.desc.Store(&d)
	h.register(g)
	h.cur.Store(g)
	return h, nil
}

// Strategy returns the Host's stable strategy: the value to hand to core. It never
// changes; it implements sdk.Selector, sdk.Observer, Provider, sdk.HealthReporter,
// sdk.HealthSeeder and sdk.Describer by delegating to the active generation. Its Select
// returns an error only for an empty queue list: every other failure is a counted
// fallback to an in-process decision.
func (h *Host) Strategy() sdk.Selector { return h.strat }

// Start installs the first strategy. A spec that fails validation, a built-in whose
// settings are invalid, or a plugin that rejects its settings is refused: Start returns
// the error and nothing changes. A plugin that cannot be started or fails its health
// check does not block the daemon: the strategy is installed in fallback mode (it
// decides in-process with the built-in itself, or round-robin for a plugin given by
// path), the host keeps restarting the plugin, and Start returns an error wrapping
// ErrPluginDown. Start may be called once; later changes go through Swap.
func (h *Host) Start(ctx context.Context, spec Spec) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closed {
		return ErrClosed
	}
	if h.started {
		return ErrAlreadyStarted
	}
	ctx, stop := h.bound(ctx)
	defer stop()
	g, err := h.build(ctx, spec, true)
	if g == nil {
		return err
	}
	g.setVerdict(nil) // no probation for the first strategy
	old := h.cur.Swap(g)
	h.started = true
	h.retire(old)
	h.log.Info("strategy started", "strategy", g.spec.Name, "plugin", g.spec.Plugin, "generation", g.id, "mode", g.status().Mode)
	return err
}

// Swap replaces the active strategy while decisions continue:
//
//  1. the new generation is built off to the side and health-checked (its plugin
//     started, described, configured, a sync round trip and, unless applied locally, a
//     probe decision); on any failure Swap returns the error and the old generation
//     stays active;
//  2. the new one is seeded with the old one's broker health table (sdk.HealthSeeder);
//  3. the pointer is switched between two decisions: a send that acquired the old
//     generation (Provider) keeps it for its whole retry loop;
//  4. Swap waits until every such send released the old generation (at most
//     Config.DrainTimeout, or until ctx ends; the old generation keeps deciding for
//     late releasers either way), then returns.
//
// Rollback rule: for Config.Probation after the switch the old generation stays
// loaded. If in that window the new generation's plugin fails even once (exits, breaks
// its session, or is killed as unresponsive), or more than RollbackFailureRatio of at
// least RollbackMinDecisions decisions fell back because the plugin timed out, erred,
// answered out of range or had its circuit open, the host switches back to the old
// generation (seeding it with the new one's health) and retires the new one; Status
// counts it and Hooks.OnRollback is called. After the window the old generation is
// retired (its plugin shut down). A further Swap during the window retires the
// previous standby at once.
func (h *Host) Swap(ctx context.Context, spec Spec) error {
	_, err := h.swap(ctx, spec)
	return err
}

// SwapAndAwait is Swap, then waits for the new strategy's probation (Config.Probation)
// to end: it returns nil once the strategy passed it (or a later swap superseded it),
// an error wrapping ErrRolledBack with the reason when the host rolled back to the
// previous strategy, or ctx's error (the probation goes on).
func (h *Host) SwapAndAwait(ctx context.Context, spec Spec) error {
	g, err := h.swap(ctx, spec)
	if err != nil {
		return err
	}
	select {
	case <-g.verdict:
		return g.verdictErr
	case <-ctx.Done():
		return fmt.Errorf("host: swap to %q done, probation still running: %w", spec.Name, ctx.Err())
	}
}

func (h *Host) swap(ctx context.Context, spec Spec) (*generation, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closed {
		return nil, ErrClosed
	}
	ctx, stop := h.bound(ctx)
	defer stop()
	old := h.cur.Load()
	g, err := h.build(ctx, spec, false)
	if err != nil {
		return nil, fmt.Errorf("host: swap to %q refused, %q stays active: %w", spec.Name, old.spec.Name, err)
	}
	if rows := old.Health(); len(rows) > 0 {
		g.Seed(rows)
	}
	h.cur.Store(g)
	h.started = true
	h.swaps.Add(1)
	h.log.Info("strategy swapped", "from", old.spec.Name, "to", g.spec.Name, "generation", g.id)
	if hook := h.cfg.Hooks.OnSwap; hook != nil {
		hook(old.spec.Name, g.spec.Name, g.id)
	}
	if prev := h.standby.Swap(nil); prev != nil {
		h.retire(prev)
	}
	old.setVerdict(nil) // a generation in probation that is swapped away is superseded
	drained := old.startRetiring()
	t := time.NewTimer(h.cfg.DrainTimeout)
	defer t.Stop()
	select {
	case <-drained:
	case <-t.C:
		h.log.Warn("old strategy generation still in use after the drain timeout", "strategy", old.spec.Name, "generation", old.id, "in_flight", old.refs.Load())
	case <-ctx.Done():
	}
	if h.cfg.Probation > 0 {
		h.standby.Store(old)
		h.bg.Go(func() { h.probation(g, old) })
	} else {
		g.setVerdict(nil)
		h.retire(old)
	}
	return g, nil
}

// bound returns ctx, also cancelled by Close.
func (h *Host) bound(ctx context.Context) (context.Context, context.CancelFunc) {
	ctx, cancel := context.WithCancel(ctx)
	stop := context.AfterFunc(h.ctx, cancel)
	return ctx, func() { stop(); cancel() }
}

// build resolves spec and starts its generation. With degradedOK, a plugin that does
// not start yields a generation deciding in-process (with the error).
func (h *Host) build(ctx context.Context, spec Spec, degradedOK bool) (*generation, error) {
	spec, err := h.resolve(spec)
	if err != nil {
		return nil, err
	}
	g, err := h.newGeneration(ctx, spec)
	if err != nil {
		return nil, err
	}
	h.nextID++
	g.id = h.nextID
	g.log = g.log.With("generation", g.id)
	h.register(g)
	if g.inproc != nil {
		sel := func(ctx context.Context, s *sdk.Selection) (int, error) { return safeSelect(ctx, g.inproc, s) }
		if err := trialDecision(ctx, sel, descriptorOf(g.inproc).NeedsMessage); err != nil {
			h.closeGen(g)
			return nil, fmt.Errorf("%w: strategy %q: %w", ErrHealthCheck, spec.Name, err)
		}
		return g, nil
	}
	g.supDone = make(chan struct{})
	if err := h.pool.join(ctx, g); err != nil {
		if !degradedOK || errors.Is(err, sdk.ErrInvalidSettings) {
			h.closeGen(g) // g leaves the process, which stops if g was its only user
			return nil, err
		}
		return g, fmt.Errorf("%w: strategy %q: %w", ErrPluginDown, spec.Name, err)
	}
	return g, nil
}

// probation watches g after a swap and rolls back to old if g starts failing.
func (h *Host) probation(g, old *generation) {
	defer g.setVerdict(nil) // passed, superseded or closed, unless rollback decided first
	win := &probationWindow{}
	g.window.Store(win)
	defer g.window.Store(nil)
	crashes := g.crashes.Load()
	end := time.NewTimer(h.cfg.Probation)
	defer end.Stop()
	tick := time.NewTicker(25 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case <-h.ctx.Done():
			return
		case <-end.C:
			h.mu.Lock()
			if !h.closed && h.standby.CompareAndSwap(old, nil) {
				h.retire(old)
			}
			h.mu.Unlock()
			return
		case <-tick.C:
			if h.cur.Load() != g || h.standby.Load() != old {
				return
			}
			f := win.failed.Load() // a decision is counted before its failure
			d := win.decisions.Load()
			var reason error
			switch {
			case g.crashes.Load() > crashes:
				reason = errors.New("its plugin failed during probation")
				if last := g.lastError(); last != nil {
					reason = fmt.Errorf("its plugin failed during probation: %w", last)
				}
			case d >= uint64(h.cfg.RollbackMinDecisions) && d > 0 && float64(f) > h.cfg.RollbackFailureRatio*float64(d):
				reason = fmt.Errorf("%d of its %d decisions during probation fell back", f, d)
			}
			if reason != nil {
				h.rollback(g, old, reason)
				return
			}
		}
	}
}

func (h *Host) rollback(g, old *generation, reason error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closed || h.cur.Load() != g || !h.standby.CompareAndSwap(old, nil) {
		return
	}
	old.reactivate()
	if rows := g.Health(); len(rows) > 0 {
		old.Seed(rows)
	}
	h.cur.Store(old)
	h.rollbacks.Add(1)
	err := fmt.Errorf("strategy %q (generation %d) rolled back to %q (generation %d): %w", g.spec.Name, g.id, old.spec.Name, old.id, reason)
	g.setVerdict(fmt.Errorf("%w: %w", ErrRolledBack, err))
	h.log.Error("strategy rolled back", "error", err)
	if hook := h.cfg.Hooks.OnRollback; hook != nil {
		hook(g.spec.Name, old.spec.Name, err)
	}
	h.retire(g)
}

// retire waits in the background for g to drain (at most DrainTimeout), then closes
// it.
func (h *Host) retire(g *generation) {
	drained := g.startRetiring()
	h.bg.Go(func() {
		t := time.NewTimer(h.cfg.DrainTimeout)
		defer t.Stop()
		select {
		case <-drained:
		case <-t.C:
		case <-h.ctx.Done():
		}
		h.closeGen(g)
	})
}

func (h *Host) register(g *generation) {
	h.regMu.Lock()
	h.live[g] = struct{}{}
	h.regMu.Unlock()
}

// closeGen closes g and folds its counters into the totals.
func (h *Host) closeGen(g *generation) {
	g.close()
	h.regMu.Lock()
	defer h.regMu.Unlock()
	if _, ok := h.live[g]; !ok {
		return
	}
	delete(h.live, g)
	h.totals.add(g.totals())
}

// Close retires every generation: it ends their sessions and shuts down each plugin
// process this Host was the last user of (gracefully, then by kill; processes other
// Hosts on the same Pool still use keep running), and waits for the host's goroutines.
// Strategy keeps deciding afterwards, in-process. Close is idempotent.
func (h *Host) Close() error {
	h.cancel() // ends a Start or Swap in progress (its start, health check or drain)
	h.mu.Lock()
	if h.closed {
		h.mu.Unlock()
		return nil
	}
	h.closed = true
	h.regMu.Lock()
	gens := make([]*generation, 0, len(h.live))
	for g := range h.live {
		gens = append(gens, g)
	}
	h.regMu.Unlock()
	h.mu.Unlock()
	var wg sync.WaitGroup
	for _, g := range gens {
		wg.Go(func() { h.closeGen(g) })
	}
	wg.Wait()
	h.bg.Wait()
	return nil
}

// acquire pins the active generation.
func (h *Host) acquire() *generation {
	for {
		g := h.cur.Load()
		g.refs.Add(1)
		if h.cur.Load() == g {
			return g
		}
		g.release()
	}
}

// strategy is the stable value behind Host.Strategy.
type strategy struct{ h *Host }

var (
	_ sdk.Selector       = (*strategy)(nil)
	_ sdk.Observer       = (*strategy)(nil)
	_ Provider           = (*strategy)(nil)
	_ sdk.HealthReporter = (*strategy)(nil)
	_ sdk.HealthSeeder   = (*strategy)(nil)
	_ sdk.Describer      = (*strategy)(nil)
)

// Select decides with the active generation.
func (s *strategy) Select(ctx context.Context, sel *sdk.Selection) (int, error) {
	g := s.h.acquire()
	i, err := g.Select(ctx, sel)
	g.release()
	return i, err
}

// Observe hands outcomes to the active generation.
func (s *strategy) Observe(ctx context.Context, outcomes []sdk.Outcome) {
	s.h.cur.Load().Observe(ctx, outcomes)
}

// Acquire implements Provider: the returned selector (which also implements
// sdk.Observer and sdk.Describer) stays usable for the whole send, across a swap; call
// release exactly once when the send ends.
func (s *strategy) Acquire() (sdk.Selector, func()) {
	g := s.h.acquire()
	return g, g.releaseFn
}

// Health returns the active generation's broker health table.
func (s *strategy) Health() []sdk.BrokerHealth { return s.h.cur.Load().Health() }

// Seed seeds the active generation.
func (s *strategy) Seed(rows []sdk.BrokerHealth) { s.h.cur.Load().Seed(rows) }

// Describe returns the active generation's Descriptor. A send should use the
// Descriptor of the generation it acquired.
func (s *strategy) Describe() sdk.Descriptor { return s.h.cur.Load().Describe() }

// Check builds the strategy spec describes off to the side, as Start would (trust and
// SHA-256 checks, the plugin started or the module loaded with its settings, the
// strategy's own constructor run, the trial decision), then closes it. It is
// `producerd validate`'s dry run of a third-party strategy: a settings error is the
// strategy's own (sdk.ErrInvalidSettings).
func Check(ctx context.Context, cfg Config, spec Spec) error {
	h, err := New(cfg)
	if err != nil {
		return err
	}
	defer h.Close()
	g, err := h.build(ctx, spec, false)
	if err != nil {
		return err
	}
	h.closeGen(g)
	return nil
}
