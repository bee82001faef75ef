package core_test

import (
	"context"
	"errors"
	"net"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/producerd/producerd/core"
	"github.com/producerd/producerd/devbroker"
	"github.com/producerd/producerd/plugins/sdk"
	"github.com/producerd/producerd/remoting"
)

// These tests drive the send loop against the in-process dev broker, whose faults make
// every branch reachable without a real cluster. The same behaviour is proven against
// Apache RocketMQ in integration_test.go.

func startDev(t *testing.T, cfg devbroker.Config) *devbroker.Cluster {
	t.Helper()
	if cfg.Brokers == nil {
		cfg.Brokers = []string{"broker-a", "broker-b"}
	}
	if cfg.Topics == nil {
		cfg.Topics = map[string]int{"T": 4}
	}
	c, err := devbroker.Start(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func devProducer(t *testing.T, dev *devbroker.Cluster, mod func(*core.ProducerConfig)) *core.Producer {
	t.Helper()
	cfg := core.ProducerConfig{
		Group:  "g_" + strings.NewReplacer("/", "_", " ", "_").Replace(t.Name()),
		Client: core.ClientConfig{NameServers: []string{dev.NameServerAddr()}},
	}
	if mod != nil {
		mod(&cfg)
	}
	p, err := core.NewProducer(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close(context.Background()) })
	return p
}

func setFault(t *testing.T, b *devbroker.Broker, f devbroker.Fault) {
	t.Helper()
	if err := b.SetFault(f); err != nil {
		t.Fatal(err)
	}
}

// recorder is a strategy that records what it sees and delegates to a round-robin walk.
type recorder struct {
	mu         sync.Mutex
	selections []sdk.Selection
	outcomes   []sdk.Outcome
	next       atomic.Int64
	index      func(s *sdk.Selection) (int, error) // overrides the walk when set
	needsMsg   bool
}

func (r *recorder) Select(_ context.Context, s *sdk.Selection) (int, error) {
	r.mu.Lock()
	cp := *s
	cp.Queues = slices.Clone(s.Queues)
	r.selections = append(r.selections, cp)
	r.mu.Unlock()
	if r.index != nil {
		return r.index(s)
	}
	for range len(s.Queues) {
		i := int(r.next.Add(1)) % len(s.Queues)
		if s.Queues[i].Broker != s.LastBroker {
			return i, nil
		}
	}
	return 0, nil
}

func (r *recorder) Observe(_ context.Context, os []sdk.Outcome) {
	r.mu.Lock()
	r.outcomes = append(r.outcomes, os...)
	r.mu.Unlock()
}

func (r *recorder) Describe() sdk.Descriptor {
	return sdk.Descriptor{Name: "recorder", NeedsMessage: r.needsMsg}
}

func (r *recorder) snapshot() ([]sdk.Selection, []sdk.Outcome) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.selections), slices.Clone(r.outcomes)
}

func TestRetryOnRetryableCode(t *testing.T) {
	t.Parallel()
	dev := startDev(t, devbroker.Config{})
	setFault(t, dev.Broker("broker-a"), devbroker.Fault{Errors: []devbroker.InjectedError{{Code: remoting.SystemBusy, Rate: 1}}})
	rec := &recorder{}
	p := devProducer(t, dev, func(c *core.ProducerConfig) { c.Strategy = rec })
	for i := range 10 {
		res, err := p.Send(context.Background(), &core.Message{Topic: "T", Body: []byte("x")})
		if err != nil {
			t.Fatalf("send %d: %v", i, err)
		}
		if res.Queue.Broker != "broker-b" {
			t.Fatalf("send %d stored on %s", i, res.Queue.Broker)
		}
	}
	sels, outs := rec.snapshot()
	retried := 0
	for _, s := range sels {
		if s.Attempt > 0 {
			retried++
			if s.LastBroker != "broker-a" {
				t.Errorf("retry selection LastBroker = %q, want broker-a", s.LastBroker)
			}
		}
	}
	if retried == 0 {
		t.Fatal("no send was retried; the strategy never picked broker-a first")
	}
	for _, o := range outs {
		if o.Broker == "broker-a" && (o.Kind != sdk.OutcomeBrokerError || o.Code != int(remoting.SystemBusy) || !o.Isolation) {
			t.Errorf("broker-a outcome %+v, want broker-error code 2 with isolation", o)
		}
	}
}

