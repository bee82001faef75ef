package sdktest

import (
	"context"
	"fmt"
	"math/rand/v2"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/producerd/producerd/plugins/sdk"
)

// Conformance runs the suite every selector must pass, each check a subtest. newSelector
// is called once per subtest and must return a fresh selector; register its cleanup
// (for example Close) with t.Cleanup. The subtests run one after another.
//
// The rules checked, beyond "never panic":
//
//   - ValidIndexes: over many random selections (1–8 brokers × 1–16 queues, several
//     topics, changing route versions, first attempts and retries, random messages for
//     strategies that declare NeedsMessage) Select returns a nil error and an index in
//     [0, len(Queues)). An error or a bad index is legal at the contract level (the host
//     falls back and counts it) but a selector that does it on a valid input fails here.
//   - RouteChange: the queue list of one topic grows and shrinks (16, 3, 1, 24, 2
//     queues) with a new RouteVersion each time; indexes stay valid for the new list.
//   - SingleQueue: with one queue, Select returns 0, also on a retry whose LastBroker is
//     that queue's broker.
//   - EmptyQueues: the host never calls Select with an empty list, but a selector
//     called with nil or zero-length Queues must not panic; any result is accepted (the
//     host would treat it as a fallback).
//   - LastBrokerAvoidance: on a retry (Attempt ≥ 1, LastBroker set) with at least two
//     brokers, a fresh selector never picks a queue on LastBroker. For a selector that
//     declares NeedsMessage the check uses a Message without keys (a keyed message may
//     have to stay on its queue to keep per-key order).
//   - Deadline: with a context that is already cancelled, or one whose deadline passes
//     during the call, Select returns (a valid index or an error) instead of blocking.
//     This is a liveness check with a generous watchdog, not a timing assertion.
//   - Concurrent: many goroutines select while others change the route, observe
//     outcomes and read health; run the suite with -race.
//   - Observe (selectors implementing sdk.Observer): nil, empty and large batches,
//     unknown and empty broker names, every outcome kind, zero, negative and huge
//     latencies are accepted, and selection stays valid afterwards.
//   - Health (sdk.HealthReporter / sdk.HealthSeeder): Health never returns a row without
//     a broker name; Seed accepts nil, unknown brokers and odd rows.
//   - Describe (sdk.Describer): Name is not empty and UrgentLatency is not negative.
//
// A panic in the strategy fails the check it happened in (with the panic value) and the
// suite goes on with the next check.
func Conformance(t *testing.T, newSelector func(t *testing.T) sdk.Selector) {
	t.Helper()
	run := func(name string, check func(t *testing.T)) {
		t.Run(name, func(t *testing.T) {
			defer func() {
				if p := recover(); p != nil {
					t.Errorf("the strategy panicked: %v", p)
				}
			}()
			check(t)
		})
	}
	run("ValidIndexes", func(t *testing.T) { testValidIndexes(t, newSelector(t)) })
	run("RouteChange", func(t *testing.T) { testRouteChange(t, newSelector(t)) })
	run("SingleQueue", func(t *testing.T) { testSingleQueue(t, newSelector(t)) })
	run("EmptyQueues", func(t *testing.T) { testEmptyQueues(t, newSelector(t)) })
	run("LastBrokerAvoidance", func(t *testing.T) { testLastBroker(t, newSelector) })
	run("Deadline", func(t *testing.T) { testDeadline(t, newSelector(t)) })
	run("Concurrent", func(t *testing.T) { testConcurrent(t, newSelector(t)) })
	run("Observe", func(t *testing.T) { testObserve(t, newSelector(t)) })
	run("Health", func(t *testing.T) { testHealth(t, newSelector(t)) })
	run("Describe", func(t *testing.T) { testDescribe(t, newSelector(t)) })
}

// callSelect is sel.Select with a panic turned into an error, for goroutines other than
// the test's own, where a panic would end the whole test binary.
func callSelect(ctx context.Context, sel sdk.Selector, s *sdk.Selection) (i int, err error) {
	defer func() {
		if p := recover(); p != nil {
			i, err = -1, fmt.Errorf("the strategy's Select panicked: %v", p)
		}
	}()
	return sel.Select(ctx, s)
}

