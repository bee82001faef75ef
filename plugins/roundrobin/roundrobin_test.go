package roundrobin_test

import (
	"context"
	"errors"
	"math/rand/v2"
	"testing"

	"github.com/producerd/producerd/plugins/roundrobin"
	"github.com/producerd/producerd/plugins/sdk"
	"github.com/producerd/producerd/plugins/sdk/sdktest"
)

func TestConformance(t *testing.T) {
	sdktest.Conformance(t, func(*testing.T) sdk.Selector { return roundrobin.New() })
}

// fixed returns a WithRand source that yields starts one after another.
func fixed(starts ...uint64) roundrobin.Option {
	i := 0
	return roundrobin.WithRand(func() uint64 {
		v := starts[i%len(starts)]
		i++
		return v
	})
}

func TestSequence(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name  string
		start uint64
		n     int
		want  []int
	}{
		{"from zero", 0, 4, []int{1, 2, 3, 0, 1}},
		{"from random start", 6, 4, []int{3, 0, 1, 2, 3}},
		{"single queue", 12345, 1, []int{0, 0, 0}},
		{"counter wraps", ^uint64(0) - 1, 3, []int{(int(^uint64(0) % 3)), 0, 1, 2}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			sel := roundrobin.New(fixed(tc.start))
			rt := sdktest.NewRoute("t", sdktest.Queues(tc.n, 1))
			for k, want := range tc.want {
				i, err := sel.Select(context.Background(), rt.First())
				if err != nil || i != want {
					t.Fatalf("pick %d = %d, %v; want %d", k, i, err, want)
				}
			}
		})
	}
}

func TestEvenSpread(t *testing.T) {
	t.Parallel()
	sel := roundrobin.New()
	rt := sdktest.NewRoute("t", sdktest.Queues(3, 4))
	// Every queue gets exactly its share: the counter is consecutive.
	counts := make([]int, len(rt.Queues))
	for range 12 * 100 {
		i, _ := sel.Select(context.Background(), rt.First())
		counts[i]++
	}
	for i, c := range counts {
		if c != 100 {
			t.Errorf("queue %d picked %d times, want 100", i, c)
		}
	}
}

func TestRouteVersionResetsStart(t *testing.T) {
	t.Parallel()
	sel := roundrobin.New(fixed(0, 10))
	rt := sdktest.NewRoute("t", sdktest.Queues(4, 1))
	if q := sdktest.MustSelect(t, sel, rt.First()); q.Broker != "broker-b" {
		t.Fatalf("first pick = %s, want broker-b (start 0)", q.Broker)
	}
	rt.Update(sdktest.Queues(4, 1)) // same list, new version: new random start
	if q := sdktest.MustSelect(t, sel, rt.First()); q.Broker != "broker-d" {
		t.Fatalf("pick after route change = %s, want broker-d (start 10)", q.Broker)
	}
}

func TestTopicsIndependent(t *testing.T) {
	t.Parallel()
	sel := roundrobin.New(fixed(0, 0))
	a := sdktest.NewRoute("a", sdktest.Queues(4, 1))
	b := sdktest.NewRoute("b", sdktest.Queues(4, 1))
	for k := range 3 {
		qa, qb := sdktest.MustSelect(t, sel, a.First()), sdktest.MustSelect(t, sel, b.First())
		if qa != qb {
			t.Fatalf("pick %d: topic a got %v, topic b %v; counters must be per topic", k, qa, qb)
		}
	}
}

