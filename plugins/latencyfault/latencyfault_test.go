package latencyfault_test

import (
	"context"
	"errors"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/producerd/producerd/plugins/latencyfault"
	"github.com/producerd/producerd/plugins/sdk"
	"github.com/producerd/producerd/plugins/sdk/sdktest"
)

var epoch = time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)

// newStrategy builds a strategy from a preset with a manual clock and seeded
// randomness, applies adjust, and closes it when the test ends.
func newStrategy(t *testing.T, preset string, adjust func(*latencyfault.Options)) (latencyfault.Strategy, *sdktest.Clock) {
	t.Helper()
	opts, err := latencyfault.Preset(preset)
	if err != nil {
		t.Fatal(err)
	}
	clock := sdktest.NewClock(epoch)
	opts.Now = clock.Now
	opts.Rand = rand.New(rand.NewPCG(1, 2)).Uint64
	if adjust != nil {
		adjust(&opts)
	}
	s, err := latencyfault.New(opts)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s, clock
}

func health(t *testing.T, s latencyfault.Strategy, broker string) sdk.BrokerHealth {
	t.Helper()
	for _, row := range s.Health() {
		if row.Broker == broker {
			return row
		}
	}
	t.Fatalf("no health row for %s in %+v", broker, s.Health())
	return sdk.BrokerHealth{}
}

// isolatedFor returns how long broker stays isolated from now (0 when available).
func isolatedFor(t *testing.T, s latencyfault.Strategy, clock *sdktest.Clock, broker string) time.Duration {
	t.Helper()
	row := health(t, s, broker)
	if row.Available {
		if !row.Until.IsZero() {
			t.Errorf("%s available with Until %v, want zero", broker, row.Until)
		}
		return 0
	}
	return row.Until.Sub(clock.Now())
}

func TestConformance(t *testing.T) {
	for _, preset := range []string{latencyfault.PresetRocketMQ4, latencyfault.PresetRocketMQ5} {
		t.Run(preset, func(t *testing.T) {
			sdktest.Conformance(t, func(t *testing.T) sdk.Selector {
				opts, _ := latencyfault.Preset(preset)
				s, err := latencyfault.New(opts)
				if err != nil {
					t.Fatal(err)
				}
				t.Cleanup(func() { _ = s.Close() })
				return s
			})
		})
	}
	t.Run("with probe", func(t *testing.T) {
		sdktest.Conformance(t, func(t *testing.T) sdk.Selector {
			s, err := latencyfault.New(latencyfault.Options{
				Probe:         func(ctx context.Context, broker string) error { return errors.New("down") },
				ProbeInterval: time.Millisecond,
			})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = s.Close() })
			return s
		})
	})
}

func TestOptionsValidation(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		opts latencyfault.Options
		want []string // fragments of the joined error; nil means valid
	}{
		{"zero value", latencyfault.Options{}, nil},
		{"custom tables", latencyfault.Options{LatencyMax: []time.Duration{time.Second}, NotAvailable: []time.Duration{time.Minute}}, nil},
		{"share one", latencyfault.Options{MaxIsolatedShare: 1}, nil},
		{"one table only", latencyfault.Options{LatencyMax: []time.Duration{time.Second}}, []string{"set together"}},
		{"length mismatch", latencyfault.Options{LatencyMax: []time.Duration{1, 2}, NotAvailable: []time.Duration{1}}, []string{"index-aligned"}},
		{"empty tables", latencyfault.Options{LatencyMax: []time.Duration{}, NotAvailable: []time.Duration{}}, []string{"empty"}},
		{"not ascending", latencyfault.Options{LatencyMax: []time.Duration{2, 2}, NotAvailable: []time.Duration{0, 1}}, []string{"LatencyMax[1]"}},
		{"zero latency", latencyfault.Options{LatencyMax: []time.Duration{0}, NotAvailable: []time.Duration{1}}, []string{"LatencyMax[0]", "positive"}},
		{
			"every problem at once",
			latencyfault.Options{
				LatencyMax:       []time.Duration{time.Second, time.Millisecond},
				NotAvailable:     []time.Duration{-1, 0},
				IsolationLatency: -1,
				MaxIsolatedShare: 1.5,
				ProbeInterval:    -time.Second,
				ProbeTimeout:     -time.Second,
			},
			[]string{"LatencyMax[1]", "NotAvailable[0]", "IsolationLatency", "MaxIsolatedShare", "ProbeInterval", "ProbeTimeout"},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			s, err := latencyfault.New(tc.opts)
			if tc.want == nil {
				if err != nil {
					t.Fatalf("New: %v", err)
				}
				_ = s.Close()
				return
			}
			if !errors.Is(err, latencyfault.ErrInvalidOptions) {
				t.Fatalf("New error = %v, want ErrInvalidOptions", err)
			}
			for _, frag := range tc.want {
				if !strings.Contains(err.Error(), frag) {
					t.Errorf("error %q does not mention %q", err, frag)
				}
			}
		})
	}
}