// safely runs f, turning a panic into an error.
func safely(what string, f func()) (err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("%s panicked: %v", what, p)
		}
	}()
	f()
	return nil
}

// randomMessage returns a message with a random mix of sharding key and keys, some
// of them empty, when the selector needs messages; nil otherwise.
func randomMessage(r *rand.Rand, needs bool) *sdk.MessageInfo {
	if !needs {
		return nil
	}
	m := &sdk.MessageInfo{Size: r.IntN(4096)}
	switch r.IntN(4) {
	case 0:
		m.ShardingKey = "order-" + strconv.Itoa(r.IntN(1000))
	case 1:
		m.Keys = []string{"key-" + strconv.Itoa(r.IntN(1000)), "other"}
	case 2:
		m.ShardingKey = "é中😀-" + strconv.Itoa(r.IntN(50))
	}
	return m
}

func checkIndex(t *testing.T, sel sdk.Selector, s *sdk.Selection) int {
	t.Helper()
	i, err := callSelect(context.Background(), sel, s)
	if err != nil {
		t.Fatalf("Select(%s): unexpected error %v", describeSelection(s), err)
	}
	if i < 0 || i >= len(s.Queues) {
		t.Fatalf("Select(%s) = %d, outside [0, %d)", describeSelection(s), i, len(s.Queues))
	}
	return i
}

func testValidIndexes(t *testing.T, sel sdk.Selector) {
	needs := Describe(sel).NeedsMessage
	r := rand.New(rand.NewPCG(1, 2))
	routes := make([]*Route, 4)
	for i := range routes {
		routes[i] = NewRoute("topic-"+strconv.Itoa(i), Queues(1+r.IntN(8), 1+r.IntN(16)))
	}
	for range 3000 {
		rt := routes[r.IntN(len(routes))]
		if r.IntN(50) == 0 {
			rt.Update(Queues(1+r.IntN(8), 1+r.IntN(16)))
		}
		s := rt.First()
		if r.IntN(3) == 0 {
			s = rt.Retry(rt.Queues[r.IntN(len(rt.Queues))].Broker, 1+r.IntN(2))
		}
		s.Message = randomMessage(r, needs)
		checkIndex(t, sel, s)
	}
}

func testRouteChange(t *testing.T, sel sdk.Selector) {
	needs := Describe(sel).NeedsMessage
	r := rand.New(rand.NewPCG(3, 4))
	rt := NewRoute("route-change", Queues(4, 4))
	shapes := [][2]int{{4, 4}, {3, 1}, {1, 1}, {6, 4}, {2, 1}, {1, 8}}
	for _, sh := range shapes {
		rt.Update(Queues(sh[0], sh[1]))
		for k := range 64 {
			s := rt.First()
			if k%4 == 3 {
				s = rt.Retry(rt.Queues[0].Broker, 1)
			}
			s.Message = randomMessage(r, needs)
			checkIndex(t, sel, s)
		}
	}
}

func testSingleQueue(t *testing.T, sel sdk.Selector) {
	needs := Describe(sel).NeedsMessage
	r := rand.New(rand.NewPCG(5, 6))
	rt := NewRoute("single", Queues(1, 1))
	for k := range 32 {
		s := rt.First()
		if k%2 == 1 {
			s = rt.Retry(rt.Queues[0].Broker, k%3+1)
		}
		s.Message = randomMessage(r, needs)
		if i := checkIndex(t, sel, s); i != 0 {
			t.Fatalf("Select with one queue = %d, want 0", i)
		}
	}
}

func testEmptyQueues(t *testing.T, sel sdk.Selector) {
	msg := &sdk.MessageInfo{ShardingKey: "k", Keys: []string{"k"}}
	for _, qs := range [][]sdk.Queue{nil, {}} {
		for _, last := range []string{"", "broker-a"} {
			func() {
				defer func() {
					if p := recover(); p != nil {
						t.Errorf("Select with %d queues (nil=%v, last %q) panicked: %v", len(qs), qs == nil, last, p)
					}
				}()
				_, _ = sel.Select(context.Background(), &sdk.Selection{Topic: "empty", RouteVersion: 1, Queues: qs, LastBroker: last, Message: msg})
			}()
		}
	}
}