func TestNonRetryableCodeFailsAtOnce(t *testing.T) {
	t.Parallel()
	dev := startDev(t, devbroker.Config{})
	for _, b := range dev.Brokers() {
		setFault(t, b, devbroker.Fault{Errors: []devbroker.InjectedError{{Code: remoting.MessageIllegal, Rate: 1}}})
	}
	p := devProducer(t, dev, nil)
	_, err := p.Send(context.Background(), &core.Message{Topic: "T", Body: []byte("x")})
	var re *remoting.Error
	var se *core.SendError
	if !errors.As(err, &re) || re.Code != remoting.MessageIllegal || !errors.As(err, &se) || se.Attempts != 1 {
		t.Fatalf("got %v, want one attempt ending in MESSAGE_ILLEGAL", err)
	}
}

func TestStoredNotOK(t *testing.T) {
	t.Parallel()
	dev := startDev(t, devbroker.Config{})
	for _, b := range dev.Brokers() {
		setFault(t, b, devbroker.Fault{Errors: []devbroker.InjectedError{{Code: remoting.FlushDiskTimeout, Rate: 1}}})
	}
	p := devProducer(t, dev, nil)
	res, err := p.Send(context.Background(), &core.Message{Topic: "T", Body: []byte("x")})
	if err != nil || res.Status != core.FlushDiskTimeout || res.Attempts != 1 {
		t.Fatalf("default: %+v, %v; want FLUSH_DISK_TIMEOUT after one attempt", res, err)
	}
	p2 := devProducer(t, dev, func(c *core.ProducerConfig) {
		c.Group += "_retry"
		c.RetryAnotherBrokerWhenNotStoreOK = true
	})
	res, err = p2.Send(context.Background(), &core.Message{Topic: "T", Body: []byte("x")})
	if err != nil || res.Status != core.FlushDiskTimeout || res.Attempts != 3 {
		t.Fatalf("retrying: %+v, %v; want FLUSH_DISK_TIMEOUT after three attempts", res, err)
	}
}

// A hung broker costs one capped attempt, not the whole budget.
func TestAttemptCapSurvivesHungBroker(t *testing.T) {
	t.Parallel()
	dev := startDev(t, devbroker.Config{})
	setFault(t, dev.Broker("broker-a"), devbroker.Fault{Hang: true})
	t.Cleanup(func() { dev.Broker("broker-a").SetFault(devbroker.Fault{}) })
	rec := &recorder{index: func(s *sdk.Selection) (int, error) {
		for i, q := range s.Queues { // broker-a first, then anything else
			if (s.Attempt == 0) == (q.Broker == "broker-a") {
				return i, nil
			}
		}
		return 0, nil
	}}
	p := devProducer(t, dev, func(c *core.ProducerConfig) {
		c.Strategy = rec
		c.SendTimeout = 900 * time.Millisecond // cap = 300ms per attempt
	})
	res, err := p.Send(context.Background(), &core.Message{Topic: "T", Body: []byte("x")})
	if err != nil {
		t.Fatalf("send with broker-a hung: %v", err)
	}
	if res.Queue.Broker != "broker-b" || res.Attempts != 2 {
		t.Fatalf("result %+v, want broker-b on the second attempt", res)
	}
	_, outs := rec.snapshot()
	if outs[0].Kind != sdk.OutcomeTimeout || outs[0].Broker != "broker-a" {
		t.Fatalf("first outcome %+v, want a timeout on broker-a", outs[0])
	}

	// Without the cap (the Java behaviour) the first attempt eats the budget.
	p2 := devProducer(t, dev, func(c *core.ProducerConfig) {
		c.Group += "_nocap"
		c.Strategy = rec
		c.SendTimeout = 300 * time.Millisecond
		c.AttemptTimeout = -1
	})
	_, err = p2.Send(context.Background(), &core.Message{Topic: "T", Body: []byte("x")})
	var se *core.SendError
	if !errors.Is(err, core.ErrTimeout) || !errors.As(err, &se) || se.Attempts != 1 {
		t.Fatalf("uncapped: %v, want a timeout after one attempt", err)
	}
}