func TestPreset(t *testing.T) {
	t.Parallel()
	if _, err := latencyfault.Preset("rocketmq3"); !errors.Is(err, latencyfault.ErrUnknownPreset) {
		t.Fatalf("Preset(rocketmq3) error = %v, want ErrUnknownPreset", err)
	}
	o, err := latencyfault.Preset(latencyfault.PresetRocketMQ5)
	if err != nil || !o.NeverShorten || o.IsolationLatency != 10*time.Second || len(o.LatencyMax) != 7 {
		t.Fatalf("Preset(rocketmq5) = %+v, %v", o, err)
	}
	o.LatencyMax[0] = time.Hour // the caller owns the copy
	if latencyfault.RocketMQ5LatencyMax[0] != 50*time.Millisecond {
		t.Fatal("Preset returned the package table, not a copy")
	}
	d, err := latencyfault.Preset("")
	if err != nil || d.NeverShorten || d.IsolationLatency != 30*time.Second {
		t.Fatalf(`Preset("") = %+v, %v`, d, err)
	}
}

func TestDurationTable(t *testing.T) {
	t.Parallel()
	ms := time.Millisecond
	tests := []struct {
		preset  string
		latency time.Duration
		want    time.Duration
	}{
		{latencyfault.PresetRocketMQ4, 0, 0},
		{latencyfault.PresetRocketMQ4, 50 * ms, 0},
		{latencyfault.PresetRocketMQ4, 100 * ms, 0},
		{latencyfault.PresetRocketMQ4, 549 * ms, 0},
		{latencyfault.PresetRocketMQ4, 550*ms - 1, 0},
		{latencyfault.PresetRocketMQ4, 550 * ms, 30 * time.Second},
		{latencyfault.PresetRocketMQ4, 999 * ms, 30 * time.Second},
		{latencyfault.PresetRocketMQ4, 1000 * ms, 60 * time.Second},
		{latencyfault.PresetRocketMQ4, 1999 * ms, 60 * time.Second},
		{latencyfault.PresetRocketMQ4, 2000 * ms, 120 * time.Second},
		{latencyfault.PresetRocketMQ4, 2999 * ms, 120 * time.Second},
		{latencyfault.PresetRocketMQ4, 3000 * ms, 180 * time.Second},
		{latencyfault.PresetRocketMQ4, 14999 * ms, 180 * time.Second},
		{latencyfault.PresetRocketMQ4, 15000 * ms, 600 * time.Second},
		{latencyfault.PresetRocketMQ4, time.Hour, 600 * time.Second},
		{latencyfault.PresetRocketMQ4, -time.Second, 0},
		{latencyfault.PresetRocketMQ5, 549 * ms, 0},
		{latencyfault.PresetRocketMQ5, 550 * ms, 2 * time.Second},
		{latencyfault.PresetRocketMQ5, 1799 * ms, 2 * time.Second},
		{latencyfault.PresetRocketMQ5, 1800 * ms, 5 * time.Second},
		{latencyfault.PresetRocketMQ5, 2999 * ms, 5 * time.Second},
		{latencyfault.PresetRocketMQ5, 3000 * ms, 6 * time.Second},
		{latencyfault.PresetRocketMQ5, 4999 * ms, 6 * time.Second},
		{latencyfault.PresetRocketMQ5, 5000 * ms, 10 * time.Second},
		{latencyfault.PresetRocketMQ5, 14999 * ms, 10 * time.Second},
		{latencyfault.PresetRocketMQ5, 15000 * ms, 30 * time.Second},
	}
	for _, tc := range tests {
		t.Run(tc.preset+"/"+tc.latency.String(), func(t *testing.T) {
			t.Parallel()
			s, clock := newStrategy(t, tc.preset, nil)
			sdktest.Observe(context.Background(), s, sdktest.OK("broker-a", tc.latency))
			if got := isolatedFor(t, s, clock, "broker-a"); got != tc.want {
				t.Fatalf("latency %v isolates for %v, want %v", tc.latency, got, tc.want)
			}
			if row := health(t, s, "broker-a"); row.Latency != max(tc.latency, 0) {
				t.Errorf("Health latency = %v, want %v", row.Latency, tc.latency)
			}
		})
	}
}

