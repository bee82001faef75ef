package daemon

import (
	"bytes"
	"context"
	"fmt"
	"reflect"

	"github.com/producerd/producerd/internal/config"
)

// Reload reads the config again and applies it; on any error the running config
// stays in place (the error is logged and returned).
func (d *Daemon) Reload(ctx context.Context) (changes, restartNeeded []string, err error) {
	d.opMu.Lock()
	defer d.opMu.Unlock()
	defer func() {
		if err != nil {
			d.met.reloads.WithLabelValues("error").Inc()
			d.log.Error("reload failed; keeping the running config", "error", err)
		} else {
			d.met.reloads.WithLabelValues("ok").Inc()
			d.log.Info("config reloaded", "generation", d.cfgGen.Load(), "changes", len(changes), "restart_needed", len(restartNeeded))
		}
	}()
	if d.shutdown.Load() {
		return nil, nil, errDraining
	}
	next, err := d.opts.ReloadConfig()
	if err != nil {
		return nil, nil, err
	}
	return d.apply(ctx, next)
}

// sameStrategy reports whether two strategy entries would run the same thing.
func sameStrategy(a, b *config.Strategy) bool {
	return a != nil && b != nil && a.Name == b.Name && a.Plugin == b.Plugin && a.Path == b.Path && bytes.Equal(a.Settings, b.Settings)
}

