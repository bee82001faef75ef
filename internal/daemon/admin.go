package daemon

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/pprof"
	"os"
	"reflect"
	"slices"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"

	"github.com/producerd/producerd/api/producerdpb"
	"github.com/producerd/producerd/core"
	"github.com/producerd/producerd/host"
	"github.com/producerd/producerd/internal/builtin"
	"github.com/producerd/producerd/internal/config"
	"github.com/producerd/producerd/remoting"
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
		out.Plugins = append(out.Plugins, &producerdpb.PluginProcess{Name: p.Name, Pid: int64(p.PID), Restarts: p.Restarts, State: p.State})
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
	d.log.Info("strategy swapped", "group", g.name, "from", from, "to", s.Name, "generation", gen)
	return gen, nil
}

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
	}
	if !reflect.DeepEqual(cur.Client, next.Client) {
		restartNeeded = append(restartNeeded, "[client]")
	}
	if cur.Daemon.LogFormat != next.Daemon.LogFormat {
		restartNeeded = append(restartNeeded, "daemon.log_format")
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

// CreateTopic creates a topic on the named broker masters, or on every master the
// NameServer knows; it returns "name=addr" of each.
func (d *Daemon) CreateTopic(ctx context.Context, req *producerdpb.CreateTopicRequest) ([]string, error) {
	gs := d.groupList()
	if len(gs) == 0 {
		return nil, errors.New("daemon: no producer group")
	}
	rc := gs[0].prod.Client().Remoting()
	return CreateTopic(ctx, rc, core.TopicConfig{Topic: req.GetTopic(), ReadQueues: int(req.GetReadQueues()),
		WriteQueues: int(req.GetWriteQueues()), Order: req.GetOrder()}, req.GetBrokers())
}

// ClusterMasters asks a NameServer for the broker masters of every cluster
// (GET_BROKER_CLUSTER_INFO): broker name -> address.
func ClusterMasters(ctx context.Context, rc *remoting.Client) (map[string]string, error) {
	resp, addr, err := rc.InvokeNameServer(ctx, remoting.NewRequest(remoting.GetBrokerClusterInfo, nil, nil))
	if err != nil {
		return nil, err
	}
	if err := remoting.ResponseError(addr, resp); err != nil {
		return nil, err
	}
	var info struct {
		BrokerAddrTable map[string]struct {
			BrokerName  string            `json:"brokerName"`
			BrokerAddrs map[string]string `json:"brokerAddrs"`
		} `json:"brokerAddrTable"`
	}
	if err := json.Unmarshal(core.QuoteBareKeys(resp.Body), &info); err != nil {
		return nil, fmt.Errorf("daemon: cluster info from %s: %w", addr, err)
	}
	out := make(map[string]string)
	for name, b := range info.BrokerAddrTable {
		if a := b.BrokerAddrs["0"]; a != "" {
			out[name] = a
		}
	}
	return out, nil
}

// CreateTopic creates tc on the named brokers' masters (all known ones when brokers is
// empty) through rc, and returns "name=addr" of each.
func CreateTopic(ctx context.Context, rc *remoting.Client, tc core.TopicConfig, brokers []string) ([]string, error) {
	if err := core.ValidateTopic(tc.Topic); err != nil {
		return nil, err
	}
	masters, err := ClusterMasters(ctx, rc)
	if err != nil {
		return nil, fmt.Errorf("daemon: list brokers: %w", err)
	}
	if len(brokers) == 0 {
		for n := range masters {
			brokers = append(brokers, n)
		}
		slices.Sort(brokers)
	}
	if len(brokers) == 0 {
		return nil, errors.New("daemon: the NameServer knows no broker")
	}
	var done []string
	for _, b := range brokers {
		addr, ok := masters[b]
		if !ok {
			return done, fmt.Errorf("daemon: broker %q unknown to the NameServer", b)
		}
		if err := core.CreateTopic(ctx, rc, addr, tc); err != nil {
			return done, fmt.Errorf("daemon: create topic %s on %s (%s): %w", tc.Topic, b, addr, err)
		}
		done = append(done, b+"="+addr)
	}
	return done, nil
}

// requireToken wraps h with the admin token check.
func (d *Daemon) requireToken(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !d.tokenOK(r.Header.Get("Authorization")) {
			writeJSON(w, http.StatusUnauthorized, HTTPResponse{Error: &HTTPError{Reason: "UNAUTHENTICATED", Message: ErrUnauthenticated.Error()}})
			return
		}
		h.ServeHTTP(w, r)
	})
}