func TestIsolationFlag(t *testing.T) {
	t.Parallel()
	tests := []struct {
		preset  string
		latency time.Duration
		want    time.Duration
	}{
		{latencyfault.PresetRocketMQ4, time.Millisecond, 600 * time.Second},
		{latencyfault.PresetRocketMQ4, 20 * time.Second, 600 * time.Second},
		{latencyfault.PresetRocketMQ5, time.Millisecond, 10 * time.Second},
		// Java counts the isolation latency, not the real one: 20 s would give 30 s.
		{latencyfault.PresetRocketMQ5, 20 * time.Second, 10 * time.Second},
	}
	for _, tc := range tests {
		t.Run(tc.preset+"/"+tc.latency.String(), func(t *testing.T) {
			t.Parallel()
			s, clock := newStrategy(t, tc.preset, nil)
			sdktest.Observe(context.Background(), s, sdktest.Failure("broker-a", sdk.OutcomeConnectFailure, tc.latency))
			if got := isolatedFor(t, s, clock, "broker-a"); got != tc.want {
				t.Fatalf("isolation for %v, want %v", got, tc.want)
			}
		})
	}
}

func TestUpdateRules(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	t.Run("rocketmq4 fast success clears the isolation", func(t *testing.T) {
		t.Parallel()
		s, clock := newStrategy(t, latencyfault.PresetRocketMQ4, nil)
		sdktest.Observe(ctx, s, sdktest.Failure("broker-a", sdk.OutcomeTimeout, 3*time.Second))
		clock.Advance(time.Second)
		sdktest.Observe(ctx, s, sdktest.OK("broker-a", 5*time.Millisecond))
		if got := isolatedFor(t, s, clock, "broker-a"); got != 0 {
			t.Fatalf("still isolated for %v after a fast success", got)
		}
	})
	t.Run("rocketmq4 a later slow success overwrites", func(t *testing.T) {
		t.Parallel()
		s, clock := newStrategy(t, latencyfault.PresetRocketMQ4, nil)
		sdktest.Observe(ctx, s, sdktest.Failure("broker-a", sdk.OutcomeTimeout, 3*time.Second))
		sdktest.Observe(ctx, s, sdktest.OK("broker-a", 600*time.Millisecond))
		if got := isolatedFor(t, s, clock, "broker-a"); got != 30*time.Second {
			t.Fatalf("isolated for %v, want 30s (overwritten)", got)
		}
	})
	t.Run("rocketmq5 never shortens", func(t *testing.T) {
		t.Parallel()
		s, clock := newStrategy(t, latencyfault.PresetRocketMQ5, nil)
		sdktest.Observe(ctx, s, sdktest.OK("broker-a", 16*time.Second)) // 30 s
		clock.Advance(time.Second)
		sdktest.Observe(ctx, s, sdktest.OK("broker-a", 5*time.Millisecond), sdktest.OK("broker-a", 600*time.Millisecond))
		if got := isolatedFor(t, s, clock, "broker-a"); got != 29*time.Second {
			t.Fatalf("isolated for %v, want 29s (not shortened)", got)
		}
		if row := health(t, s, "broker-a"); row.Latency != 600*time.Millisecond {
			t.Errorf("latency = %v, want the last observed 600ms", row.Latency)
		}
	})
	t.Run("rocketmq5 extends", func(t *testing.T) {
		t.Parallel()
		s, clock := newStrategy(t, latencyfault.PresetRocketMQ5, nil)
		sdktest.Observe(ctx, s, sdktest.OK("broker-a", 600*time.Millisecond)) // 2 s
		clock.Advance(time.Second)
		sdktest.Observe(ctx, s, sdktest.Failure("broker-a", sdk.OutcomeBrokerError, time.Millisecond)) // 10 s
		if got := isolatedFor(t, s, clock, "broker-a"); got != 10*time.Second {
			t.Fatalf("isolated for %v, want 10s", got)
		}
	})
	t.Run("isolation expires", func(t *testing.T) {
		t.Parallel()
		s, clock := newStrategy(t, latencyfault.PresetRocketMQ5, nil)
		rt := sdktest.NewRoute("t", sdktest.Queues(2, 2))
		sdktest.Observe(ctx, s, sdktest.Failure("broker-a", sdk.OutcomeTimeout, time.Second))
		clock.Advance(10 * time.Second)
		seen := false
		for range 4 {
			seen = seen || sdktest.MustSelect(t, s, rt.First()).Broker == "broker-a"
		}
		if !seen || isolatedFor(t, s, clock, "broker-a") != 0 {
			t.Fatal("broker-a not back in rotation once its isolation ended")
		}
	})
}

