package wasm_test

import (
	"context"
	"testing"
	"time"

	"github.com/producerd/producerd/host/wasm"
	"github.com/producerd/producerd/plugins/sdk"
	"github.com/producerd/producerd/plugins/sdk/sdktest"
)

// TestLocalApplyDecidesWithoutTheGuest: a module that declares LocalApply (the
// least-latency example) is not called per decision; the host picks with package pick
// from the weights the module publishes, and an outcome reaches those weights before
// Observe returns its urgent broadcast.
func TestLocalApplyDecidesWithoutTheGuest(t *testing.T) {
	s := loadHeavy(t, pkgLeastLatency, func(o *wasm.Options) { o.Instances = 2 })
	rt := sdktest.NewRoute("t", sdktest.Queues(3, 2))
	calls := s.Stats().Calls
	for range 600 {
		sdktest.MustSelect(t, s, rt.First())
	}
	if got := s.Stats().Calls - calls; got != 0 {
		t.Fatalf("600 decisions made %d guest calls, want 0", got)
	}
	ctx := context.Background()
	// Failures are urgent: Observe broadcasts them and republishes the policy at once.
	s.Observe(ctx, []sdk.Outcome{
		sdktest.OK("broker-a", 20*time.Millisecond), sdktest.OK("broker-b", time.Millisecond),
		sdktest.Failure("broker-c", sdk.OutcomeTimeout, time.Second),
	})
	got := map[string]int{}
	for range 1800 {
		got[sdktest.MustSelect(t, s, rt.First()).Broker]++
	}
	// Default best_weight 16: b's two queues 16 each, a's and c's 1 each → b 32 of 36.
	if got["broker-b"] != 1600 {
		t.Fatalf("shares after outcomes %v, want broker-b 1600 of 1800", got)
	}
}

// TestNoLocalApplyCallsTheGuest: Options.NoLocalApply keeps the per-decision path.
func TestNoLocalApplyCallsTheGuest(t *testing.T) {
	s := loadHeavy(t, pkgLeastLatency, func(o *wasm.Options) { o.Instances = 1; o.NoLocalApply = true })
	rt := sdktest.NewRoute("t", sdktest.Queues(3, 2))
	calls := s.Stats().Calls
	for range 10 {
		sdktest.MustSelect(t, s, rt.First())
	}
	if got := s.Stats().Calls - calls; got != 10 {
		t.Fatalf("10 decisions made %d guest calls, want 10", got)
	}
}