// admin implements producerdpb.AdminServer.
type admin struct {
	producerdpb.UnimplementedAdminServer
	d *Daemon
}

func (a *admin) Status(context.Context, *producerdpb.StatusRequest) (*producerdpb.StatusResponse, error) {
	return a.d.Status(), nil
}

func (a *admin) ListStrategies(context.Context, *producerdpb.ListStrategiesRequest) (*producerdpb.ListStrategiesResponse, error) {
	return &producerdpb.ListStrategiesResponse{Strategies: a.d.Strategies()}, nil
}

func adminError(err error) error {
	switch {
	case errors.Is(err, ErrUnknownStrategy), errors.Is(err, ErrUnknownGroup), errors.Is(err, config.ErrInvalid), errors.Is(err, core.ErrInvalidMessage):
		return status.Error(codes.InvalidArgument, err.Error())
	case errors.Is(err, errDraining):
		return status.Error(codes.Unavailable, err.Error())
	}
	return status.Error(codes.FailedPrecondition, err.Error())
}

func (a *admin) SwapStrategy(ctx context.Context, req *producerdpb.SwapStrategyRequest) (*producerdpb.SwapStrategyResponse, error) {
	res, err := a.d.Swap(ctx, req.GetName(), req.GetProducerGroup())
	if err != nil {
		return nil, adminError(err)
	}
	return &producerdpb.SwapStrategyResponse{Swapped: res}, nil
}

func (a *admin) Reload(ctx context.Context, _ *producerdpb.ReloadRequest) (*producerdpb.ReloadResponse, error) {
	changes, restart, err := a.d.Reload(ctx)
	if err != nil {
		return nil, adminError(err)
	}
	return &producerdpb.ReloadResponse{Changes: changes, RestartNeeded: restart, ConfigGeneration: a.d.cfgGen.Load()}, nil
}

func (a *admin) Drain(ctx context.Context, _ *producerdpb.DrainRequest) (*producerdpb.DrainResponse, error) {
	return &producerdpb.DrainResponse{Remaining: a.d.Drain(ctx)}, nil
}

func (a *admin) Resume(context.Context, *producerdpb.ResumeRequest) (*producerdpb.ResumeResponse, error) {
	if err := a.d.Resume(); err != nil {
		return nil, adminError(err)
	}
	return &producerdpb.ResumeResponse{}, nil
}

func (a *admin) CreateTopic(ctx context.Context, req *producerdpb.CreateTopicRequest) (*producerdpb.CreateTopicResponse, error) {
	done, err := a.d.CreateTopic(ctx, req)
	if err != nil {
		return nil, adminError(err)
	}
	return &producerdpb.CreateTopicResponse{Brokers: done}, nil
}