func TestConnectFailureRetriesElsewhere(t *testing.T) {
	t.Parallel()
	dev := startDev(t, devbroker.Config{})
	rec := &recorder{}
	p := devProducer(t, dev, func(c *core.ProducerConfig) { c.Strategy = rec })
	if _, err := p.Send(context.Background(), &core.Message{Topic: "T", Body: []byte("warm")}); err != nil {
		t.Fatal(err)
	}
	// Down but still routed: the client's cached route points at a refused port.
	setFault(t, dev.Broker("broker-a"), devbroker.Fault{Down: true, Route: devbroker.RouteListed})
	for i := range 10 {
		res, err := p.Send(context.Background(), &core.Message{Topic: "T", Body: []byte("x")})
		if err != nil || res.Queue.Broker != "broker-b" {
			t.Fatalf("send %d: %+v %v", i, res, err)
		}
	}
	_, outs := rec.snapshot()
	var connectFailures int
	for _, o := range outs {
		if o.Kind == sdk.OutcomeConnectFailure || (o.Kind == sdk.OutcomeOther && o.Broker == "broker-a") {
			connectFailures++
			if o.Broker != "broker-a" || !o.Isolation {
				t.Errorf("outcome %+v", o)
			}
		}
	}
	if connectFailures == 0 {
		t.Fatal("no connect failure was reported to the strategy")
	}
}

func TestAsyncRetriesTransportNotBrokerCodes(t *testing.T) {
	t.Parallel()
	dev := startDev(t, devbroker.Config{})
	first := func(s *sdk.Selection) (int, error) {
		for i, q := range s.Queues {
			if (s.Attempt == 0) == (q.Broker == "broker-a") {
				return i, nil
			}
		}
		return 0, nil
	}
	p := devProducer(t, dev, func(c *core.ProducerConfig) {
		c.Strategy = &recorder{index: first}
		c.SendTimeout = 900 * time.Millisecond
	})
	ctx := context.Background()

	setFault(t, dev.Broker("broker-a"), devbroker.Fault{Hang: true})
	res, err := p.SendFuture(ctx, &core.Message{Topic: "T", Body: []byte("x")}).Wait(ctx)
	if err != nil || res.Queue.Broker != "broker-b" || res.Attempts != 2 {
		t.Fatalf("async with broker-a hung: %+v %v; want broker-b on attempt 2", res, err)
	}
	if res.Queue.ID < 0 || res.Queue.ID >= 4 {
		t.Fatalf("retry used queue id %d", res.Queue.ID)
	}

	setFault(t, dev.Broker("broker-a"), devbroker.Fault{Errors: []devbroker.InjectedError{{Code: remoting.SystemBusy, Rate: 1}}})
	_, err = p.SendFuture(ctx, &core.Message{Topic: "T", Body: []byte("x")}).Wait(ctx)
	var re *remoting.Error
	var se *core.SendError
	if !errors.As(err, &re) || re.Code != remoting.SystemBusy || !errors.As(err, &se) || se.Attempts != 1 {
		t.Fatalf("async broker error: %v; want SYSTEM_BUSY without a retry", err)
	}
}