// apply moves the running daemon to next: new groups start, changed strategies swap,
// removed groups stop, live settings change; settings that need a restart are listed.
// A failure undoes what it did.
func (d *Daemon) apply(ctx context.Context, next *config.Config) (changes, restartNeeded []string, err error) {
	cur := d.Config()
	if !reflect.DeepEqual(cur.Ingress, next.Ingress) {
		restartNeeded = append(restartNeeded, "[ingress]")
	}
	curAdm, nextAdm := cur.Admin, next.Admin
	curAdm.Token, nextAdm.Token = "", ""
	if !reflect.DeepEqual(curAdm, nextAdm) {
		restartNeeded = append(restartNeeded, "[admin] listen/tls")
	}
	if cur.Admin.Token != next.Admin.Token {
		changes = append(changes, "admin token changed")
		if next.Admin.Token == "" && d.genToken.Load() == nil && d.adminLn != nil {
			// Without a token no admin call would pass any more, this reload's fix
			// included: generate one as at start.
			if err := d.generateToken(tokenPath(next, d.adminLn.Addr().String())); err != nil {
				return nil, nil, err
			}
		}
	}
	if !reflect.DeepEqual(cur.Limits, next.Limits) {
		restartNeeded = append(restartNeeded, "[limits]")
	}
	if !reflect.DeepEqual(cur.Client, next.Client) {
		restartNeeded = append(restartNeeded, "[client]")
	}
	if cur.Daemon.LogFormat != next.Daemon.LogFormat {
		restartNeeded = append(restartNeeded, "daemon.log_format")
	}
	// The Go runtime's settings are read at start.
	for _, k := range []struct {
		key     string
		changed bool
	}{
		{"daemon.gc_percent", cur.Daemon.GCPercent != next.Daemon.GCPercent},
		{"daemon.memory_limit", cur.Daemon.MemoryLimit != next.Daemon.MemoryLimit},
		{"daemon.procs", cur.Daemon.Procs != next.Daemon.Procs},
		{"daemon.sysmon", cur.Daemon.Sysmon != next.Daemon.Sysmon},
	} {
		if k.changed {
			restartNeeded = append(restartNeeded, k.key)
		}
	}
	if cur.Tracing != next.Tracing {
		restartNeeded = append(restartNeeded, "[tracing]")
	}

	groups := d.groupMap()
	type swap struct {
		g        *group
		from, to *config.Strategy
	}
	var swaps []swap
	var added []*group
	undo := func() {
		for i := len(swaps) - 1; i >= 0; i-- {
			if swaps[i].from == nil {
				continue
			}
			if _, err := d.swapGroup(ctx, swaps[i].g, swaps[i].from); err != nil {
				d.log.Error("undoing a swap failed", "group", swaps[i].g.name, "error", err)
			}
		}
		if err := d.closeGroups(ctx, added); err != nil {
			d.log.Warn("closing groups of a failed reload", "error", err)
		}
	}
	nextGroups := make(map[string]*group, len(next.Producers))
	for _, p := range next.Producers {
		g, ok := groups[p.Group]
		if !ok {
			ng, err := d.startGroup(ctx, next, p)
			if err != nil {
				undo()
				return nil, nil, err
			}
			added = append(added, ng)
			nextGroups[p.Group] = ng
			changes = append(changes, "group "+p.Group+" added")
			continue
		}
		nextGroups[p.Group] = g
		a, b := g.cfg, p
		a.Strategy, b.Strategy = "", ""
		if a != b {
			restartNeeded = append(restartNeeded, "group "+p.Group+" producer settings")
		}
		want := next.Strategies[p.Strategy]
		g.mu.Lock()
		have := g.spec
		g.mu.Unlock()
		if sameStrategy(have, want) {
			continue
		}
		if keep, note := keepAdminSwap(cur.Strategies[g.cfg.Strategy], want, have, next); note != "" {
			changes = append(changes, fmt.Sprintf("group %s: %s", p.Group, note))
			if keep {
				continue
			}
		}
		if _, err := d.swapGroup(ctx, g, want); err != nil {
			undo()
			return nil, nil, err
		}
		swaps = append(swaps, swap{g: g, from: have, to: want})
		changes = append(changes, fmt.Sprintf("group %s: strategy %s -> %s", p.Group, nameOf(have), want.Name))
	}
	var removed []*group
	for name, g := range groups {
		if _, ok := nextGroups[name]; !ok {
			removed = append(removed, g)
			changes = append(changes, "group "+name+" removed")
		}
	}

	// Commit.
	if cur.Daemon.LogLevel != next.Daemon.LogLevel {
		d.log.SetLevel(logLevel(next.Daemon.LogLevel))
		changes = append(changes, "daemon.log_level "+cur.Daemon.LogLevel+" -> "+next.Daemon.LogLevel)
	}
	if cur.Daemon.MaxInflightMessages != next.Daemon.MaxInflightMessages || cur.Daemon.MaxInflightBytes != next.Daemon.MaxInflightBytes {
		d.limit.setBounds(next.Daemon.MaxInflightMessages, next.Daemon.MaxInflightBytes)
		changes = append(changes, "in-flight bounds")
	}
	if cur.Daemon.ShutdownTimeout != next.Daemon.ShutdownTimeout {
		changes = append(changes, "daemon.shutdown_timeout")
	}
	for _, g := range nextGroups {
		// Keep the running producer settings (they need a restart), take the rest.
		if old, ok := groups[g.name]; ok {
			for _, p := range next.Producers {
				if p.Group == g.name {
					s := old.cfg
					s.Strategy = p.Strategy
					old.cfg = s
				}
			}
		}
	}
	d.groups.Store(&nextGroups)
	d.cfg.Store(next)
	d.cfgGen.Add(1)
	if len(removed) > 0 {
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), next.Daemon.ShutdownTimeout)
		defer cancel()
		if err := d.closeGroups(cctx, removed); err != nil {
			d.log.Warn("closing removed groups", "error", err)
		}
	}
	for _, r := range restartNeeded {
		d.log.Warn("changed setting takes effect only after a restart", "setting", r)
	}
	return changes, restartNeeded, nil
}

// keepAdminSwap decides whether a reload keeps a strategy swapped in through admin:
// have runs, but the previous file configured was. The swap survives unless the file
// changed the group's strategy (was -> want) or the swapped-in strategy itself (its
// entry in next differs from have, or is gone). note says which, for the reload's
// answer; it is empty when no admin swap is in effect.
func keepAdminSwap(was, want, have *config.Strategy, next *config.Config) (keep bool, note string) {
	if have == nil || sameStrategy(was, have) {
		return false, ""
	}
	switch now := next.Strategies[have.Name]; {
	case !sameStrategy(was, want):
		return false, fmt.Sprintf("admin swap to %s replaced: the file changed the group's strategy %s", have.Name, nameOf(was))
	case !sameStrategy(now, have):
		return false, fmt.Sprintf("admin swap to %s undone: the file changed or removed %s", have.Name, have.Name)
	}
	return true, fmt.Sprintf("keeps %s (swapped through admin; the file did not change %s or %s)", have.Name, nameOf(was), have.Name)
}

func nameOf(s *config.Strategy) string {
	if s == nil {
		return "(none)"
	}
	return s.Name
}