func TestNextSelectionAvoidsFailedBroker(t *testing.T) {
	t.Parallel()
	for _, preset := range []string{latencyfault.PresetRocketMQ4, latencyfault.PresetRocketMQ5} {
		t.Run(preset, func(t *testing.T) {
			t.Parallel()
			s, _ := newStrategy(t, preset, nil)
			rt := sdktest.NewRoute("t", sdktest.Queues(3, 4))
			for range 5 {
				sdktest.MustSelect(t, s, rt.First())
			}
			sdktest.Observe(context.Background(), s, sdktest.Failure("broker-b", sdk.OutcomeConnectFailure, time.Millisecond))
			counts := map[string]int{}
			for range 120 {
				counts[sdktest.MustSelect(t, s, rt.First()).Broker]++
			}
			if counts["broker-b"] != 0 || counts["broker-a"] == 0 || counts["broker-c"] == 0 {
				t.Fatalf("picks after broker-b failed: %v", counts)
			}
		})
	}
}

func TestFleetStopsUsingHungBroker(t *testing.T) {
	t.Parallel()
	s, clock := newStrategy(t, latencyfault.PresetRocketMQ4, nil)
	f := sdktest.NewFleet("t", 3, 4)
	f.Clock = clock
	f.Set("broker-c", sdktest.Behavior{Latency: 3 * time.Second, Fail: sdk.OutcomeTimeout})
	for range 300 {
		f.Send(context.Background(), s, nil)
	}
	st := f.Stats()
	if st.Attempts["broker-c"] != 1 || st.Failed != 0 || st.Fallbacks != 0 {
		t.Fatalf("stats %+v: want exactly one attempt on broker-c, no failed send", st)
	}
}

