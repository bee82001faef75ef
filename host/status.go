package host

import (
	"github.com/producerd/producerd/plugins/sdk"
)

// Status describes the active strategy generation.
type Status struct {
	// Name and Plugin are from the active Spec.
	Name   string
	Plugin string
	// Generation counts the strategies installed since New (0 is the initial
	// in-process round-robin).
	Generation uint64
	Mode       Mode
	// PID is the plugin's process id while it runs (ModePlugin), else 0. Generations
	// sharing a process (see Pool) show the same PID.
	PID int
	// ProcessUsers is the number of generations, of every Host on the same Pool, using
	// this generation's plugin process, this one included (0 for a strategy that runs
	// in-process).
	ProcessUsers int
	// Descriptor is what the strategy declared.
	Descriptor sdk.Descriptor
	// LastError is the last plugin failure of this generation ("" if none); while
	// the circuit is open (ModeBreakerOpen), why it opened.
	LastError string
	// BreakerOpens counts the times this generation's circuit opened.
	BreakerOpens uint64
	// Restarts counts plugin restarts; Crashes counts failures (exits, broken sessions,
	// failed starts, unresponsive kills).
	Restarts, Crashes uint64
	// Decisions counts Select calls; Fallbacks those not made by the plugin, split by
	// reason in FallbacksByReason (keyed by FallbackReason.String()).
	Decisions, Fallbacks uint64
	FallbacksByReason    map[string]uint64
	// InFlight is the number of sends holding this generation (Provider).
	InFlight int64
	// Health is the broker health table of whoever decides now.
	Health []sdk.BrokerHealth
	// Standby is the generation kept for rollback during probation (0 when none).
	Standby uint64
	// Swaps and Rollbacks count since New.
	Swaps, Rollbacks uint64
	// Totals sums every generation since New, this one included.
	Totals Totals
}

// Totals are counters summed over generations.
type Totals struct {
	Decisions, Fallbacks, Crashes, Restarts uint64
}

func (t *Totals) add(o Totals) {
	t.Decisions += o.Decisions
	t.Fallbacks += o.Fallbacks
	t.Crashes += o.Crashes
	t.Restarts += o.Restarts
}

// Status returns a snapshot of the active generation and the host's counters.
func (h *Host) Status() Status {
	g := h.cur.Load()
	st := g.status()
	if sb := h.standby.Load(); sb != nil {
		st.Standby = sb.id
	}
	st.Swaps, st.Rollbacks = h.swaps.Load(), h.rollbacks.Load()
	h.regMu.Lock()
	st.Totals = h.totals
	for lg := range h.live {
		st.Totals.add(lg.totals())
	}
	h.regMu.Unlock()
	return st
}

func (g *generation) status() Status {
	st := Status{
		Name:              g.spec.Name,
		Plugin:            g.spec.Plugin,
		Generation:        g.id,
		Descriptor:        g.Describe(),
		Restarts:          g.restarts.Load(),
		Crashes:           g.crashes.Load(),
		Decisions:         g.decisions.Load(),
		FallbacksByReason: make(map[string]uint64),
		InFlight:          g.refs.Load(),
		Health:            g.Health(),
	}
	for r := range numReasons {
		if n := g.fallbacks[r].Load(); n > 0 {
			st.FallbacksByReason[r.String()] = n
			st.Fallbacks += n
		}
	}
	g.stateMu.Lock()
	st.Mode = g.mode
	st.PID = g.pid
	if g.lastErr != nil {
		st.LastError = g.lastErr.Error()
	}
	g.stateMu.Unlock()
	st.BreakerOpens = g.breakerOpens.Load()
	if g.h != nil && g.h.pool != nil {
		st.ProcessUsers = g.h.pool.users(g)
	}
	if b := g.breaker(); b != nil && (st.Mode == ModePlugin || st.Mode == ModeInProcess) {
		if why := b.describe(); why != "" {
			st.Mode, st.LastError = ModeBreakerOpen, why
		}
	}
	return st
}

func (g *generation) lastError() error {
	g.stateMu.Lock()
	defer g.stateMu.Unlock()
	return g.lastErr
}

func (g *generation) totals() Totals {
	t := Totals{Decisions: g.decisions.Load(), Crashes: g.crashes.Load(), Restarts: g.restarts.Load()}
	for r := range numReasons {
		t.Fallbacks += g.fallbacks[r].Load()
	}
	return t
}