func TestSelectionContents(t *testing.T) {
	t.Parallel()
	dev := startDev(t, devbroker.Config{})
	for _, needs := range []bool{false, true} {
		rec := &recorder{needsMsg: needs}
		p := devProducer(t, dev, func(c *core.ProducerConfig) {
			c.Strategy = rec
			c.Group += map[bool]string{true: "_msg", false: ""}[needs]
		})
		m := &core.Message{Topic: "T", Body: []byte("hello"), Keys: []string{"k1"}, Tags: "tg"} // keyed messages skip the strategy (order_test.go)
		if _, err := p.Send(context.Background(), m); err != nil {
			t.Fatal(err)
		}
		sels, outs := rec.snapshot()
		s := sels[0]
		if s.Topic != "T" || s.RouteVersion == 0 || len(s.Queues) != 8 || s.Attempt != 0 || s.LastBroker != "" ||
			s.Remaining <= 0 || s.Remaining > core.DefaultSendTimeout {
			t.Fatalf("selection %+v", s)
		}
		if !slices.IsSortedFunc(s.Queues, func(a, b sdk.Queue) int { return strings.Compare(a.Broker, b.Broker) }) {
			t.Fatalf("queues not ordered by broker: %v", s.Queues)
		}
		if needs != (s.Message != nil) {
			t.Fatalf("NeedsMessage=%v but Message=%v", needs, s.Message)
		}
		if needs && (s.Message.ShardingKey != "" || s.Message.Tags != "tg" || s.Message.Keys[0] != "k1" || s.Message.Size != 5) {
			t.Fatalf("message info %+v", s.Message)
		}
		if len(outs) != 1 || outs[0].Kind != sdk.OutcomeOK || outs[0].Latency <= 0 {
			t.Fatalf("outcomes %+v", outs)
		}
	}
}

func TestBadStrategyFallsBack(t *testing.T) {
	t.Parallel()
	dev := startDev(t, devbroker.Config{})
	var fallbacks atomic.Int64
	for name, idx := range map[string]func(*sdk.Selection) (int, error){
		"out of range": func(s *sdk.Selection) (int, error) { return len(s.Queues), nil },
		"negative":     func(*sdk.Selection) (int, error) { return -1, nil },
		"error":        func(*sdk.Selection) (int, error) { return 0, errors.New("plugin is confused") },
	} {
		p := devProducer(t, dev, func(c *core.ProducerConfig) {
			c.Group += "_" + strings.ReplaceAll(name, " ", "_")
			c.Strategy = &recorder{index: idx}
			c.Hooks.OnDecision = func(_ time.Duration, fallback bool, err error) {
				if fallback && err != nil {
					fallbacks.Add(1)
				}
			}
		})
		if _, err := p.Send(context.Background(), &core.Message{Topic: "T", Body: []byte("x")}); err != nil {
			t.Fatalf("%s: send failed: %v", name, err)
		}
	}
	if fallbacks.Load() != 3 {
		t.Fatalf("%d fallbacks counted, want 3", fallbacks.Load())
	}
}

// provider counts generation acquisitions and releases.
type provider struct {
	sel                sdk.Selector
	acquired, released atomic.Int64
}

func (p *provider) Select(ctx context.Context, s *sdk.Selection) (int, error) {
	return p.sel.Select(ctx, s)
}
func (p *provider) Acquire() (sdk.Selector, func()) {
	p.acquired.Add(1)
	return p.sel, func() { p.released.Add(1) }
}

