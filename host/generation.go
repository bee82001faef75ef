package host

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/producerd/producerd/host/internal/pluginclient"
	"github.com/producerd/producerd/internal/strategywire"
	"github.com/producerd/producerd/plugins/roundrobin"
	"github.com/producerd/producerd/plugins/sdk"
)

// FallbackReason says why a decision was not made by the strategy's plugin.
type FallbackReason uint8

// Fallback reasons.
const (
	// FallbackDown: the plugin was not running (starting, restarting, crash loop, or
	// refused); the decision used the in-process fallback of the same kind (the built-in
	// itself, or round-robin for a plugin given by path).
	FallbackDown FallbackReason = iota
	// FallbackTimeout: no answer within the decision timeout.
	FallbackTimeout
	// FallbackError: the plugin answered with an error code (or panicked).
	FallbackError
	// FallbackOutOfRange: the plugin's index was outside the queue list.
	FallbackOutOfRange
	// FallbackBreaker: recent decisions failed, so the plugin was not asked (one
	// decision per Config.BreakerProbe still is).
	FallbackBreaker
	// FallbackOverloaded: too many decisions were already waiting for the plugin.
	FallbackOverloaded
	// FallbackCanceled: the caller's context ended before the plugin answered.
	FallbackCanceled
	numReasons
)

var reasonNames = [numReasons]string{"plugin-down", "timeout", "error", "out-of-range", "breaker", "overloaded", "canceled"}

// String returns the reason's name, e.g. "timeout".
func (r FallbackReason) String() string {
	if r < numReasons {
		return reasonNames[r]
	}
	return "unknown"
}

// Mode is how a generation currently decides.
type Mode string

// Modes.
const (
	// ModeInProcess: a built-in running in the daemon's process.
	ModeInProcess Mode = "in-process"
	// ModePlugin: the plugin process is up and decides.
	ModePlugin Mode = "plugin"
	// ModeStarting: the plugin is being started; decisions use the fallback.
	ModeStarting Mode = "starting"
	// ModeFallback: the plugin is down and being restarted; decisions use the fallback.
	ModeFallback Mode = "fallback"
	// ModeCrashLoop: restarts stopped after too many failures; decisions use the
	// fallback until the next Swap.
	ModeCrashLoop Mode = "crash-loop"
	// ModeFailed: the plugin cannot start for a reason a restart does not fix (a
	// SHA-256 mismatch, an untrusted path); decisions use the fallback until the next
	// Swap.
	ModeFailed Mode = "failed"
	// ModeBreakerOpen: the strategy (plugin or WebAssembly) is up but its decisions
	// kept failing, so its circuit is open: decisions use the fallback, and one per
	// probe interval tries the strategy again (see Config.BreakerThreshold).
	// Status.LastError says why.
	ModeBreakerOpen Mode = "breaker-open"
	// ModeClosed: the generation was retired or the Host closed; decisions use the
	// fallback.
	ModeClosed Mode = "closed"
)

// generation is one immutable strategy instance behind the Host's atomic pointer. It
// implements the sdk contract; every decision returns an index (falling back in-process
// when its plugin cannot answer).
type generation struct {
	h    *Host
	id   uint64
	spec Spec
	log  hclog.Logger

	inproc sdk.Selector // InProcess built-ins and WebAssembly strategies
	// brk is the circuit breaker of a WebAssembly strategy (a plugin process has its
	// own, in its conn); nil for built-ins, which cannot stall.
	brk *breaker

	// fallback decides while the plugin is down: the built-in itself in-process, or
	// round-robin for plugins given by path. rr takes decisions the plugin failed.
	fallback sdk.Selector
	fbObs    sdk.Observer
	fbHR     sdk.HealthReporter
	fbHS     sdk.HealthSeeder
	rr       sdk.Selector

	desc atomic.Pointer[sdk.Descriptor]
	conn atomic.Pointer[conn]

	decisions atomic.Uint64
	fallbacks [numReasons]atomic.Uint64
	logNext   [numReasons]atomic.Int64
	crashes   atomic.Uint64
	restarts  atomic.Uint64
	// breakerOpens counts the openings of the circuit (of the WebAssembly strategy or
	// of any of the plugin's processes).
	breakerOpens atomic.Uint64

	refs      atomic.Int64
	retiring  atomic.Bool
	drainMu   sync.Mutex
	drainCh   chan struct{}
	drainShut bool
	releaseFn func()

	ctx     context.Context
	cancel  context.CancelFunc
	supDone chan struct{}

	// verdict is closed when the generation's probation ended (see Host.SwapAndAwait);
	// verdictErr is then nil (it passed, or was superseded) or why it was rolled back.
	// window, during a probation, counts the decisions that started in it.
	window atomic.Pointer[probationWindow]

	verdictOnce sync.Once
	verdict     chan struct{}
	verdictErr  error

	stateMu sync.Mutex
	mode    Mode
	lastErr error
	pid     int

	closeOnce sync.Once
}

