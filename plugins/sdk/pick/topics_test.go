package pick

import (
	"fmt"
	"runtime"
	"testing"

	"github.com/producerd/producerd/plugins/sdk"
)

func queues(brokers, each int) []sdk.Queue {
	var qs []sdk.Queue
	for b := range brokers {
		for i := range each {
			qs = append(qs, sdk.Queue{Broker: fmt.Sprintf("broker-%d", b), ID: int32(i)})
		}
	}
	return qs
}

// check asserts that the map and the rings hold the same counters, each at its slot.
func (p *Picker) check(t *testing.T) (n int) {
	t.Helper()
	for i := range p.shards {
		s := &p.shards[i]
		if len(s.ring) > p.perShard {
			t.Fatalf("shard %d holds %d counters, bound %d", i, len(s.ring), p.perShard)
		}
		for k, pos := range s.ring {
			if int(pos.slot) != k {
				t.Fatalf("shard %d: %q at slot %d says %d", i, pos.topic, k, pos.slot)
			}
			if v, ok := p.topics.Load(pos.topic); !ok || v != pos {
				t.Fatalf("shard %d: %q in the ring is not in the map", i, pos.topic)
			}
			if p.shard(pos.topic) != s {
				t.Fatalf("%q in shard %d, hashes elsewhere", pos.topic, i)
			}
		}
		n += len(s.ring)
	}
	if inMap := p.topics.Len(); inMap != n {
		t.Fatalf("map holds %d topics, rings %d", inMap, n)
	}
	return n
}

func TestTopicsBoundedWithoutClear(t *testing.T) {
	t.Parallel()
	for _, limit := range []int{1, 100, 5000, 1 << 14} {
		t.Run(fmt.Sprint(limit), func(t *testing.T) {
			t.Parallel()
			p := New(Options{MaxTopics: limit})
			qs := queues(2, 4)
			hot := &sdk.Selection{Topic: "hot", RouteVersion: 1, Queues: qs}
			p.Pick(hot)
			first := p.position(hot, p.snap.Load())
			for i := range 3 * limit {
				p.Pick(&sdk.Selection{Topic: fmt.Sprint("t-", i), RouteVersion: 1, Queues: qs})
				if limit > 1 {
					p.Pick(hot) // used between every pass of the hand: never forgotten
				}
			}
			n := p.check(t)
			if n > limit+len(p.shards) || n < limit {
				t.Fatalf("%d counters for a bound of %d", n, limit)
			}
			if limit > 1 && p.position(hot, p.snap.Load()) != first {
				t.Fatalf("the hot topic lost its counter to cold ones")
			}
		})
	}
}

func TestNewRouteVersionKeepsSlot(t *testing.T) {
	t.Parallel()
	p := New(Options{MaxTopics: 4, Rand: func() uint64 { return 0 }})
	qs := queues(2, 2)
	for v := range uint64(10) {
		for _, topic := range []string{"a", "b", "c"} {
			p.Pick(&sdk.Selection{Topic: topic, RouteVersion: v, Queues: qs})
		}
		p.SetPolicy(Policy{Rules: []Rule{{Broker: "broker-0", Weight: uint32(v + 1)}}})
	}
	if n := p.check(t); n != 3 {
		t.Fatalf("%d counters after new versions of 3 topics, want 3", n)
	}
}

func TestForget(t *testing.T) {
	t.Parallel()
	p := New(Options{MaxTopics: 8})
	qs := queues(1, 2)
	for i := range 8 {
		p.Pick(&sdk.Selection{Topic: fmt.Sprint(i), RouteVersion: 1, Queues: qs})
	}
	for _, topic := range []string{"3", "0", "7", "missing", "3"} {
		p.Forget(topic)
	}
	if n := p.check(t); n != 5 {
		t.Fatalf("%d counters after forgetting 3 of 8, want 5", n)
	}
	for i := range 20 {
		p.Pick(&sdk.Selection{Topic: fmt.Sprint("new-", i), RouteVersion: 1, Queues: qs})
	}
	if n := p.check(t); n != 8 {
		t.Fatalf("%d counters, want the bound 8", n)
	}
}

// TestBytesPerTopic measures what a topic's counter costs in the heap (map slot, key
// and ring slot included) and holds it to the package documentation's figure.
func TestBytesPerTopic(t *testing.T) {
	if testing.Short() {
		t.Skip("allocates 131,072 counters")
	}
	const n = MaxTopics // the default bound: the most a Picker holds
	qs := queues(2, 4)
	names := make([]string, n)
	for i := range names {
		names[i] = fmt.Sprintf("topic-%06d", i)
	}
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	p := New(Options{})
	for _, topic := range names {
		p.Pick(&sdk.Selection{Topic: topic, RouteVersion: 1, Queues: qs})
	}
	runtime.GC()
	runtime.ReadMemStats(&after)
	per := float64(after.HeapAlloc-before.HeapAlloc) / n
	t.Logf("%.0f bytes per topic at %d topics", per, n)
	if per > 150 {
		t.Fatalf("%.0f bytes per topic, documented about 110", per)
	}
	runtime.KeepAlive(p)
}

func TestConcurrentTopicsAndForget(t *testing.T) {
	t.Parallel()
	p := New(Options{MaxTopics: 64})
	qs := queues(2, 2)
	done := make(chan struct{})
	for g := range 4 {
		go func() {
			defer func() { done <- struct{}{} }()
			for i := range 2000 {
				topic := fmt.Sprint("t-", (i*7+g)%300)
				if i%10 == g {
					p.Forget(topic)
					continue
				}
				if j := p.Pick(&sdk.Selection{Topic: topic, RouteVersion: uint64(i % 3), Queues: qs}); j < 0 || j >= len(qs) {
					t.Errorf("Pick = %d", j)
					return
				}
			}
		}()
	}
	for range 4 {
		<-done
	}
	if n := p.check(t); n > 64 {
		t.Fatalf("%d counters, bound 64", n)
	}
}
