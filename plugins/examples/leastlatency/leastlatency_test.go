package leastlatency_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/producerd/producerd/plugins/examples/leastlatency"
	"github.com/producerd/producerd/plugins/sdk"
	"github.com/producerd/producerd/plugins/sdk/sdktest"
)

func newStrategy(t testing.TB, settings string) sdk.Selector {
	t.Helper()
	s, err := leastlatency.New([]byte(settings))
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestConformance(t *testing.T) {
	sdktest.Conformance(t, func(t *testing.T) sdk.Selector { return newStrategy(t, "") })
}

// share counts first picks per broker.
func share(t *testing.T, s sdk.Selector, rt *sdktest.Route, n int) map[string]int {
	got := map[string]int{}
	for range n {
		got[sdktest.MustSelect(t, s, rt.First()).Broker]++
	}
	return got
}

// TestFollowsTheFastestBroker: the lowest moving average gets BestWeight times the
// share of each other broker's queues; a failure moves the traffic away; the policy is
// what Health publishes, so a host deciding locally decides the same.
func TestFollowsTheFastestBroker(t *testing.T) {
	ctx := context.Background()
	s := newStrategy(t, `{"best_weight":8}`)
	rt := sdktest.NewRoute("t", sdktest.Queues(3, 4))
	if got := share(t, s, rt, 1200); got["broker-a"] != 400 || got["broker-b"] != 400 {
		t.Fatalf("before any outcome: %v, want plain round-robin", got)
	}
	sdktest.Observe(ctx, s, sdktest.OK("broker-a", 20*time.Millisecond), sdktest.OK("broker-b", 2*time.Millisecond),
		sdktest.OK("broker-c", 30*time.Millisecond))
	// b: 4 queues × 8, a and c: 4 × 1 each → b gets 32 of 40 picks.
	if got := share(t, s, rt, 4000); got["broker-b"] != 3200 || got["broker-a"] != 400 || got["broker-c"] != 400 {
		t.Fatalf("after outcomes: %v, want b 3200, a 400, c 400", got)
	}
	rows := s.(sdk.HealthReporter).Health()
	if len(rows) != 3 || rows[1].Broker != "broker-b" || rows[1].Weight != 8 || rows[0].Weight != 1 {
		t.Fatalf("Health = %+v, want b weighted 8, others 1", rows)
	}
	for range 5 {
		sdktest.Observe(ctx, s, sdktest.Failure("broker-b", sdk.OutcomeTimeout, 3*time.Second))
	}
	if got := share(t, s, rt, 4000); got["broker-a"] != 3200 {
		t.Fatalf("after failures on b: %v, want a to lead", got)
	}
}

func TestSettings(t *testing.T) {
	for _, tc := range []struct {
		settings string
		key      string // "" for a valid one
	}{
		{``, ""},
		{`{"alpha":0.5,"band":1,"best_weight":64,"failure_latency":"2s"}`, ""},
		{`{"alpha":0}`, "alpha"},
		{`{"band":0.5}`, "band"},
		{`{"best_weight":65}`, "best_weight"},
		{`{"failure_latency":"soon"}`, "failure_latency"},
		{`{"alpha":"x"}`, "alpha"},
		{`{"nope":1}`, "nope"},
	} {
		_, err := leastlatency.New([]byte(tc.settings))
		if tc.key == "" {
			if err != nil {
				t.Errorf("%s: %v", tc.settings, err)
			}
			continue
		}
		var se *sdk.SettingError
		if !errors.As(err, &se) || se.Key != tc.key || !errors.Is(err, sdk.ErrInvalidSettings) {
			t.Errorf("%s: %v, want a SettingError for %s", tc.settings, err, tc.key)
		}
	}
}
