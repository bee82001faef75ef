package sdktest_test

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/producerd/producerd/plugins/sdk"
	"github.com/producerd/producerd/plugins/sdk/sdktest"
)

// rr is the smallest selector that passes the suite: round-robin with last-broker
// avoidance.
type rr struct{ next atomic.Uint64 }

func (r *rr) Select(_ context.Context, s *sdk.Selection) (int, error) {
	n := len(s.Queues)
	if n == 0 {
		return -1, errors.New("no queues")
	}
	pos := int(r.next.Add(1) % uint64(n))
	for k := range n {
		if j := (pos + k) % n; s.Queues[j].Broker != s.LastBroker {
			return j, nil
		}
	}
	return pos, nil
}

func TestConformanceMinimal(t *testing.T) {
	sdktest.Conformance(t, func(*testing.T) sdk.Selector { return &rr{} })
}

// Broken selectors, run in a child process so that their failures do not fail this
// test; the parent checks that the suite caught each one.
type (
	alwaysZero   struct{}
	outOfRange   struct{}
	panicky      struct{ rr }
	alwaysPanics struct{}
)

func (alwaysPanics) Select(context.Context, *sdk.Selection) (int, error) { panic("always") }

func (alwaysZero) Select(context.Context, *sdk.Selection) (int, error) { return 0, nil }
func (outOfRange) Select(_ context.Context, s *sdk.Selection) (int, error) {
	return len(s.Queues), nil
}
func (p *panicky) Select(ctx context.Context, s *sdk.Selection) (int, error) {
	_ = s.Queues[0] // panics on an empty list
	return p.rr.Select(ctx, s)
}

var broken = map[string]func() sdk.Selector{
	"alwaysZero":   func() sdk.Selector { return alwaysZero{} },
	"outOfRange":   func() sdk.Selector { return outOfRange{} },
	"panicky":      func() sdk.Selector { return &panicky{} },
	"alwaysPanics": func() sdk.Selector { return alwaysPanics{} },
}

func TestBrokenChild(t *testing.T) {
	name := os.Getenv("SDKTEST_BROKEN")
	if name == "" {
		t.Skip("run by TestConformanceCatchesBroken")
	}
	sdktest.Conformance(t, func(*testing.T) sdk.Selector { return broken[name]() })
}

func TestConformanceCatchesBroken(t *testing.T) {
	if testing.Short() {
		t.Skip("spawns child test processes")
	}
	tests := []struct {
		name       string
		wantFailed []string
	}{
		{"alwaysZero", []string{"--- FAIL: TestBrokenChild/LastBrokerAvoidance"}},
		{"outOfRange", []string{"--- FAIL: TestBrokenChild/ValidIndexes"}},
		{"panicky", []string{"--- FAIL: TestBrokenChild/EmptyQueues"}},
		// A panicking Select fails each check that selects, and the suite goes on to
		// the last check, which passes.
		{"alwaysPanics", []string{"--- FAIL: TestBrokenChild/ValidIndexes",
			"--- FAIL: TestBrokenChild/Concurrent", "Select panicked: always", "--- SKIP: TestBrokenChild/Describe"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cmd := exec.Command(os.Args[0], "-test.run=^TestBrokenChild$", "-test.v")
			cmd.Env = append(os.Environ(), "SDKTEST_BROKEN="+tc.name)
			out, err := cmd.CombinedOutput()
			if err == nil {
				t.Fatalf("the suite passed a broken selector:\n%s", out)
			}
			for _, want := range tc.wantFailed {
				if !strings.Contains(string(out), want) {
					t.Fatalf("want %q in:\n%s", want, out)
				}
			}
		})
	}
}

func TestQueues(t *testing.T) {
	t.Parallel()
	qs := sdktest.Queues(2, 3)
	want := []sdk.Queue{{Broker: "broker-a", ID: 0}, {Broker: "broker-a", ID: 1}, {Broker: "broker-a", ID: 2}, {Broker: "broker-b", ID: 0}, {Broker: "broker-b", ID: 1}, {Broker: "broker-b", ID: 2}}
	if len(qs) != len(want) {
		t.Fatalf("Queues(2, 3) = %v", qs)
	}
	for i := range qs {
		if qs[i] != want[i] {
			t.Fatalf("Queues(2, 3) = %v, want %v", qs, want)
		}
	}
	if got := sdktest.Brokers(qs); len(got) != 2 || got[1] != "broker-b" {
		t.Errorf("Brokers = %v", got)
	}
	for i, want := range map[int]string{0: "broker-a", 25: "broker-z", 26: "broker-26"} {
		if got := sdktest.BrokerName(i); got != want {
			t.Errorf("BrokerName(%d) = %q, want %q", i, got, want)
		}
	}
}

func TestRoute(t *testing.T) {
	t.Parallel()
	r := sdktest.NewRoute("t", sdktest.Queues(1, 1))
	s := r.Retry("broker-a", 2)
	if s.Topic != "t" || s.RouteVersion != 1 || s.LastBroker != "broker-a" || s.Attempt != 2 || len(s.Queues) != 1 {
		t.Fatalf("Retry = %+v", s)
	}
	r.Update(sdktest.Queues(2, 2))
	if s := r.First(); s.RouteVersion != 2 || len(s.Queues) != 4 || s.LastBroker != "" {
		t.Fatalf("First after Update = %+v", s)
	}
}