func testLastBroker(t *testing.T, newSelector func(t *testing.T) sdk.Selector) {
	for _, shape := range [][2]int{{2, 1}, {2, 4}, {3, 2}, {5, 8}} {
		t.Run(fmt.Sprintf("%dx%d", shape[0], shape[1]), func(t *testing.T) {
			sel := newSelector(t)
			var msg *sdk.MessageInfo
			if Describe(sel).NeedsMessage {
				msg = &sdk.MessageInfo{}
			}
			rt := NewRoute("avoid", Queues(shape[0], shape[1]))
			for k := range 200 {
				last := BrokerName(k % shape[0])
				s := rt.Retry(last, 1+k%2)
				s.Message = msg
				i := checkIndex(t, sel, s)
				if got := rt.Queues[i].Broker; got == last {
					t.Fatalf("retry %d after a failure on %s picked %s queue %d again", k, last, got, rt.Queues[i].ID)
				}
			}
		})
	}
}

// watchdog is how long a Select may take after its context is done before the suite
// calls it blocked. It is deliberately large: this checks liveness, not speed.
const watchdog = 10 * time.Second

func testDeadline(t *testing.T, sel sdk.Selector) {
	needs := Describe(sel).NeedsMessage
	r := rand.New(rand.NewPCG(7, 8))
	rt := NewRoute("deadline", Queues(3, 4))
	cancelled, cancel := context.WithCancel(context.Background())
	cancel()
	expiring, cancel2 := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel2()
	for _, tc := range []struct {
		name string
		ctx  context.Context
	}{{"cancelled", cancelled}, {"expiring", expiring}} {
		s := rt.First()
		s.Message = randomMessage(r, needs)
		s.Remaining = 20 * time.Millisecond
		type result struct {
			i   int
			err error
		}
		done := make(chan result, 1)
		go func() {
			i, err := callSelect(tc.ctx, sel, s)
			done <- result{i, err}
		}()
		timer := time.NewTimer(watchdog + 20*time.Millisecond)
		select {
		case res := <-done:
			timer.Stop()
			if res.err == nil && (res.i < 0 || res.i >= len(s.Queues)) {
				t.Errorf("%s context: Select = %d without error, outside [0, %d)", tc.name, res.i, len(s.Queues))
			}
		case <-timer.C:
			t.Errorf("%s context: Select still blocked %v after its deadline", tc.name, watchdog)
		}
	}
}

