package core

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"testing"
	"testing/synctest"
	"time"
)

// refreshRun runs a refresher over n topics until it started cycles rounds of fetches
// (fake time); fetch takes took. It returns the start time of every fetch and the most fetches in flight at once.
func refreshRun(t *testing.T, n int, period, took time.Duration, cycles int) (starts map[string][]time.Time, t0 time.Time, maxInflight int) {
	t.Helper()
	synctest.Test(t, func(t *testing.T) {
		names := make([]string, n)
		for i := range names {
			names[i] = fmt.Sprintf("T%05d", i)
		}
		var mu sync.Mutex
		starts = make(map[string][]time.Time)
		inflight, started := 0, 0
		reached := make(chan struct{}) // closed at the start of fetch n × cycles
		stop := make(chan struct{})
		r := &refresher[string]{initial: 10 * time.Millisecond, period: period,
			workers: routeRefreshWorkers, batch: RouteRefreshBatch,
			topics: func() []string { return names },
			fetch: func(ctx context.Context, bunch []string) {
				mu.Lock()
				for _, name := range bunch {
					starts[name] = append(starts[name], time.Now())
					if started++; started == n*cycles {
						close(reached)
					}
				}
				inflight += len(bunch)
				maxInflight = max(maxInflight, inflight)
				mu.Unlock()
				select {
				case <-time.After(took):
				case <-ctx.Done():
				}
				mu.Lock()
				inflight -= len(bunch)
				mu.Unlock()
			},
			stop: stop}
		t0 = time.Now()
		done := make(chan struct{})
		go func() { r.run(); close(done) }()
		<-reached // the bubble's clock runs while the refresher waits between fetches
		close(stop)
		<-done
		if inflight != 0 {
			t.Errorf("%d fetches still running after run returned", inflight)
		}
	})
	return starts, t0, maxInflight
}

// maxPerSecond is the most fetches that start in any one-second window.
func maxPerSecond(starts map[string][]time.Time) int {
	var all []time.Time
	for _, s := range starts {
		all = append(all, s...)
	}
	slices.SortFunc(all, func(a, b time.Time) int { return a.Compare(b) })
	best := 0
	for i, j := 0, 0; i < len(all); i++ {
		for j < len(all) && all[j].Sub(all[i]) < time.Second {
			j++
		}
		best = max(best, j-i)
	}
	return best
}

func TestRouteRefreshSpreadOverTheInterval(t *testing.T) {
	for _, tc := range []struct {
		topics int
		period time.Duration
		took   time.Duration
	}{
		{10_000, 30 * time.Second, time.Millisecond},
		{1000, 10 * time.Second, 50 * time.Millisecond},
		{7, 30 * time.Second, time.Millisecond},
	} {
		t.Run(fmt.Sprintf("%d topics every %v", tc.topics, tc.period), func(t *testing.T) {
			starts, _, _ := refreshRun(t, tc.topics, tc.period, tc.took, 3)
			for name, s := range starts {
				if len(s) != 3 {
					t.Fatalf("topic %s fetched %d times in 3 periods, want 3", name, len(s))
				}
			}
			limit := int(float64(tc.topics) / tc.period.Seconds() * 1.2)
			if got := maxPerSecond(starts); got > max(limit, 1) {
				t.Errorf("the NameServer saw %d requests in one second; the limit is (%d / %v) x 1.2 = %d",
					got, tc.topics, tc.period, limit)
			}
		})
	}
}

// A cycle starts every period (fixed rate, as Java), even when the previous cycle's last
// fetches are still waiting for their answers.
func TestRouteRefreshFixedRate(t *testing.T) {
	const period = 10 * time.Second
	// 50 topics 200ms apart, each answered after 1s: the last one ends after the period.
	starts, t0, _ := refreshRun(t, 50, period, time.Second, 3)
	first := starts["T00000"]
	if len(first) != 3 {
		t.Fatalf("first topic fetched %d times, want 3", len(first))
	}
	for k, at := range first {
		if want := t0.Add(10*time.Millisecond + time.Duration(k)*period); !at.Equal(want) {
			t.Errorf("cycle %d started at +%v, want +%v (fixed rate)", k, at.Sub(t0), want.Sub(t0))
		}
	}
}

// At most RouteRefreshParallel fetches are in flight (routeRefreshWorkers bunches);
// a NameServer slower than the schedule delays the refresh instead of piling requests
// on it, and an overrun cycle is not followed by a catch-up burst.
func TestRouteRefreshBoundedParallelism(t *testing.T) {
	for _, tc := range []struct {
		topics       int
		wantInflight int
	}{
		// 10,000 topics in bunches of 16 every 16ms, each answered after 2s: 2,000 would
		// be in flight unbounded.
		{10_000, RouteRefreshParallel},
		// 100 topics 100ms apart, one at a time: 20 would be in flight unbounded.
		{100, routeRefreshWorkers},
	} {
		t.Run(fmt.Sprint(tc.topics, " topics"), func(t *testing.T) {
			starts, _, maxInflight := refreshRun(t, tc.topics, 10*time.Second, 2*time.Second, 3)
			if maxInflight != tc.wantInflight {
				t.Errorf("%d fetches in flight at most, want the bound %d", maxInflight, tc.wantInflight)
			}
			if got, limit := maxPerSecond(starts), int(float64(tc.topics)/10*1.2); got > limit {
				t.Errorf("%d requests in one second, want at most %d", got, limit)
			}
		})
	}
}

// With many topics a cycle sends them in bunches of up to RouteRefreshBatch that start
// together (one NameServer batch); with few topics, one at a time.
func TestRouteRefreshBunches(t *testing.T) {
	for _, tc := range []struct {
		topics    int
		period    time.Duration
		wantBunch int
	}{
		{10_000, 30 * time.Second, RouteRefreshBatch}, // 33 topics in 100ms, capped at 16
		{300, 10 * time.Second, 3},                    // 3 topics in 100ms
		{50, 10 * time.Second, 1},
	} {
		t.Run(fmt.Sprintf("%d topics every %v", tc.topics, tc.period), func(t *testing.T) {
			if got := refreshBunch(tc.topics, tc.period, RouteRefreshBatch); got != tc.wantBunch {
				t.Fatalf("refreshBunch = %d, want %d", got, tc.wantBunch)
			}
			starts, _, _ := refreshRun(t, tc.topics, tc.period, time.Millisecond, 1)
			at := func(i int) time.Time { return starts[fmt.Sprintf("T%05d", i)][0] }
			for i := 1; i < tc.topics; i++ {
				same := at(i).Equal(at(i - 1))
				if want := i%tc.wantBunch != 0; same != want {
					t.Fatalf("topic %d started %v after topic %d; want in the same bunch: %v", i, at(i).Sub(at(i-1)), i-1, want)
				}
			}
		})
	}
}
