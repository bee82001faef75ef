package host

import (
	"context"
	"testing"
	"time"

	"github.com/producerd/producerd/plugins/sdk"
	"github.com/producerd/producerd/plugins/sdk/sdktest"
)

func TestLocalApply(t *testing.T) {
	t.Parallel()
	qs := sdktest.Queues(3, 2) // a0 a1 b0 b1 c0 c1
	now := time.Now()
	iso := func(b string, until time.Time, lat time.Duration) sdk.BrokerHealth {
		return sdk.BrokerHealth{Broker: b, Until: until, Latency: lat}
	}
	for _, tc := range []struct {
		name  string
		rows  []sdk.BrokerHealth
		last  string
		allow map[string]bool // brokers a decision may land on
	}{
		{"no table", nil, "", map[string]bool{"broker-a": true, "broker-b": true, "broker-c": true}},
		{"retry avoids last", nil, "broker-b", map[string]bool{"broker-a": true, "broker-c": true}},
		{"isolated avoided", []sdk.BrokerHealth{iso("broker-a", now.Add(time.Hour), 0)}, "", map[string]bool{"broker-b": true, "broker-c": true}},
		{"isolated and last avoided", []sdk.BrokerHealth{iso("broker-a", now.Add(time.Hour), 0)}, "broker-b", map[string]bool{"broker-c": true}},
		{"last is the only available", []sdk.BrokerHealth{iso("broker-a", now.Add(time.Hour), 0), iso("broker-c", now.Add(time.Hour), 0)}, "broker-b", map[string]bool{"broker-b": true}},
		{"expired isolation is available", []sdk.BrokerHealth{iso("broker-a", now.Add(-time.Second), 0), iso("broker-b", now.Add(time.Hour), 0), iso("broker-c", now.Add(time.Hour), 0)}, "", map[string]bool{"broker-a": true}},
		{"zero until isolates until further notice", []sdk.BrokerHealth{iso("broker-a", time.Time{}, 0)}, "", map[string]bool{"broker-b": true, "broker-c": true}},
		{"least bad: lowest latency", []sdk.BrokerHealth{iso("broker-a", now.Add(time.Hour), 3*time.Second), iso("broker-b", now.Add(time.Hour), time.Second), iso("broker-c", now.Add(time.Hour), 2*time.Second)}, "", map[string]bool{"broker-b": true}},
		{"least bad without last", []sdk.BrokerHealth{iso("broker-a", now.Add(time.Hour), 3*time.Second), iso("broker-b", now.Add(time.Hour), time.Second), iso("broker-c", now.Add(time.Hour), 2*time.Second)}, "broker-b", map[string]bool{"broker-c": true}},
		{"available rows are ignored", []sdk.BrokerHealth{{Broker: "broker-a", Available: true}}, "", map[string]bool{"broker-a": true, "broker-b": true, "broker-c": true}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			l := newLocalApply()
			l.update(tc.rows)
			seen := map[string]bool{}
			for k := range 60 {
				i := l.Select(&sdk.Selection{Topic: "t", RouteVersion: 1, Queues: qs, LastBroker: tc.last, Attempt: min(k, 1)})
				if i < 0 || i >= len(qs) {
					t.Fatalf("index %d", i)
				}
				b := qs[i].Broker
				if !tc.allow[b] {
					t.Fatalf("decision %d picked %s, allowed %v", k, b, tc.allow)
				}
				seen[b] = true
			}
			if len(seen) != len(tc.allow) {
				t.Fatalf("picked %v, want every one of %v", seen, tc.allow)
			}
		})
	}
}

func TestLocalApplySpreadsEvenly(t *testing.T) {
	t.Parallel()
	qs := sdktest.Queues(4, 4)
	l := newLocalApply()
	counts := make([]int, len(qs))
	for range 16 * 100 {
		counts[l.Select(&sdk.Selection{Topic: "t", RouteVersion: 7, Queues: qs})]++
	}
	for i, n := range counts {
		if n != 100 {
			t.Fatalf("queue %d got %d of 1600 decisions, want 100: %v", i, n, counts)
		}
	}
	if l.Select(&sdk.Selection{Topic: "t", RouteVersion: 8}) != -1 {
		t.Fatal("empty queue list did not return -1")
	}
}

// TestProviderPinsGeneration: a send that acquired a generation keeps it across a
// swap, and Swap returns only once it was released.
func TestProviderPinsGeneration(t *testing.T) {
	h, _ := newHost(t, nil)
	ctx := context.Background()
	if err := h.Start(ctx, Spec{Plugin: "roundrobin", InProcess: true}); err != nil {
		t.Fatal(err)
	}
	held, release := h.Strategy().(Provider).Acquire()
	swapped := make(chan error, 1)
	go func() { swapped <- h.Swap(ctx, Spec{Plugin: "latencyfault", InProcess: true}) }()
	waitFor(t, "the switch", 10*time.Second, func() bool { return h.Status().Generation == 2 })
	rt := sdktest.NewRoute("t", sdktest.Queues(2, 2))
	if d := descriptorOf(held); d.Name != "roundrobin" {
		t.Fatalf("held generation describes itself as %q", d.Name)
	}
	sdktest.MustSelect(t, held, rt.First())
	select {
	case err := <-swapped:
		t.Fatalf("Swap returned (%v) while a send still held the old generation", err)
	default:
	}
	if st := h.Status(); st.Standby != 0 {
		t.Fatalf("standby set before the drain: %+v", st)
	}
	release()
	if err := <-swapped; err != nil {
		t.Fatal(err)
	}
	if st := h.Status(); st.Descriptor.Name != "latencyfault" || st.InFlight != 0 {
		t.Fatalf("Status = %+v", st)
	}
	sdktest.MustSelect(t, held, rt.First()) // a late user of the retired generation still gets answers
}