func TestLastBroker(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		start  uint64
		queues []sdk.Queue
		last   string
		want   sdk.Queue
	}{
		// Position 1 is broker-a queue 1: walk forward to broker-b queue 0.
		{"walks past last broker", 0, sdktest.Queues(2, 2), "broker-a", sdk.Queue{Broker: "broker-b", ID: 0}},
		// Position 3 is broker-b queue 1; walk wraps to broker-a queue 0.
		{"wraps around", 2, sdktest.Queues(2, 2), "broker-b", sdk.Queue{Broker: "broker-a", ID: 0}},
		{"position already fine", 1, sdktest.Queues(2, 2), "broker-a", sdk.Queue{Broker: "broker-b", ID: 0}},
		{"only last broker: plain pick", 0, sdktest.Queues(1, 3), "broker-a", sdk.Queue{Broker: "broker-a", ID: 1}},
		{"unknown last broker", 0, sdktest.Queues(2, 2), "broker-x", sdk.Queue{Broker: "broker-a", ID: 1}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			sel := roundrobin.New(fixed(tc.start))
			rt := sdktest.NewRoute("t", tc.queues)
			if got := sdktest.MustSelect(t, sel, rt.Retry(tc.last, 1)); got != tc.want {
				t.Fatalf("got %v, want %v", got, tc.want)
			}
		})
	}
}

func TestEmpty(t *testing.T) {
	t.Parallel()
	_, err := roundrobin.New().Select(context.Background(), &sdk.Selection{Topic: "t"})
	if !errors.Is(err, roundrobin.ErrNoQueues) {
		t.Fatalf("err = %v, want ErrNoQueues", err)
	}
}

func TestDescribe(t *testing.T) {
	t.Parallel()
	if d := sdktest.Describe(roundrobin.New()); d != (sdk.Descriptor{Name: "roundrobin", LocalApply: true}) {
		t.Fatalf("Describe() = %+v", d)
	}
}

func TestFleetAvoidsFailedBroker(t *testing.T) {
	t.Parallel()
	f := sdktest.NewFleet("t", 3, 4)
	f.Set("broker-b", sdktest.Behavior{Fail: sdk.OutcomeConnectFailure})
	sel := roundrobin.New(roundrobin.WithRand(rand.New(rand.NewPCG(1, 1)).Uint64))
	st := f.Run(context.Background(), sel, 300)
	// Round-robin never isolates, but a retry never goes back to the broker that just
	// failed, so every send succeeds by its second attempt.
	if st.Failed != 0 || st.Fallbacks != 0 {
		t.Fatalf("stats %+v: want no failed send and no fallback", st)
	}
}

func TestManyTopicsBounded(t *testing.T) {
	t.Parallel()
	sel := roundrobin.New()
	qs := sdktest.Queues(2, 2)
	for i := range roundrobin.MaxTopics + 10 {
		sdktest.MustSelect(t, sel, &sdk.Selection{Topic: sdktest.BrokerName(i), RouteVersion: 1, Queues: qs})
	}
}

var sink int

func BenchmarkSelect(b *testing.B) {
	sel := roundrobin.New()
	rt := sdktest.NewRoute("bench", sdktest.Queues(4, 8))
	ctx := context.Background()
	for _, bc := range []struct {
		name string
		s    *sdk.Selection
	}{{"first", rt.First()}, {"retry", rt.Retry("broker-c", 1)}} {
		b.Run(bc.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				i, _ := sel.Select(ctx, bc.s)
				sink += i
			}
		})
	}
	b.Run("parallel", func(b *testing.B) {
		b.ReportAllocs()
		s := rt.First()
		b.RunParallel(func(pb *testing.PB) {
			n := 0
			for pb.Next() {
				i, _ := sel.Select(ctx, s)
				n += i
			}
			_ = n
		})
	})
}

func TestSelectDoesNotAllocate(t *testing.T) {
	sel := roundrobin.New()
	rt := sdktest.NewRoute("t", sdktest.Queues(4, 8))
	first, retry := rt.First(), rt.Retry("broker-a", 1)
	sdktest.MustSelect(t, sel, first)
	if n := testing.AllocsPerRun(1000, func() {
		_, _ = sel.Select(context.Background(), first)
		_, _ = sel.Select(context.Background(), retry)
	}); n != 0 {
		t.Fatalf("Select allocates %v times per run", n)
	}
}