func testConcurrent(t *testing.T, sel sdk.Selector) {
	needs := Describe(sel).NeedsMessage
	const workers, perWorker = 8, 400
	var mu sync.Mutex
	rt := NewRoute("concurrent", Queues(4, 4))
	current := func() Route {
		mu.Lock()
		defer mu.Unlock()
		return *rt
	}
	ctx := context.Background()
	var wg sync.WaitGroup
	errs := make(chan error, workers+1)
	for w := range workers {
		wg.Go(func() {
			r := rand.New(rand.NewPCG(uint64(w), 9))
			for k := range perWorker {
				cur := current()
				s := cur.First()
				if k%3 == 2 {
					s = cur.Retry(cur.Queues[r.IntN(len(cur.Queues))].Broker, 1)
				}
				s.Message = randomMessage(r, needs)
				i, err := callSelect(ctx, sel, s)
				if err != nil || i < 0 || i >= len(s.Queues) {
					errs <- fmt.Errorf("worker %d: Select(%s) = %d, %v", w, describeSelection(s), i, err)
					return
				}
				q := s.Queues[i]
				err = safely("Observe", func() {
					if k%5 == 0 {
						Observe(ctx, sel, OK(q.Broker, time.Duration(r.IntN(2000))*time.Millisecond))
					}
					if k%37 == 0 {
						Observe(ctx, sel, Failure(q.Broker, sdk.OutcomeTimeout, 3*time.Second))
					}
				})
				if err != nil {
					errs <- fmt.Errorf("worker %d: %w", w, err)
					return
				}
			}
		})
	}
	wg.Go(func() {
		for k := range 20 {
			mu.Lock()
			rt.Update(Queues(2+k%4, 1+k%5))
			mu.Unlock()
			if h, ok := sel.(sdk.HealthReporter); ok {
				if err := safely("Health", func() { _ = h.Health() }); err != nil {
					errs <- err
					return
				}
			}
		}
	})
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

func testObserve(t *testing.T, sel sdk.Selector) {
	if _, ok := sel.(sdk.Observer); !ok {
		t.Skip("selector does not implement sdk.Observer")
	}
	ctx := context.Background()
	Observe(ctx, sel)
	Observe(ctx, sel, []sdk.Outcome{}...)
	Observe(ctx, sel, sdk.Outcome{})
	large := make([]sdk.Outcome, 0, 10000)
	for i := range cap(large) {
		o := sdk.Outcome{
			Topic:   "observe",
			Broker:  "unknown-" + strconv.Itoa(i%97),
			Queue:   int32(i % 16),
			Latency: time.Duration(i%7-1) * 700 * time.Millisecond,
			Kind:    sdk.OutcomeKind(i % 8), // includes kinds beyond the defined ones
			Code:    i % 300,
		}
		o.Isolation = o.Kind.Failed()
		if i%1000 == 0 {
			o.Latency = time.Duration(1<<62) + time.Duration(i)
		}
		large = append(large, o)
	}
	Observe(ctx, sel, large...)
	rt := NewRoute("observe", QueuesOf(2, "unknown-1", "unknown-2", "unknown-3"))
	needs := Describe(sel).NeedsMessage
	r := rand.New(rand.NewPCG(10, 11))
	for k := range 64 {
		s := rt.First()
		if k%2 == 1 {
			s = rt.Retry("unknown-2", 1)
		}
		s.Message = randomMessage(r, needs)
		checkIndex(t, sel, s)
	}
}

func testHealth(t *testing.T, sel sdk.Selector) {
	hr, isReporter := sel.(sdk.HealthReporter)
	hs, isSeeder := sel.(sdk.HealthSeeder)
	if !isReporter && !isSeeder {
		t.Skip("selector implements neither sdk.HealthReporter nor sdk.HealthSeeder")
	}
	ctx := context.Background()
	Observe(ctx, sel, OK("broker-a", time.Millisecond), Failure("broker-b", sdk.OutcomeConnectFailure, time.Millisecond))
	if isSeeder {
		hs.Seed(nil)
		hs.Seed([]sdk.BrokerHealth{
			{},
			{Broker: "seeded-1", Available: true, Latency: 5 * time.Millisecond},
			{Broker: "seeded-2", Available: false, Until: time.Now().Add(time.Hour), Latency: time.Second},
			{Broker: "seeded-3", Available: false},
			{Broker: "seeded-4", Available: false, Until: time.Unix(0, 0), Latency: -time.Second},
		})
	}
	if isReporter {
		for _, row := range hr.Health() {
			if row.Broker == "" {
				t.Errorf("Health() has a row without a broker name: %+v", row)
			}
		}
	}
	rt := NewRoute("health", QueuesOf(2, "seeded-1", "seeded-2", "seeded-3"))
	needs := Describe(sel).NeedsMessage
	r := rand.New(rand.NewPCG(12, 13))
	for range 32 {
		s := rt.First()
		s.Message = randomMessage(r, needs)
		checkIndex(t, sel, s)
	}
}

func testDescribe(t *testing.T, sel sdk.Selector) {
	d, ok := sel.(sdk.Describer)
	if !ok {
		t.Skip("selector does not implement sdk.Describer")
	}
	desc := d.Describe()
	if desc.Name == "" {
		t.Error("Describe().Name is empty")
	}
	if desc.UrgentLatency < 0 {
		t.Errorf("Describe().UrgentLatency = %v, want ≥ 0", desc.UrgentLatency)
	}
}
