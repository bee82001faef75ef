package wasm_test

import (
	"context"
	"errors"
	"math/rand/v2"
	"strconv"
	"testing"
	"time"

	"github.com/producerd/producerd/host/wasm"
	"github.com/producerd/producerd/internal/strategywire"
	"github.com/producerd/producerd/plugins/examples/keyhash"
	"github.com/producerd/producerd/plugins/sdk"
	"github.com/producerd/producerd/plugins/sdk/sdktest"
)

// loadHeavy builds pkg and loads it, skipping under -race when the module is large.
func loadHeavy(t *testing.T, pkg string, adjust func(*wasm.Options)) wasm.Strategy {
	t.Helper()
	path := buildModule(t, pkg)
	skipHeavyUnderRace(t, path)
	opts := testOptions(t, nil)
	if adjust != nil {
		adjust(&opts)
	}
	return load(t, path, opts)
}

// TestDescribeAndFeatures: each module describes itself as its in-process strategy
// does, and declares the optional interfaces it implements (every module built with a
// constructor takes settings: Configurable).
func TestDescribeAndFeatures(t *testing.T) {
	for _, bs := range benchStrategies {
		native := bs.native(t)
		_, obs := native.(sdk.Observer)
		_, hr := native.(sdk.HealthReporter)
		_, hs := native.(sdk.HealthSeeder)
		want := strategywire.Features{Observer: obs, HealthReporter: hr, HealthSeeder: hs, Describer: true, Configurable: true}
		s := loadHeavy(t, bs.pkg, nil)
		if got, want := s.Describe(), native.(sdk.Describer).Describe(); got != want {
			t.Errorf("%s: Describe() = %+v, in-process %+v", bs.name, got, want)
		}
		if got := s.Features(); got != want {
			t.Errorf("%s: Features() = %+v, want %+v", bs.name, got, want)
		}
	}
}

// TestKeyHashSameAsInProcess: the module places every keyed message exactly where the
// in-process strategy does, on first attempts and retries, for any queue count.
func TestKeyHashSameAsInProcess(t *testing.T) {
	s := loadHeavy(t, pkgKeyHash, func(o *wasm.Options) { o.Instances = 2 })
	native := keyhash.New()
	r := rand.New(rand.NewPCG(3, 4))
	ctx := context.Background()
	for k := range 2000 {
		rt := sdktest.NewRoute("t"+strconv.Itoa(k%7), sdktest.Queues(1+r.IntN(6), 1+r.IntN(9)))
		sel := rt.First()
		if k%3 == 0 {
			sel = rt.Retry(rt.Queues[0].Broker, 1)
		}
		key := "order-" + strconv.Itoa(r.IntN(100000))
		if k%5 == 0 {
			key = "键-😀-" + key
		}
		sel.Message = &sdk.MessageInfo{Keys: []string{"", key}, Size: 10}
		if k%2 == 0 {
			sel.Message.ShardingKey = key
		}
		want, err := native.Select(ctx, sel)
		if err != nil {
			t.Fatal(err)
		}
		got, err := s.Select(ctx, sel)
		if err != nil || got != want {
			t.Fatalf("key %q over %d queues: wasm = %d, %v; in-process = %d", key, len(sel.Queues), got, err, want)
		}
	}
}

// avoids checks that n decisions (spread over every instance) never pick broker.
func avoids(t *testing.T, s sdk.Selector, rt *sdktest.Route, broker string, n int) {
	t.Helper()
	for k := range n {
		if q := sdktest.MustSelect(t, s, rt.First()); q.Broker == broker {
			t.Fatalf("decision %d picked isolated %s", k, broker)
		}
	}
}

func row(t *testing.T, s sdk.HealthReporter, broker string) sdk.BrokerHealth {
	t.Helper()
	for _, r := range s.Health() {
		if r.Broker == broker {
			return r
		}
	}
	t.Fatalf("no health row for %s in %+v", broker, s.Health())
	return sdk.BrokerHealth{}
}

// TestLatencyFaultState: an outcome reaches every instance before Observe returns, the
// module judges isolation with the host's clock, a Seed reaches every instance, and an
// instance that dies is replaced by one seeded from a sibling.
func TestLatencyFaultState(t *testing.T) {
	s := loadHeavy(t, pkgLatencyFault, func(o *wasm.Options) {
		o.Instances = 3
		o.Settings = []byte(`{"preset":"rocketmq4","max_isolated_share":1}`)
	})
	ctx := context.Background()
	rt := sdktest.NewRoute("orders", sdktest.Queues(4, 4))
	avoids(t, s, rt, "", 30)

	before := time.Now()
	s.Observe(ctx, []sdk.Outcome{sdktest.Failure("broker-b", sdk.OutcomeConnectFailure, 3*time.Second)})
	avoids(t, s, rt, "broker-b", 300)
	// Java 4.9 tables: an isolating outcome counts as 30 s of latency: 600 s apart.
	r := row(t, s, "broker-b")
	if r.Available || r.Until.Before(before.Add(590*time.Second)) || r.Until.After(time.Now().Add(610*time.Second)) {
		t.Fatalf("broker-b health %+v: want isolated until about now+600s", r)
	}

	s.Seed([]sdk.BrokerHealth{{Broker: "broker-c", Until: time.Now().Add(time.Hour), Latency: time.Second}})
	if r := row(t, s, "broker-c"); r.Available {
		t.Fatalf("broker-c after Seed: %+v, want isolated", r)
	}

	for i := range 3 {
		if !wasm.KillInstance(s, i) {
			t.Fatalf("instance %d was not live", i)
		}
		waitLive(t, s)
	}
	if st := s.Stats(); st.Replaced != 3 {
		t.Fatalf("stats %+v: want 3 replacements", st)
	}
	// Every instance is a replacement now; each was seeded from a sibling.
	for k := range 300 {
		if q := sdktest.MustSelect(t, s, rt.First()); q.Broker == "broker-b" || q.Broker == "broker-c" {
			t.Fatalf("decision %d after replacement picked isolated %s", k, q.Broker)
		}
	}
	if r := row(t, s, "broker-b"); r.Available {
		t.Fatalf("broker-b after replacement: %+v, want still isolated", r)
	}
}

