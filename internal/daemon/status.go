package daemon

import (
	"os"
	"slices"

	"github.com/producerd/producerd/api/producerdpb"
	"github.com/producerd/producerd/internal/builtin"
)

// Status reports the daemon's state.
func (d *Daemon) Status() *producerdpb.StatusResponse {
	cfg := d.Config()
	msgs, bytes := d.limit.load()
	maxMsgs, maxBytes := d.limit.bounds()
	out := &producerdpb.StatusResponse{
		Version: d.opts.Version, Pid: int64(os.Getpid()), StartedUnixMs: d.started.UnixMilli(),
		ConfigFile: cfg.File, ConfigGeneration: d.cfgGen.Load(), Draining: d.limit.isDraining(),
		Inflight: &producerdpb.Inflight{Messages: msgs, Bytes: bytes, MaxMessages: maxMsgs, MaxBytes: maxBytes},
	}
	out.Ready, out.NotReadyReason = d.readiness.state()
	seen := map[string]bool{}
	for _, g := range d.groupList() {
		c := g.prod.Client()
		out.Groups = append(out.Groups, &producerdpb.GroupStatus{Group: g.name, ClientId: c.ID(), Strategy: strategyToPB(g.strategyStatus())})
		if seen[c.ID()] {
			continue
		}
		seen[c.ID()] = true
		strip := d.namespaceStripper(c)
		cs := &producerdpb.ClientStatus{ClientId: c.ID(), Groups: stripAll(strip, c.Groups())}
		brokers := c.Brokers()
		names := make([]string, 0, len(brokers))
		for n := range brokers {
			names = append(names, n)
		}
		slices.Sort(names)
		for _, n := range names {
			cs.Brokers = append(cs.Brokers, &producerdpb.Broker{Name: n, Addr: brokers[n]})
		}
		for _, ci := range c.Remoting().Conns() {
			cs.Connections = append(cs.Connections, &producerdpb.Connection{Addr: ci.Addr, OpenedUnixMs: ci.OpenedAt.UnixMilli(),
				Pending: int64(ci.Pending), BytesIn: ci.BytesIn, BytesOut: ci.BytesOut, Tls: ci.TLS})
		}
		for _, r := range c.Routes() {
			pr := &producerdpb.Route{Topic: strip(r.Topic), Version: r.Version, FromDefault: r.FromDefault}
			for _, q := range r.Queues {
				pr.Queues = append(pr.Queues, &producerdpb.Queue{Broker: q.Broker, Id: q.ID})
			}
			cs.Routes = append(cs.Routes, pr)
		}
		out.Clients = append(out.Clients, cs)
	}
	return out
}

func strategyToPB(st strategyState) *producerdpb.StrategyStatus {
	out := &producerdpb.StrategyStatus{Name: st.Name, Plugin: st.Plugin, Generation: st.Generation, State: st.State, LastError: st.LastError}
	for _, h := range st.Health {
		row := &producerdpb.BrokerHealth{Broker: h.Broker, Available: h.Available, LatencyUs: h.Latency.Microseconds()}
		if !h.Until.IsZero() {
			row.UntilUnixMs = h.Until.UnixMilli()
		}
		out.FaultTable = append(out.FaultTable, row)
	}
	for _, p := range st.Plugins {
		out.Plugins = append(out.Plugins, &producerdpb.PluginProcess{Name: p.Name, Pid: int64(p.PID), Restarts: p.Restarts, State: p.State, Users: int64(p.Users)})
	}
	return out
}

// Strategies lists the configured strategies and the groups using each.
func (d *Daemon) Strategies() []*producerdpb.StrategyInfo {
	cfg := d.Config()
	active := map[string][]string{}
	for _, g := range d.groupList() {
		n := g.strategyName()
		active[n] = append(active[n], g.name)
	}
	var out []*producerdpb.StrategyInfo
	for _, name := range cfg.StrategyNames() {
		s := cfg.Strategies[name]
		info := &producerdpb.StrategyInfo{Name: name, Plugin: s.Plugin, ActiveIn: active[name]}
		if b, ok := builtin.Lookup(s.Builtin); ok {
			info.Summary = b.Summary
		} else {
			info.Summary = "external plugin " + s.Path
		}
		out = append(out, info)
	}
	return out
}