func (h *Host) newGeneration(ctx context.Context, spec Spec) (*generation, error) {
	g := &generation{
		h:    h,
		spec: spec,
		log:  h.log.With("strategy", spec.Name),
		rr:   roundrobin.New(),
	}
	g.releaseFn = g.release
	g.verdict = make(chan struct{})
	g.ctx, g.cancel = context.WithCancel(context.Background())
	switch {
	case spec.wasm():
		// A WebAssembly strategy runs sandboxed in this process; its instances are
		// supervised inside host/wasm (a trapped or stuck instance is replaced). The
		// sandbox bounds what a replaced module could do, not which queues it picks:
		// its file gets the same trust check as a plugin binary.
		if !spec.AllowInsecurePath {
			if err := checkTrust(spec.Plugin); err != nil {
				return nil, fmt.Errorf("host: strategy %q: %w", spec.Name, err)
			}
		}
		st, err := h.pool.loadWasm(ctx, spec, h.cfg.WasmCacheDir) // shared by the Pool's generations
		if err != nil {
			return nil, fmt.Errorf("host: strategy %q: %w", spec.Name, err)
		}
		g.inproc, g.fallback, g.mode = st, g.rr, ModeInProcess
		g.brk = &breaker{}
	case spec.builtin():
		fb, err := h.cfg.Builtins[spec.Plugin](spec.Settings)
		if err != nil {
			return nil, fmt.Errorf("host: strategy %q: %w", spec.Name, err)
		}
		if spec.InProcess {
			g.inproc = fb
			g.fallback = g.rr
			g.mode = ModeInProcess
		} else {
			g.fallback = fb
			g.mode = ModeStarting
		}
	default:
		g.fallback = g.rr
		g.mode = ModeStarting
	}
	g.fbObs, _ = g.fallback.(sdk.Observer)
	g.fbHR, _ = g.fallback.(sdk.HealthReporter)
	g.fbHS, _ = g.fallback.(sdk.HealthSeeder)
	d := sdk.Descriptor{Name: spec.Name}
	if g.inproc != nil {
		d = descriptorOf(g.inproc)
	} else if spec.builtin() {
		d = descriptorOf(g.fallback)
	}
	g.desc.Store(&d)
	return g, nil
}

var (
	_ sdk.Selector       = (*generation)(nil)
	_ sdk.Observer       = (*generation)(nil)
	_ sdk.HealthReporter = (*generation)(nil)
	_ sdk.HealthSeeder   = (*generation)(nil)
	_ sdk.Describer      = (*generation)(nil)
)

// Select implements sdk.Selector. It returns an error only when sel.Queues is empty.
func (g *generation) Select(ctx context.Context, sel *sdk.Selection) (int, error) {
	g.decisions.Add(1)
	win := g.window.Load()
	if win == nil {
		i, _, err := g.decide(ctx, sel)
		return i, err
	}
	// The decision and its failure go to the window in effect when it started, so a
	// window never counts a failure without its decision.
	win.decisions.Add(1)
	i, reason, err := g.decide(ctx, sel)
	if reason != noFallback && reason != FallbackCanceled {
		win.failed.Add(1)
	}
	return i, err
}

// noFallback is decide's reason when the strategy decided.
const noFallback = FallbackReason(255)

// probationWindow counts the decisions that started while it was installed, and those
// of them that fell back for a reason that counts against the strategy.
type probationWindow struct {
	decisions, failed atomic.Uint64
}