func TestClock(t *testing.T) {
	t.Parallel()
	start := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	c := sdktest.NewClock(start)
	c.Advance(time.Minute)
	if got := c.Now(); !got.Equal(start.Add(time.Minute)) {
		t.Fatalf("Now = %v", got)
	}
	c.Set(start)
	if !c.Now().Equal(start) {
		t.Fatal("Set did not move the clock")
	}
}

// observer records outcomes.
type observer struct {
	rr
	got []sdk.Outcome
}

func (o *observer) Observe(_ context.Context, out []sdk.Outcome) { o.got = append(o.got, out...) }

func TestFleet(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	f := sdktest.NewFleet("t", 2, 2)
	clock := sdktest.NewClock(time.Unix(0, 0))
	f.Clock = clock
	f.Set("broker-a", sdktest.Behavior{Latency: time.Second, Fail: sdk.OutcomeTimeout})
	f.Set("broker-b", sdktest.Behavior{Latency: 10 * time.Millisecond})
	sel := &observer{}
	for range 10 {
		res := f.Send(ctx, sel, nil)
		if !res.OK || res.Last().Queue.Broker != "broker-b" {
			t.Fatalf("send %+v: want success on broker-b", res)
		}
		if len(res.Attempts) == 2 && res.Attempts[0].Outcome.Isolation != true {
			t.Fatal("failed attempt not reported with Isolation")
		}
	}
	st := f.Stats()
	if st.Sends != 10 || st.Succeeded != 10 || st.Attempts["broker-b"] != 10 || st.Failures["broker-a"] != st.Attempts["broker-a"] {
		t.Fatalf("stats %+v", st)
	}
	if len(sel.got) != st.Attempts["broker-a"]+st.Attempts["broker-b"] {
		t.Fatalf("observed %d outcomes for %+v", len(sel.got), st)
	}
	wantClock := time.Duration(st.Attempts["broker-a"])*time.Second + 10*10*time.Millisecond
	if got := clock.Now().Sub(time.Unix(0, 0)); got != wantClock {
		t.Fatalf("clock advanced %v, want %v", got, wantClock)
	}

	// All brokers down: every send fails after 1 + Retries attempts.
	f.Reset()
	f.Set("broker-b", sdktest.Behavior{Fail: sdk.OutcomeConnectFailure})
	res := f.Send(ctx, sel, nil)
	if res.OK || len(res.Attempts) != 3 || res.Attempts[1].Queue.Broker == res.Attempts[0].Queue.Broker {
		t.Fatalf("send with all brokers down: %+v", res)
	}
}

func TestFleetFallback(t *testing.T) {
	t.Parallel()
	f := sdktest.NewFleet("t", 2, 1)
	st := f.Run(context.Background(), outOfRange{}, 4)
	if st.Fallbacks != 4 || st.Succeeded != 4 {
		t.Fatalf("stats %+v: want 4 fallbacks", st)
	}
	f.SetQueues(nil)
	if res := f.Send(context.Background(), outOfRange{}, nil); res.OK || len(res.Attempts) != 0 {
		t.Fatalf("send without queues: %+v", res)
	}
}

// needsMessage declares NeedsMessage and records what it was given.
type needsMessage struct {
	rr
	got atomic.Pointer[sdk.MessageInfo]
}

func (n *needsMessage) Describe() sdk.Descriptor {
	return sdk.Descriptor{Name: "n", NeedsMessage: true}
}
func (n *needsMessage) Select(ctx context.Context, s *sdk.Selection) (int, error) {
	n.got.Store(s.Message)
	return n.rr.Select(ctx, s)
}

func TestFleetPassesMessageOnlyWhenNeeded(t *testing.T) {
	t.Parallel()
	f := sdktest.NewFleet("t", 1, 1)
	msg := &sdk.MessageInfo{ShardingKey: "k"}
	n := &needsMessage{}
	f.Send(context.Background(), n, msg)
	if n.got.Load() != msg {
		t.Fatal("message not passed to a selector that needs it")
	}
	if d := sdktest.Describe(&rr{}); d != (sdk.Descriptor{}) {
		t.Fatalf("Describe of a plain selector = %+v, want zero", d)
	}
}

func TestMustSelectAndObserve(t *testing.T) {
	t.Parallel()
	r := sdktest.NewRoute("t", sdktest.Queues(2, 1))
	if q := sdktest.MustSelect(t, &rr{}, r.First()); q.Broker == "" {
		t.Fatal("MustSelect returned no queue")
	}
	if sdktest.Observe(context.Background(), &rr{}, sdktest.OK("broker-a", 0)) {
		t.Fatal("Observe claims a plain selector observes")
	}
	o := &observer{}
	if !sdktest.Observe(context.Background(), o, sdktest.Failure("broker-a", sdk.OutcomeOther, time.Second)) || len(o.got) != 1 || !o.got[0].Isolation {
		t.Fatalf("Observe on an observer: %+v", o.got)
	}
}