func TestRetryAvoidance(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	tests := []struct {
		name     string
		isolated []string
		last     string
		want     []string // acceptable brokers
	}{
		{"alternative available", []string{"broker-a"}, "broker-b", []string{"broker-c"}},
		{"only last available", []string{"broker-a", "broker-c"}, "broker-b", []string{"broker-b"}},
		{"nothing isolated", nil, "broker-a", []string{"broker-b", "broker-c"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			s, _ := newStrategy(t, latencyfault.PresetRocketMQ4, func(o *latencyfault.Options) { o.MaxIsolatedShare = 1 })
			rt := sdktest.NewRoute("t", sdktest.Queues(3, 2))
			sdktest.MustSelect(t, s, rt.First())
			for _, b := range tc.isolated {
				sdktest.Observe(ctx, s, sdktest.Failure(b, sdk.OutcomeTimeout, time.Second))
			}
			for range 24 {
				got := sdktest.MustSelect(t, s, rt.Retry(tc.last, 1)).Broker
				ok := false
				for _, w := range tc.want {
					ok = ok || got == w
				}
				if !ok {
					t.Fatalf("retry after %s picked %s, want one of %v", tc.last, got, tc.want)
				}
			}
		})
	}
}

func TestAllIsolatedStillPicks(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s, _ := newStrategy(t, latencyfault.PresetRocketMQ4, func(o *latencyfault.Options) { o.MaxIsolatedShare = 1 })
	rt3 := sdktest.NewRoute("three", sdktest.Queues(3, 2))
	rt4 := sdktest.NewRoute("four", sdktest.QueuesOf(2, "broker-a", "broker-b", "broker-c", "broker-d"))
	sdktest.MustSelect(t, s, rt4.First())
	sdktest.Observe(ctx, s,
		sdktest.OK("broker-a", 3*time.Second),            // 180 s, counts 3 s
		sdktest.Failure("broker-b", sdk.OutcomeOther, 0), // 600 s, counts 30 s
		sdktest.OK("broker-c", time.Second),              // 60 s, counts 1 s
		sdktest.OK("broker-d", 2*time.Second),            // 120 s, counts 2 s
	)
	// Three brokers: the better half has one member, the least bad: broker-c.
	for range 10 {
		if got := sdktest.MustSelect(t, s, rt3.First()).Broker; got != "broker-c" {
			t.Fatalf("all isolated: picked %s, want broker-c", got)
		}
	}
	// A retry after broker-c leaves a and b; the better of them is broker-a.
	if got := sdktest.MustSelect(t, s, rt3.Retry("broker-c", 1)).Broker; got != "broker-a" {
		t.Fatalf("all isolated, retry after broker-c: picked %s, want broker-a", got)
	}
	// Four brokers: rotate over the better half, c and d.
	counts := map[string]int{}
	for range 40 {
		counts[sdktest.MustSelect(t, s, rt4.First()).Broker]++
	}
	if counts["broker-c"] != 20 || counts["broker-d"] != 20 {
		t.Fatalf("all isolated with four brokers: picks %v, want c and d 20 each", counts)
	}
}

