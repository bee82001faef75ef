package daemon

import (
	"context"
	"errors"
	"fmt"

	"github.com/producerd/producerd/api/producerdpb"
	"github.com/producerd/producerd/host"
	"github.com/producerd/producerd/internal/config"
)

// Swap makes the configured strategy name active for group ("" = every group).
func (d *Daemon) Swap(ctx context.Context, name, groupName string) ([]*producerdpb.GroupSwap, error) {
	d.opMu.Lock()
	defer d.opMu.Unlock()
	cfg := d.Config()
	s, ok := cfg.Strategies[name]
	if !ok {
		return nil, fmt.Errorf("%w %q (configured: %v)", ErrUnknownStrategy, name, cfg.StrategyNames())
	}
	targets := d.groupList()
	if groupName != "" {
		g, err := d.lookup(groupName)
		if err != nil {
			return nil, err
		}
		targets = []*group{g}
	}
	var out []*producerdpb.GroupSwap
	for _, g := range targets {
		from := g.strategyName()
		gen, err := d.swapGroup(ctx, g, s)
		if err != nil {
			return out, err
		}
		out = append(out, &producerdpb.GroupSwap{Group: g.name, From: from, To: name, Generation: gen})
	}
	return out, nil
}

func (d *Daemon) swapGroup(ctx context.Context, g *group, s *config.Strategy) (uint64, error) {
	from := g.strategyName()
	gen, err := g.host.Swap(ctx, s)
	if errors.Is(err, host.ErrRolledBack) {
		d.met.swaps.WithLabelValues(g.name, "rolled_back").Inc()
		d.log.Error("swapped strategy rolled back after its probation", "group", g.name, "from", from, "to", s.Name, "error", err)
		return 0, fmt.Errorf("daemon: group %s: swap to %s: %w", g.name, s.Name, err)
	}
	if err != nil {
		d.met.swaps.WithLabelValues(g.name, "error").Inc()
		d.log.Error("strategy swap failed; the previous strategy stays", "group", g.name, "from", from, "to", s.Name, "error", err)
		return 0, fmt.Errorf("daemon: group %s: swap to %s: %w", g.name, s.Name, err)
	}
	g.mu.Lock()
	g.strategy, g.spec = s.Name, s
	g.mu.Unlock()
	d.met.swaps.WithLabelValues(g.name, "ok").Inc()
	d.met.strategySeries(g.name, s.Name)
	d.log.Info("strategy swapped", "group", g.name, "from", from, "to", s.Name, "generation", gen)
	return gen, nil
}
