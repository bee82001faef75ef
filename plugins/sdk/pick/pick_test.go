package pick_test

import (
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/producerd/producerd/plugins/sdk"
	"github.com/producerd/producerd/plugins/sdk/pick"
)

// route is a-0..a-3, b-0..b-3, c-0..c-3.
func route() []sdk.Queue {
	var qs []sdk.Queue
	for _, b := range []string{"a", "b", "c"} {
		for i := range 4 {
			qs = append(qs, sdk.Queue{Broker: b, ID: int32(i)})
		}
	}
	return qs
}

type clock struct{ t time.Time }

func (c *clock) now() time.Time { return c.t }

func newPicker(c *clock) *pick.Picker {
	return pick.New(pick.Options{Now: c.now, Rand: func() uint64 { return 0 }})
}

// share counts first picks per broker over n decisions.
func share(p *pick.Picker, n int, last string) map[string]int {
	sel := &sdk.Selection{Topic: "t", RouteVersion: 1, Queues: route(), LastBroker: last}
	got := map[string]int{}
	for range n {
		got[sel.Queues[p.Pick(sel)].Broker]++
	}
	return got
}

func TestPick(t *testing.T) {
	t0 := time.Unix(1000, 0)
	tests := []struct {
		name string
		pol  pick.Policy
		last string
		want map[string]int // over 1200 decisions
	}{
		{name: "zero policy is round-robin", want: map[string]int{"a": 400, "b": 400, "c": 400}},
		// The walk goes forward from the position: a's share goes to the next broker.
		{name: "retry avoids last broker", last: "a", want: map[string]int{"b": 800, "c": 400}},
		{name: "exclusion", pol: pick.Policy{Rules: []pick.Rule{{Broker: "b", Excluded: true}}},
			want: map[string]int{"a": 400, "c": 800}},
		{name: "expired exclusion", pol: pick.Policy{Rules: []pick.Rule{{Broker: "b", Excluded: true, Until: t0.Add(-time.Second)}}},
			want: map[string]int{"a": 400, "b": 400, "c": 400}},
		{name: "weights", pol: pick.Policy{Rules: []pick.Rule{{Broker: "a", Weight: 3}, {Broker: "b", Weight: 1}}},
			want: map[string]int{"a": 900, "b": 300}},
		{name: "weighted broker excluded falls to standbys", pol: pick.Policy{Rules: []pick.Rule{{Broker: "a", Weight: 1, Excluded: true}}},
			want: map[string]int{"b": 800, "c": 400}},
		{name: "weighted retry avoids last broker", last: "a", pol: pick.Policy{Rules: []pick.Rule{{Broker: "a", Weight: 5}, {Broker: "b", Weight: 1}}},
			want: map[string]int{"b": 1200}},
		{name: "only last broker available", last: "a", pol: pick.Policy{Rules: []pick.Rule{{Broker: "b", Excluded: true}, {Broker: "c", Excluded: true}}},
			want: map[string]int{"a": 1200}},
		{name: "all excluded: least cost", pol: pick.Policy{Rules: []pick.Rule{
			{Broker: "a", Excluded: true, Cost: 3}, {Broker: "b", Excluded: true, Cost: 1}, {Broker: "c", Excluded: true, Cost: 2}}},
			want: map[string]int{"b": 1200}},
		{name: "all excluded, retry: better half without last", last: "b", pol: pick.Policy{Rules: []pick.Rule{
			{Broker: "a", Excluded: true, Cost: 3}, {Broker: "b", Excluded: true, Cost: 1}, {Broker: "c", Excluded: true, Cost: 2}}},
			want: map[string]int{"c": 1200}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			c := &clock{t: t0}
			p := newPicker(c)
			p.SetPolicy(tt.pol)
			got := share(p, 1200, tt.last)
			if len(got) != len(tt.want) {
				t.Fatalf("shares %v, want %v", got, tt.want)
			}
			for b, n := range tt.want {
				if got[b] != n {
					t.Fatalf("shares %v, want %v", got, tt.want)
				}
			}
		})
	}
}

func TestExclusionEndsWithoutNewPolicy(t *testing.T) {
	c := &clock{t: time.Unix(1000, 0)}
	p := newPicker(c)
	p.SetPolicy(pick.Policy{Rules: []pick.Rule{{Broker: "a", Excluded: true, Until: c.t.Add(time.Second)}}})
	if got := share(p, 120, ""); got["a"] != 0 {
		t.Fatalf("excluded broker picked: %v", got)
	}
	c.t = c.t.Add(time.Second)
	if got := share(p, 120, ""); got["a"] != 40 {
		t.Fatalf("after Until: %v, want a:40", got)
	}
}

func TestEmptyRoute(t *testing.T) {
	p := pick.New(pick.Options{})
	if got := p.Pick(&sdk.Selection{Topic: "t"}); got != -1 {
		t.Fatalf("Pick on no queues = %d, want -1", got)
	}
}

func BenchmarkPick(b *testing.B) {
	for _, bc := range []struct {
		name string
		pol  pick.Policy
	}{
		{"plain", pick.Policy{}},
		{"excluded", pick.Policy{Rules: []pick.Rule{{Broker: "b", Excluded: true, Until: time.Now().Add(time.Hour)}}}},
		{"weighted", pick.Policy{Rules: []pick.Rule{{Broker: "a", Weight: 3}, {Broker: "b", Weight: 1}}}},
	} {
		b.Run(bc.name, func(b *testing.B) {
			p := pick.New(pick.Options{})
			p.SetPolicy(bc.pol)
			sel := &sdk.Selection{Topic: "t", RouteVersion: 1, Queues: route()}
			b.ReportAllocs()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					p.Pick(sel)
				}
			})
		})
	}
}

// BenchmarkPickTopics cycles round-robin over 1, 4,096 and 100,000 topics (one shared
// route), the growth case of issue 19: a decision must cost the same at any count.
func BenchmarkPickTopics(b *testing.B) {
	qs := route()
	for _, n := range []int{1, 4096, 100_000} {
		sels := make([]sdk.Selection, n)
		for i := range sels {
			sels[i] = sdk.Selection{Topic: fmt.Sprintf("topic-%06d", i), RouteVersion: 1, Queues: qs}
		}
		b.Run(fmt.Sprintf("topics=%d", n), func(b *testing.B) {
			p := pick.New(pick.Options{})
			for i := range sels {
				p.Pick(&sels[i]) // warm: every topic has its position
			}
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				p.Pick(&sels[i])
				if i++; i == n {
					i = 0
				}
			}
		})
		b.Run(fmt.Sprintf("topics=%d/parallel", n), func(b *testing.B) {
			p := pick.New(pick.Options{})
			for i := range sels {
				p.Pick(&sels[i])
			}
			var next atomic.Int64
			b.ReportAllocs()
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				i := int(next.Add(7919)) % n
				for pb.Next() {
					p.Pick(&sels[i])
					if i++; i == n {
						i = 0
					}
				}
			})
		})
	}
}