func TestProviderPinsOneGenerationPerSend(t *testing.T) {
	t.Parallel()
	dev := startDev(t, devbroker.Config{})
	setFault(t, dev.Broker("broker-a"), devbroker.Fault{Errors: []devbroker.InjectedError{{Code: remoting.SystemBusy, Rate: 1}}})
	prov := &provider{sel: &recorder{}}
	p := devProducer(t, dev, func(c *core.ProducerConfig) { c.Strategy = prov })
	ctx := context.Background()
	for range 6 {
		if _, err := p.Send(ctx, &core.Message{Topic: "T", Body: []byte("x")}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := p.SendFuture(ctx, &core.Message{Topic: "T", Body: []byte("x")}).Wait(ctx); err != nil && !errors.Is(err, remoting.ErrTimeout) {
		var re *remoting.Error
		if !errors.As(err, &re) {
			t.Fatal(err)
		}
	}
	if a, r := prov.acquired.Load(), prov.released.Load(); a != 7 || r != 7 {
		t.Fatalf("acquired %d released %d, want 7 and 7 (one per send, retries included)", a, r)
	}
}

func TestHeartbeatAndUnregister(t *testing.T) {
	t.Parallel()
	dev := startDev(t, devbroker.Config{})
	p, err := core.NewProducer(core.ProducerConfig{Group: "g_hb", Client: core.ClientConfig{
		NameServers: []string{dev.NameServerAddr()}, InstanceName: "hb", Heartbeat: 20 * time.Millisecond}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := p.Send(context.Background(), &core.Message{Topic: "T", Body: []byte("x")}); err != nil {
		t.Fatal(err)
	}
	id := p.Client().ID()
	waitFor(t, "heartbeats naming g_hb on both brokers", func() bool {
		for _, b := range dev.Brokers() {
			if !slices.Contains(b.Producers()["g_hb"], id) || !slices.Contains(b.Producers()["CLIENT_INNER_PRODUCER"], id) {
				return false
			}
		}
		return true
	})
	if err := p.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	for _, b := range dev.Brokers() {
		if slices.Contains(b.Producers()["g_hb"], id) {
			t.Fatalf("%s still lists g_hb/%s after Close", b.Name(), id)
		}
	}
}

func TestRouteKeptWhenNameServerUnreachable(t *testing.T) {
	t.Parallel()
	dev := startDev(t, devbroker.Config{})
	var nsDown atomic.Bool
	var refreshes atomic.Int64
	nsAddr := dev.NameServerAddr()
	dialer := func(ctx context.Context, network, addr string) (net.Conn, error) {
		if addr == nsAddr {
			refreshes.Add(1)
			if nsDown.Load() {
				return nil, errors.New("name server unreachable (test)")
			}
		}
		var d net.Dialer
		return d.DialContext(ctx, network, addr)
	}
	p := devProducer(t, dev, func(c *core.ProducerConfig) {
		c.Client.RouteRefresh = 20 * time.Millisecond
		c.Client.Remoting.Dialer = dialer
	})
	ctx := context.Background()
	if _, err := p.Send(ctx, &core.Message{Topic: "T", Body: []byte("x")}); err != nil {
		t.Fatal(err)
	}
	version := p.Client().Routes()[0].Version
	nsDown.Store(true)
	p.Client().Remoting().CloseConn(nsAddr)
	start := refreshes.Load()
	waitFor(t, "failed route refreshes", func() bool { return refreshes.Load() > start+2 })
	if _, err := p.Send(ctx, &core.Message{Topic: "T", Body: []byte("x")}); err != nil {
		t.Fatalf("send with the NameServer unreachable: %v", err)
	}
	if r := p.Client().Routes()[0]; r.Version != version || len(r.Queues) != 8 {
		t.Fatalf("route changed while the NameServer was unreachable: %+v", r)
	}
}

func TestRouteVersionChangesWithQueues(t *testing.T) {
	t.Parallel()
	dev := startDev(t, devbroker.Config{})
	var routeQueries atomic.Int64
	p := devProducer(t, dev, func(c *core.ProducerConfig) {
		c.Client.RouteRefresh = 20 * time.Millisecond
		c.Client.Remoting.Hooks.OnRequest = func(e remoting.RequestEvent) {
			if e.Code == remoting.GetRouteInfoByTopic && e.Err == nil {
				routeQueries.Add(1)
			}
		}
	})
	if _, err := p.Send(context.Background(), &core.Message{Topic: "T", Body: []byte("x")}); err != nil {
		t.Fatal(err)
	}
	v1 := p.Client().Routes()[0].Version
	// Refreshes of an unchanged route keep the version.
	n := routeQueries.Load()
	waitFor(t, "three route refreshes", func() bool { return routeQueries.Load() >= n+3 })
	if v := p.Client().Routes()[0].Version; v != v1 {
		t.Fatalf("version changed from %d to %d without a route change", v1, v)
	}
	if err := dev.CreateTopic("T", 6); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the 12-queue route", func() bool { return len(p.Client().Routes()[0].Queues) == 12 })
	if v := p.Client().Routes()[0].Version; v == v1 {
		t.Fatal("queue set changed but the route version did not")
	}
}

func TestAutoCreateThroughTBW102(t *testing.T) {
	t.Parallel()
	dev := startDev(t, devbroker.Config{AutoCreate: true})
	p := devProducer(t, dev, nil)
	res, err := p.Send(context.Background(), &core.Message{Topic: "Fresh", Body: []byte("x")})
	if err != nil {
		t.Fatal(err)
	}
	if n := len(dev.Broker(res.Queue.Broker).Messages("Fresh")); n != 1 {
		t.Fatalf("%d messages stored in Fresh", n)
	}
	if r := p.Client().Routes()[0]; r.Topic != "Fresh" || !r.FromDefault || len(r.Queues) != 8 {
		t.Fatalf("route %+v, want the TBW102 fallback clamped to 4 queues per broker", r)
	}
	// Without auto-create, an unknown topic has no route.
	dev2 := startDev(t, devbroker.Config{})
	p2 := devProducer(t, dev2, nil)
	if _, err := p2.Send(context.Background(), &core.Message{Topic: "Fresh", Body: []byte("x")}); !errors.Is(err, core.ErrNoRoute) {
		t.Fatalf("unknown topic without TBW102: %v", err)
	}
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// A batch's result lists its ids one per message, as MsgID joins them.
func TestBatchResultIDs(t *testing.T) {
	t.Parallel()
	dev := startDev(t, devbroker.Config{})
	p := devProducer(t, dev, nil)
	msgs := []*core.Message{{Topic: "T", Body: []byte("1")}, {Topic: "T", Body: []byte("2")}, {Topic: "T", Body: []byte("3")}}
	res, err := p.SendBatch(context.Background(), msgs)
	if err != nil {
		t.Fatal(err)
	}
	if len(res.MsgIDs) != 3 || strings.Join(res.MsgIDs, ",") != res.MsgID || res.MsgIDs[0] == res.MsgIDs[1] {
		t.Fatalf("MsgIDs %q, MsgID %q", res.MsgIDs, res.MsgID)
	}
	one, err := p.Send(context.Background(), msgs[0])
	if err != nil || one.MsgIDs != nil {
		t.Fatalf("single send: MsgIDs %q, %v", one.MsgIDs, err)
	}
}

// ForgetTopic drops the route (so the refresh stops asking for it); the next send
// fetches it again and succeeds.
func TestForgetTopic(t *testing.T) {
	t.Parallel()
	dev := startDev(t, devbroker.Config{Topics: map[string]int{"T": 4, "U": 2}})
	p := devProducer(t, dev, nil)
	ctx := context.Background()
	for _, topic := range []string{"T", "U"} {
		if _, err := p.Send(ctx, &core.Message{Topic: topic, Body: []byte("x")}); err != nil {
			t.Fatal(err)
		}
	}
	routed := func() []string {
		var out []string
		for _, r := range p.Client().Routes() {
			out = append(out, r.Topic)
		}
		slices.Sort(out)
		return out
	}
	if got := routed(); !slices.Equal(got, []string{"T", "U"}) {
		t.Fatalf("routes %v, want T and U", got)
	}
	p.ForgetTopic("U")
	if got := routed(); !slices.Equal(got, []string{"T"}) {
		t.Fatalf("routes after forgetting U: %v, want T", got)
	}
	if _, err := p.Send(ctx, &core.Message{Topic: "U", Body: []byte("again")}); err != nil {
		t.Fatalf("send after forgetting: %v", err)
	}
	if got := routed(); !slices.Equal(got, []string{"T", "U"}) {
		t.Fatalf("routes after the next send: %v, want T and U", got)
	}
}