func TestIsolationCap(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	t.Run("earliest expiry released", func(t *testing.T) {
		t.Parallel()
		s, clock := newStrategy(t, latencyfault.PresetRocketMQ4, nil)
		rt := sdktest.NewRoute("t", sdktest.Queues(4, 1)) // 4 known brokers: limit 2
		sdktest.MustSelect(t, s, rt.First())
		for _, b := range []string{"broker-a", "broker-b", "broker-c"} {
			sdktest.Observe(ctx, s, sdktest.Failure(b, sdk.OutcomeTimeout, time.Second))
			clock.Advance(time.Second)
		}
		// a ends first (600 s from t0): released for c.
		if isolatedFor(t, s, clock, "broker-a") != 0 {
			t.Error("broker-a still isolated: the cap should have released it")
		}
		if isolatedFor(t, s, clock, "broker-b") == 0 || isolatedFor(t, s, clock, "broker-c") == 0 {
			t.Error("broker-b and broker-c should be isolated")
		}
		for range 8 {
			if b := sdktest.MustSelect(t, s, rt.First()).Broker; b == "broker-b" || b == "broker-c" {
				t.Fatalf("picked isolated %s", b)
			}
		}
	})
	t.Run("new shorter isolation denied", func(t *testing.T) {
		t.Parallel()
		s, clock := newStrategy(t, latencyfault.PresetRocketMQ4, nil)
		rt := sdktest.NewRoute("t", sdktest.Queues(4, 1))
		sdktest.MustSelect(t, s, rt.First())
		sdktest.Observe(ctx, s,
			sdktest.Failure("broker-a", sdk.OutcomeTimeout, time.Second),
			sdktest.Failure("broker-b", sdk.OutcomeTimeout, time.Second),
			sdktest.OK("broker-c", 600*time.Millisecond), // would be 30 s: ends first, stays available
		)
		if got := isolatedFor(t, s, clock, "broker-c"); got != 0 {
			t.Errorf("broker-c isolated for %v, want available (cap)", got)
		}
		if row := health(t, s, "broker-c"); row.Latency != 600*time.Millisecond {
			t.Errorf("broker-c latency %v not recorded", row.Latency)
		}
		if isolatedFor(t, s, clock, "broker-a") != 600*time.Second || isolatedFor(t, s, clock, "broker-b") != 600*time.Second {
			t.Error("broker-a and broker-b should keep their isolation")
		}
	})
	t.Run("ties broken by latency then name", func(t *testing.T) {
		t.Parallel()
		s, clock := newStrategy(t, latencyfault.PresetRocketMQ4, nil)
		rt := sdktest.NewRoute("t", sdktest.Queues(2, 1)) // limit 1
		sdktest.MustSelect(t, s, rt.First())
		sdktest.Observe(ctx, s,
			sdktest.OK("broker-b", 700*time.Millisecond), // 30 s
			sdktest.OK("broker-a", 600*time.Millisecond), // 30 s, lower latency: released
		)
		if isolatedFor(t, s, clock, "broker-a") != 0 || isolatedFor(t, s, clock, "broker-b") != 30*time.Second {
			t.Fatalf("health %+v: want a available, b isolated", s.Health())
		}
	})
	t.Run("extension does not trigger the cap", func(t *testing.T) {
		t.Parallel()
		s, clock := newStrategy(t, latencyfault.PresetRocketMQ4, nil)
		rt := sdktest.NewRoute("t", sdktest.Queues(2, 1))
		sdktest.MustSelect(t, s, rt.First())
		sdktest.Observe(ctx, s, sdktest.OK("broker-a", 600*time.Millisecond))
		clock.Advance(time.Second)
		sdktest.Observe(ctx, s, sdktest.Failure("broker-a", sdk.OutcomeTimeout, time.Second))
		if got := isolatedFor(t, s, clock, "broker-a"); got != 600*time.Second {
			t.Fatalf("isolated for %v, want 600s", got)
		}
	})
	t.Run("share one isolates all", func(t *testing.T) {
		t.Parallel()
		s, clock := newStrategy(t, latencyfault.PresetRocketMQ4, func(o *latencyfault.Options) { o.MaxIsolatedShare = 1 })
		rt := sdktest.NewRoute("t", sdktest.Queues(4, 1))
		sdktest.MustSelect(t, s, rt.First())
		for _, q := range rt.Queues {
			sdktest.Observe(ctx, s, sdktest.Failure(q.Broker, sdk.OutcomeTimeout, time.Second))
		}
		for _, q := range rt.Queues {
			if isolatedFor(t, s, clock, q.Broker) == 0 {
				t.Errorf("%s available, want isolated", q.Broker)
			}
		}
	})
	t.Run("limit follows known brokers", func(t *testing.T) {
		t.Parallel()
		s, clock := newStrategy(t, latencyfault.PresetRocketMQ4, func(o *latencyfault.Options) { o.MaxIsolatedShare = 0.3 })
		rt := sdktest.NewRoute("t", sdktest.Queues(10, 1)) // ⌊0.3 × 10⌋ = 3
		sdktest.MustSelect(t, s, rt.First())
		for i, q := range rt.Queues {
			sdktest.Observe(ctx, s, sdktest.Failure(q.Broker, sdk.OutcomeTimeout, time.Second))
			clock.Advance(time.Duration(10-i) * time.Second)
		}
		n := 0
		for _, row := range s.Health() {
			if !row.Available {
				n++
			}
		}
		if n != 3 {
			t.Fatalf("%d brokers isolated, want 3: %+v", n, s.Health())
		}
	})
}