// TestRouteSlotsReused: more topics than an instance's route slots; every decision
// stays valid as slots are recycled.
func TestRouteSlotsReused(t *testing.T) {
	s := loadHeavy(t, pkgRoundRobin, func(o *wasm.Options) { o.Instances = 1; o.NoLocalApply = true })
	routes := make([]*sdktest.Route, 5000)
	for i := range routes {
		routes[i] = sdktest.NewRoute("topic-"+strconv.Itoa(i), sdktest.Queues(1+i%4, 1+i%3))
	}
	for pass := range 2 {
		for i, rt := range routes {
			q := sdktest.MustSelect(t, s, rt.First())
			if q.ID >= int32(1+i%3) {
				t.Fatalf("pass %d topic %d: queue %+v not in the route", pass, i, q)
			}
		}
	}
}

// TestMessageOnlyWhenNeeded: a strategy that does not declare NeedsMessage decides
// the same with or without one (the host does not send it).
func TestMessageOnlyWhenNeeded(t *testing.T) {
	s := loadHeavy(t, pkgRoundRobin, func(o *wasm.Options) { o.Instances = 1; o.NoLocalApply = true })
	rt := sdktest.NewRoute("t", sdktest.Queues(3, 1))
	seen := map[string]bool{}
	for range 30 {
		sel := rt.First()
		sel.Message = &sdk.MessageInfo{ShardingKey: "k"}
		seen[sdktest.MustSelect(t, s, sel).Broker] = true
	}
	if len(seen) != 3 {
		t.Fatalf("round-robin over 3 brokers picked %v", seen)
	}
}

// TestSettings: settings reach Configure; a module rejects bad ones at Load; a module
// without Configure accepts only empty settings.
func TestSettings(t *testing.T) {
	for _, tc := range []struct {
		pkg, settings string
		ok            bool
	}{
		{pkgLatencyFault, `{"preset":"rocketmq5","max_isolated_share":0.3}`, true},
		{pkgLatencyFault, `{}`, true},
		{pkgLatencyFault, `{"preset":"nope"}`, false},
		{pkgLatencyFault, `{"unknown_key":1}`, false},
		{pkgRoundRobin, `{}`, true},
		{pkgRoundRobin, `{"salt":"x"}`, false},
	} {
		path := buildModule(t, tc.pkg)
		skipHeavyUnderRace(t, path)
		opts := testOptions(t, nil)
		opts.Instances = 1
		opts.Settings = []byte(tc.settings)
		s, err := wasm.Load(context.Background(), path, opts)
		if err == nil {
			_ = s.Close()
		}
		if tc.ok != (err == nil) || err != nil && !errors.Is(err, sdk.ErrInvalidSettings) {
			t.Errorf("%s with %s: Load error %v", tc.pkg, tc.settings, err)
		}
	}
}

// TestSelectDoesNotAllocate: in steady state a decision allocates nothing on the host,
// also when the caller passes a message the strategy does not need.
func TestSelectDoesNotAllocate(t *testing.T) {
	for _, pkg := range []string{pkgRoundRobin, pkgKeyHash} {
		s := loadHeavy(t, pkg, func(o *wasm.Options) { o.Instances = 1; o.NoLocalApply = true })
		sel := sdktest.NewRoute("t", sdktest.Queues(4, 8)).Retry("broker-b", 1)
		sel.Message = &sdk.MessageInfo{ShardingKey: "k", Keys: []string{"k"}}
		sdktest.MustSelect(t, s, sel)
		if n := testing.AllocsPerRun(200, func() { _, _ = s.Select(context.Background(), sel) }); n != 0 {
			t.Errorf("%s: Select allocates %v times per decision", pkg, n)
		}
	}
}

// TestOrdinaryOutcomesBatched: an OK outcome waits for a batch, but Health sees it, and a
// failure after it is applied in order (the J4 rule: the later outcome wins).
func TestOrdinaryOutcomesBatched(t *testing.T) {
	s := loadHeavy(t, pkgLatencyFault, func(o *wasm.Options) {
		o.Instances = 2
		o.Settings = []byte(`{"preset":"rocketmq4","max_isolated_share":1}`)
	})
	ctx := context.Background()
	rt := sdktest.NewRoute("orders", sdktest.Queues(4, 4))
	s.Observe(ctx, []sdk.Outcome{sdktest.OK("broker-b", time.Millisecond)})
	if r := row(t, s, "broker-b"); !r.Available {
		t.Fatalf("broker-b after a fast OK: %+v", r)
	}
	s.Observe(ctx, []sdk.Outcome{sdktest.OK("broker-c", time.Millisecond)}) // pending
	s.Observe(ctx, []sdk.Outcome{sdktest.Failure("broker-c", sdk.OutcomeTimeout, time.Second)})
	avoids(t, s, rt, "broker-c", 200)
	if r := row(t, s, "broker-c"); r.Available {
		t.Fatalf("broker-c after OK then failure: %+v, want isolated", r)
	}
}