// adminMux serves the admin API over HTTP/JSON (bodies and answers in the proto's JSON
// form), /metrics and /healthz.
func (d *Daemon) adminMux() http.Handler {
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", d.met.handler())
	mux.HandleFunc("GET /healthz", d.healthz)
	mux.Handle("/debug/pprof/", d.requireToken(http.HandlerFunc(pprof.Index)))
	mux.Handle("/debug/pprof/profile", d.requireToken(http.HandlerFunc(pprof.Profile)))
	mux.Handle("/debug/pprof/trace", d.requireToken(http.HandlerFunc(pprof.Trace)))
	a := &admin{d: d}
	route := func(pattern string, newReq func() proto.Message, call func(context.Context, proto.Message) (proto.Message, error)) {
		mux.HandleFunc(pattern, func(w http.ResponseWriter, r *http.Request) {
			if !d.tokenOK(r.Header.Get("Authorization")) {
				writeJSON(w, http.StatusUnauthorized, HTTPResponse{Error: &HTTPError{Reason: "UNAUTHENTICATED", Message: ErrUnauthenticated.Error()}})
				return
			}
			req := newReq()
			if r.Method == http.MethodPost && r.ContentLength != 0 {
				var buf bytes.Buffer
				if _, err := buf.ReadFrom(http.MaxBytesReader(w, r.Body, 1<<20)); err != nil {
					writeJSON(w, http.StatusBadRequest, HTTPResponse{Error: &HTTPError{Reason: "INVALID_ARGUMENT", Message: err.Error()}})
					return
				}
				if buf.Len() > 0 {
					if err := protojson.Unmarshal(buf.Bytes(), req); err != nil {
						writeJSON(w, http.StatusBadRequest, HTTPResponse{Error: &HTTPError{Reason: "INVALID_ARGUMENT", Message: err.Error()}})
						return
					}
				}
			}
			ctx, cancel := context.WithTimeout(r.Context(), 5*time.Minute)
			defer cancel()
			resp, err := call(ctx, req)
			if err != nil {
				st := status.Convert(err)
				writeJSON(w, httpStatus(st.Code()), HTTPResponse{Error: &HTTPError{Reason: st.Code().String(), Message: st.Message()}})
				return
			}
			b, err := protojson.MarshalOptions{Multiline: true, UseProtoNames: true, EmitUnpopulated: true}.Marshal(resp)
			if err != nil {
				writeJSON(w, http.StatusInternalServerError, HTTPResponse{Error: &HTTPError{Reason: "INTERNAL", Message: err.Error()}})
				return
			}
			w.Header().Set("Content-Type", "application/json")
			_, _ = w.Write(append(b, '\n'))
		})
	}
	route("GET /v1/admin/status", func() proto.Message { return &producerdpb.StatusRequest{} },
		func(ctx context.Context, m proto.Message) (proto.Message, error) {
			return a.Status(ctx, m.(*producerdpb.StatusRequest))
		})
	route("GET /v1/admin/strategies", func() proto.Message { return &producerdpb.ListStrategiesRequest{} },
		func(ctx context.Context, m proto.Message) (proto.Message, error) {
			return a.ListStrategies(ctx, m.(*producerdpb.ListStrategiesRequest))
		})
	route("POST /v1/admin/strategies/swap", func() proto.Message { return &producerdpb.SwapStrategyRequest{} },
		func(ctx context.Context, m proto.Message) (proto.Message, error) {
			return a.SwapStrategy(ctx, m.(*producerdpb.SwapStrategyRequest))
		})
	route("POST /v1/admin/reload", func() proto.Message { return &producerdpb.ReloadRequest{} },
		func(ctx context.Context, m proto.Message) (proto.Message, error) {
			return a.Reload(ctx, m.(*producerdpb.ReloadRequest))
		})
	route("POST /v1/admin/drain", func() proto.Message { return &producerdpb.DrainRequest{} },
		func(ctx context.Context, m proto.Message) (proto.Message, error) {
			return a.Drain(ctx, m.(*producerdpb.DrainRequest))
		})
	route("POST /v1/admin/resume", func() proto.Message { return &producerdpb.ResumeRequest{} },
		func(ctx context.Context, m proto.Message) (proto.Message, error) {
			return a.Resume(ctx, m.(*producerdpb.ResumeRequest))
		})
	route("POST /v1/admin/topics", func() proto.Message { return &producerdpb.CreateTopicRequest{} },
		func(ctx context.Context, m proto.Message) (proto.Message, error) {
			return a.CreateTopic(ctx, m.(*producerdpb.CreateTopicRequest))
		})
	return mux
}
