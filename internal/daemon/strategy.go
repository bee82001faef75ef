package daemon

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/producerd/producerd/host"
	"github.com/producerd/producerd/internal/config"
	"github.com/producerd/producerd/plugins/sdk"
)

// strategyHost is what a group needs from its strategy host: one selector handed to
// core once (a host.Provider across swaps), swap, status and close. hostAdapter
// implements it with package host.
type strategyHost interface {
	Selector() sdk.Selector
	Swap(ctx context.Context, s *config.Strategy) (generation uint64, err error)
	Status() strategyState
	Close() error
}

// strategyState is the daemon's view of a group's strategy.
type strategyState struct {
	Name       string
	Plugin     string
	Generation uint64
	State      string
	Health     []sdk.BrokerHealth
	Plugins    []pluginProcess
	Restarts   int64
	LastError  string
}

type pluginProcess struct {
	Name     string
	PID      int
	Restarts int64
	State    string
	Users    int // generations of every group running in this process
}

// spec turns a configured strategy into a host spec.
func (d *Daemon) spec(s *config.Strategy) host.Spec {
	sp := host.Spec{Name: s.Name, Settings: s.Settings, SHA256: s.SHA256, AllowInsecurePath: s.AllowInsecurePath, Env: s.Env}
	if s.Builtin != "" {
		sp.Plugin = s.Builtin
		sp.Command = append(slices.Clone(d.opts.PluginCommand), s.Builtin)
	} else {
		sp.Plugin = s.Path
	}
	return sp
}

// pluginPool runs the daemon's strategy plugin processes: one per plugin (binary,
// settings, environment), shared by every group and strategy generation that uses it.
type pluginPool = host.Pool

func newPluginPool(log hclog.Logger) *pluginPool { return host.NewPool(log.Named("strategy")) }

// newHost starts the strategy of one group.
func (d *Daemon) newHost(ctx context.Context, group string, s *config.Strategy) (strategyHost, error) {
	log := d.log.Named("strategy").With("group", group)
	// Every group's host runs its plugin processes in the daemon's pool: groups on the
	// same plugin (binary, settings, environment) share one process, each with its own
	// session.
	h, err := host.New(host.Config{Logger: log, Hooks: d.met.hostHooks(group), Pool: d.plugins})
	if err != nil {
		return nil, err
	}
	if err := h.Start(ctx, d.spec(s)); err != nil {
		if !errors.Is(err, host.ErrPluginDown) {
			_ = h.Close()
			return nil, s.SettingsError(err)
		}
		// Installed in fallback mode: decisions are made in-process while the host
		// keeps restarting the plugin.
		log.Warn("strategy plugin is not running; deciding in-process meanwhile", "strategy", s.Name, "error", err)
	}
	return &hostAdapter{d: d, h: h, plugins: map[string]string{s.Name: s.Plugin}}, nil
}

// hostAdapter adapts *host.Host to strategyHost.
type hostAdapter struct {
	d       *Daemon
	h       *host.Host
	mu      sync.Mutex
	plugins map[string]string // configured plugin of each strategy name the host ran
}

func (a *hostAdapter) Selector() sdk.Selector { return a.h.Strategy() }

// Swap returns once the new strategy passed its probation, or with an error wrapping
// host.ErrRolledBack when the host switched back to the previous one.
func (a *hostAdapter) Swap(ctx context.Context, s *config.Strategy) (uint64, error) {
	a.mu.Lock()
	a.plugins[s.Name] = s.Plugin
	a.mu.Unlock()
	if err := a.h.SwapAndAwait(ctx, a.d.spec(s)); err != nil && !errors.Is(err, host.ErrPluginDown) {
		return 0, s.SettingsError(err)
	}
	return a.h.Status().Generation, nil
}

func (a *hostAdapter) Close() error { return a.h.Close() }

func (a *hostAdapter) Status() strategyState {
	st := a.h.Status()
	a.mu.Lock()
	plugin := a.plugins[st.Name]
	a.mu.Unlock()
	// Name and Plugin are the generation deciding now (after a rollback, the old one).
	out := strategyState{Name: st.Name, Plugin: plugin, Generation: st.Generation, State: string(st.Mode), LastError: st.LastError,
		Health: st.Health, Restarts: int64(st.Totals.Restarts)}
	p := pluginProcess{Name: st.Name, PID: st.PID, Restarts: int64(st.Restarts), State: string(st.Mode), Users: st.ProcessUsers}
	if st.Mode != host.ModeInProcess {
		out.Plugins = append(out.Plugins, p)
	}
	return out
}

// pluginEventNames are the event label values of producerd_plugin_events_total.
var pluginEventNames = []string{"crash", "restart", "crash_loop", "rollback"}

// strategySeries gives a group's strategy its zero series of the fallback and plugin
// event counters, so that a dashboard sees 0 rather than no data before the first event.
func (m *metrics) strategySeries(group, strategy string) {
	for r := host.FallbackReason(0); r.String() != "unknown"; r++ {
		m.fallbacks.WithLabelValues(group, strategy, r.String())
	}
	for _, e := range pluginEventNames {
		m.pluginEvents.WithLabelValues(group, strategy, e)
	}
}

// hostHooks counts plugin events of one group's host.
func (m *metrics) hostHooks(group string) host.Hooks {
	return host.Hooks{
		OnFallback: func(strategy string, reason host.FallbackReason) {
			m.fallbacks.WithLabelValues(group, strategy, fmt.Sprint(reason)).Inc()
		},
		OnCrash: func(strategy string, _ error) {
			m.pluginEvents.WithLabelValues(group, strategy, "crash").Inc()
		},
		OnRestart: func(strategy string, _ int) {
			m.pluginEvents.WithLabelValues(group, strategy, "restart").Inc()
		},
		OnCrashLoop: func(strategy string, _ error) {
			m.pluginEvents.WithLabelValues(group, strategy, "crash_loop").Inc()
		},
		OnRollback: func(from, _ string, _ error) {
			m.pluginEvents.WithLabelValues(group, from, "rollback").Inc()
		},
	}
}

// isolated counts the rows of a health table that are isolated now.
func isolated(rows []sdk.BrokerHealth, now time.Time) int {
	n := 0
	for _, h := range rows {
		if !h.Available && (h.Until.IsZero() || h.Until.After(now)) {
			n++
		}
	}
	return n
}