// decide makes one decision and reports the fallback reason (noFallback when the
// strategy decided).
func (g *generation) decide(ctx context.Context, sel *sdk.Selection) (int, FallbackReason, error) {
	n := len(sel.Queues)
	if n == 0 {
		return -1, noFallback, sdk.ErrNoQueues
	}
	if g.inproc != nil && g.brk == nil {
		i, err := safeSelect(ctx, g.inproc, sel)
		if err == nil && i >= 0 && i < n {
			return i, noFallback, nil
		}
		reason := reasonOf(err)
		i, err = g.fallbackSelect(ctx, sel, reason, err, i)
		return i, reason, err
	}
	brk := g.brk
	c := g.conn.Load()
	if g.inproc == nil {
		if c == nil {
			i, err := g.fallbackSelect(ctx, sel, FallbackDown, nil, 0)
			return i, FallbackDown, err
		}
		if c.local != nil {
			return c.local.Select(sel), noFallback, nil
		}
		brk = &c.brk
	}
	if !brk.allow() {
		i, err := g.fallbackSelect(ctx, sel, FallbackBreaker, nil, 0)
		return i, FallbackBreaker, err
	}
	var i int
	var err error
	if g.inproc != nil {
		i, err = safeSelect(ctx, g.inproc, sel)
	} else {
		i, err = c.sess.Select(ctx, sel)
	}
	if err == nil && i >= 0 && i < n {
		if brk.succeeded() {
			g.log.Info("strategy circuit closed: a probe decision succeeded")
			g.breakerEvent(false, nil)
		}
		return i, noFallback, nil
	}
	reason := reasonOf(err)
	if reason != FallbackCanceled && reason != FallbackOverloaded {
		cfg := &g.h.cfg
		if reason == FallbackOutOfRange {
			err = fmt.Errorf("index %d outside [0, %d)", i, n)
		}
		if brk.failed(reason, err, cfg.BreakerThreshold, cfg.BreakerProbe, cfg.BreakerMaxProbe) {
			g.log.Error("strategy circuit open: its decisions keep failing; deciding in-process, probing it back",
				"failures", cfg.BreakerThreshold, "probe", cfg.BreakerProbe, "error", err)
			g.breakerEvent(true, err)
		}
	}
	i, err = g.fallbackSelect(ctx, sel, reason, err, i)
	return i, reason, err
}

// breakerEvent calls Hooks.OnBreaker.
func (g *generation) breakerEvent(open bool, err error) {
	if open {
		g.breakerOpens.Add(1)
	}
	if hook := g.h.cfg.Hooks.OnBreaker; hook != nil {
		hook(g.spec.Name, open, err)
	}
}

// breaker returns the circuit breaker that decides now (nil when none does).
func (g *generation) breaker() *breaker {
	if g.brk != nil {
		return g.brk
	}
	if c := g.conn.Load(); c != nil && c.local == nil {
		return &c.brk
	}
	return nil
}

func reasonOf(err error) FallbackReason {
	switch {
	case err == nil:
		return FallbackOutOfRange
	case errors.Is(err, strategywire.ErrDecisionTimeout):
		return FallbackTimeout
	case errors.Is(err, pluginclient.ErrOverloaded):
		return FallbackOverloaded
	case errors.Is(err, pluginclient.ErrSessionClosed):
		return FallbackDown
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return FallbackCanceled
	}
	return FallbackError
}

// fallbackSelect decides in-process: with the fallback of the same kind while the
// plugin is down, with round-robin when the plugin failed this one decision.
func (g *generation) fallbackSelect(ctx context.Context, sel *sdk.Selection, reason FallbackReason, err error, idx int) (int, error) {
	g.noteFallback(reason, err, idx)
	if reason == FallbackDown && g.fallback != g.rr {
		i, ferr := safeSelect(ctx, g.fallback, sel)
		if ferr == nil && i >= 0 && i < len(sel.Queues) {
			return i, nil
		}
	}
	return g.rr.Select(ctx, sel)
}

// noteFallback counts a fallback decision and logs it, at most once a second per
// reason (a plugin that is down was already logged when it went down).
func (g *generation) noteFallback(reason FallbackReason, err error, idx int) {
	total := g.fallbacks[reason].Add(1)
	if hook := g.h.cfg.Hooks.OnFallback; hook != nil {
		hook(g.spec.Name, reason)
	}
	if reason == FallbackDown || reason == FallbackCanceled {
		return
	}
	now := time.Now().UnixNano()
	next := g.logNext[reason].Load()
	if now < next || !g.logNext[reason].CompareAndSwap(next, now+int64(time.Second)) {
		return
	}
	args := []any{"reason", reason.String(), "fallbacks", total}
	if err != nil {
		args = append(args, "error", err)
	}
	if reason == FallbackOutOfRange {
		args = append(args, "index", idx)
	}
	g.log.Error("strategy plugin did not decide; decision made by in-process round-robin", args...)
}