func TestSeed(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	old, oldClock := newStrategy(t, latencyfault.PresetRocketMQ4, nil)
	rt := sdktest.NewRoute("t", sdktest.Queues(4, 1))
	sdktest.MustSelect(t, old, rt.First())
	sdktest.Observe(ctx, old, sdktest.Failure("broker-a", sdk.OutcomeTimeout, time.Second), sdktest.OK("broker-b", 7*time.Millisecond))
	rows := old.Health()

	t.Run("same tables", func(t *testing.T) {
		t.Parallel()
		s, clock := newStrategy(t, latencyfault.PresetRocketMQ4, nil)
		clock.Set(oldClock.Now())
		s.Seed(rows)
		if got := isolatedFor(t, s, clock, "broker-a"); got != 600*time.Second {
			t.Errorf("seeded isolation %v, want 600s", got)
		}
		if row := health(t, s, "broker-b"); !row.Available || row.Latency != 7*time.Millisecond {
			t.Errorf("broker-b row %+v", row)
		}
		if b := sdktest.MustSelect(t, s, rt.First()).Broker; b == "broker-a" {
			t.Error("picked seeded isolated broker-a")
		}
	})
	t.Run("clamped to the new tables", func(t *testing.T) {
		t.Parallel()
		s, clock := newStrategy(t, latencyfault.PresetRocketMQ5, nil)
		clock.Set(oldClock.Now())
		s.Seed(rows)
		if got := isolatedFor(t, s, clock, "broker-a"); got != 30*time.Second {
			t.Errorf("seeded isolation %v, want 30s (the largest rocketmq5 duration)", got)
		}
	})
	t.Run("cap enforced", func(t *testing.T) {
		t.Parallel()
		s, clock := newStrategy(t, latencyfault.PresetRocketMQ4, nil)
		now := clock.Now()
		s.Seed([]sdk.BrokerHealth{
			{Broker: "broker-a", Until: now.Add(time.Minute)},
			{Broker: "broker-b", Until: now.Add(2 * time.Minute)},
			{Broker: "broker-c", Available: true},
			{Broker: "broker-d"}, // unavailable without Until: taken as available
			{Broker: "broker-e", Until: now.Add(3 * time.Minute)},
		})
		// 5 known brokers: limit 2, so the isolation ending first (broker-a) is dropped.
		if isolatedFor(t, s, clock, "broker-a") != 0 || isolatedFor(t, s, clock, "broker-b") != 2*time.Minute ||
			isolatedFor(t, s, clock, "broker-d") != 0 || isolatedFor(t, s, clock, "broker-e") != 3*time.Minute {
			t.Fatalf("after seeding: health %+v", s.Health())
		}
	})
}

func TestDescribe(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		opts latencyfault.Options
		want time.Duration
	}{
		{"default", latencyfault.Options{}, 550 * time.Millisecond},
		{"first row isolates", latencyfault.Options{LatencyMax: []time.Duration{time.Second}, NotAvailable: []time.Duration{time.Minute}}, time.Second},
		{"never isolates", latencyfault.Options{LatencyMax: []time.Duration{time.Second}, NotAvailable: []time.Duration{0}}, 0},
	}
	for _, tc := range tests {
		s, err := latencyfault.New(tc.opts)
		if err != nil {
			t.Fatal(err)
		}
		if d := s.Describe(); d != (sdk.Descriptor{Name: "latencyfault", UrgentLatency: tc.want, LocalApply: true}) {
			t.Errorf("%s: Describe() = %+v", tc.name, d)
		}
		_ = s.Close()
	}
	r5, _ := latencyfault.Preset(latencyfault.PresetRocketMQ5)
	s, _ := latencyfault.New(r5)
	defer s.Close()
	if got := s.Describe().UrgentLatency; got != 550*time.Millisecond {
		t.Errorf("rocketmq5 UrgentLatency = %v", got)
	}
}

var sink int

func BenchmarkSelect(b *testing.B) {
	ctx := context.Background()
	rt := sdktest.NewRoute("bench", sdktest.Queues(4, 8))
	for _, bc := range []struct {
		name     string
		isolated []string
		s        *sdk.Selection
	}{
		{"healthy", nil, rt.First()},
		{"healthy-retry", nil, rt.Retry("broker-b", 1)},
		{"one-isolated", []string{"broker-b"}, rt.First()},
		{"all-isolated", []string{"broker-a", "broker-b", "broker-c", "broker-d"}, rt.First()},
	} {
		b.Run(bc.name, func(b *testing.B) {
			s, err := latencyfault.New(latencyfault.Options{MaxIsolatedShare: 1})
			if err != nil {
				b.Fatal(err)
			}
			defer s.Close()
			for _, br := range bc.isolated {
				s.Observe(ctx, []sdk.Outcome{sdktest.Failure(br, sdk.OutcomeTimeout, time.Second)})
			}
			b.ReportAllocs()
			for b.Loop() {
				i, _ := s.Select(ctx, bc.s)
				sink += i
			}
		})
	}
	b.Run("parallel-one-isolated", func(b *testing.B) {
		s, _ := latencyfault.New(latencyfault.Options{})
		defer s.Close()
		s.Observe(ctx, []sdk.Outcome{sdktest.Failure("broker-b", sdk.OutcomeTimeout, time.Second)})
		sel := rt.First()
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			n := 0
			for pb.Next() {
				i, _ := s.Select(ctx, sel)
				n += i
			}
			_ = n
		})
	})
}

func BenchmarkObserve(b *testing.B) {
	ctx := context.Background()
	s, _ := latencyfault.New(latencyfault.Options{})
	defer s.Close()
	batch := make([]sdk.Outcome, 64)
	for i := range batch {
		batch[i] = sdktest.OK(sdktest.BrokerName(i%4), time.Duration(i)*time.Millisecond)
	}
	b.ReportAllocs()
	for b.Loop() {
		s.Observe(ctx, batch)
	}
}

func TestSelectDoesNotAllocate(t *testing.T) {
	ctx := context.Background()
	s, clock := newStrategy(t, latencyfault.PresetRocketMQ4, nil)
	rt := sdktest.NewRoute("t", sdktest.Queues(4, 8))
	sdktest.MustSelect(t, s, rt.First())
	sdktest.Observe(ctx, s, sdktest.Failure("broker-b", sdk.OutcomeTimeout, time.Second))
	first, retry := rt.First(), rt.Retry("broker-a", 1)
	if n := testing.AllocsPerRun(1000, func() {
		_, _ = s.Select(ctx, first)
		_, _ = s.Select(ctx, retry)
	}); n != 0 {
		t.Fatalf("Select allocates %v times per run with one broker isolated", n)
	}
	clock.Advance(time.Hour) // the isolation ends; the snapshot is pruned once
	_, _ = s.Select(ctx, first)
	for range 64 {
		_, _ = s.Select(ctx, first)
	}
	if n := testing.AllocsPerRun(1000, func() { _, _ = s.Select(ctx, first) }); n != 0 {
		t.Fatalf("Select allocates %v times per run after the isolation ended", n)
	}
}