func safeSelect(ctx context.Context, s sdk.Selector, sel *sdk.Selection) (i int, err error) {
	defer func() {
		if p := recover(); p != nil {
			i, err = -1, fmt.Errorf("%w: %v", strategywire.ErrSelectPanic, p)
		}
	}()
	return s.Select(ctx, sel)
}

// Observe implements sdk.Observer: outcomes go to the plugin (batched; an urgent one
// waits briefly for the plugin's health update), or to the in-process strategy.
func (g *generation) Observe(ctx context.Context, outcomes []sdk.Outcome) {
	if g.inproc != nil {
		if o, ok := g.inproc.(sdk.Observer); ok {
			o.Observe(ctx, outcomes)
		}
		return
	}
	if c := g.conn.Load(); c != nil {
		c.sess.Observe(ctx, outcomes)
		return
	}
	if g.fbObs != nil {
		g.fbObs.Observe(ctx, outcomes)
	}
}

// Health implements sdk.HealthReporter with the table of whoever decides now.
func (g *generation) Health() []sdk.BrokerHealth {
	if g.inproc != nil {
		if hr, ok := g.inproc.(sdk.HealthReporter); ok {
			return hr.Health()
		}
		return nil
	}
	if c := g.conn.Load(); c != nil {
		return c.sess.Health()
	}
	if g.fbHR != nil {
		return g.fbHR.Health()
	}
	return nil
}

// Seed implements sdk.HealthSeeder: the plugin (if up) and the in-process fallback
// both start from rows.
func (g *generation) Seed(rows []sdk.BrokerHealth) {
	if g.inproc != nil {
		if hs, ok := g.inproc.(sdk.HealthSeeder); ok {
			hs.Seed(rows)
		}
		return
	}
	if c := g.conn.Load(); c != nil {
		c.sess.Seed(rows)
	}
	if g.fbHS != nil {
		g.fbHS.Seed(rows)
	}
}

// Describe implements sdk.Describer: the plugin's declaration once it is known.
func (g *generation) Describe() sdk.Descriptor { return *g.desc.Load() }

// DecidesInProcess reports whether Select runs in this process (a built-in or a
// WebAssembly strategy) rather than waiting for a plugin process's answer: core then
// decides an async send on the caller's goroutine.
func (g *generation) DecidesInProcess() bool { return g.inproc != nil }

func (g *generation) release() {
	if g.refs.Add(-1) == 0 && g.retiring.Load() {
		g.checkDrained()
	}
}

func (g *generation) checkDrained() {
	g.drainMu.Lock()
	if g.retiring.Load() && !g.drainShut && g.refs.Load() == 0 {
		close(g.drainCh)
		g.drainShut = true
	}
	g.drainMu.Unlock()
}

// startRetiring marks the generation as replaced and returns a channel closed once no
// send holds it.
func (g *generation) startRetiring() <-chan struct{} {
	g.drainMu.Lock()
	if !g.retiring.Load() {
		g.drainCh = make(chan struct{})
		g.drainShut = false
		g.retiring.Store(true)
	}
	ch := g.drainCh
	g.drainMu.Unlock()
	g.checkDrained()
	return ch
}

// reactivate undoes startRetiring (rollback).
func (g *generation) reactivate() {
	g.drainMu.Lock()
	g.retiring.Store(false)
	g.drainMu.Unlock()
}

func (g *generation) setMode(m Mode, err error) {
	g.stateMu.Lock()
	g.mode = m
	if err != nil {
		g.lastErr = err
	}
	g.stateMu.Unlock()
}

// close stops the supervisor, shuts the plugin down and releases the in-process
// strategies. Decisions made afterwards use the fallback.
func (g *generation) close() {
	g.closeOnce.Do(func() {
		g.cancel()
		if g.supDone != nil {
			<-g.supDone
		}
		if c := g.conn.Swap(nil); c != nil {
			c.kill()
		}
		for _, s := range []sdk.Selector{g.inproc, g.fallback} {
			if cl, ok := s.(io.Closer); ok && s != nil {
				_ = cl.Close()
			}
		}
		g.setMode(ModeClosed, nil)
	})
}

// setVerdict records the generation's probation verdict once.
func (g *generation) setVerdict(err error) {
	g.verdictOnce.Do(func() {
		g.verdictErr = err
		close(g.verdict)
	})
}
