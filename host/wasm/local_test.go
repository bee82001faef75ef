package wasm_test

import (
	"context"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/producerd/producerd/host/wasm"
	"github.com/producerd/producerd/internal/testwait"
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

// TestLocalApplyRunsOneInstance: a module the host applies locally needs one instance
// by default (its decisions never enter the guest, so more would only apply every
// outcome once more); a per-decision module gets one per core, and an explicit
// Options.Instances is kept.
func TestLocalApplyRunsOneInstance(t *testing.T) {
	tests := []struct {
		pkg       string
		instances int // Options.Instances
		want      int
	}{
		{pkgLatencyFault, 0, 1},
		{pkgLeastLatency, 0, 1},
		{pkgLeastLatency, 3, 3},
		{pkgKeyHash, 0, runtime.GOMAXPROCS(0)},
	}
	for _, tc := range tests {
		t.Run(filepath.Base(filepath.Dir(tc.pkg))+"/"+strconv.Itoa(tc.instances), func(t *testing.T) {
			s := loadHeavy(t, tc.pkg, func(o *wasm.Options) { o.Instances = tc.instances })
			if got := s.Stats().Instances; got != tc.want {
				t.Fatalf("Instances = %d, want %d", got, tc.want)
			}
		})
	}
}

// TestOrdinaryOutcomesFlushInTheBackground: an ordinary outcome returns from Observe
// without a guest call, and reaches the guest within the flush interval anyway, from
// the flusher goroutine; a full batch leaves at once.
func TestOrdinaryOutcomesFlushInTheBackground(t *testing.T) {
	s := loadHeavy(t, pkgLatencyFault, func(o *wasm.Options) { o.Instances = 2 })
	ctx := context.Background()
	base := s.Stats().Calls
	s.Observe(ctx, []sdk.Outcome{sdktest.OK("broker-a", time.Millisecond)})
	// Two observe calls (one per instance) and one health call, all on the flusher.
	testwait.For(t, 10*time.Second, "the flusher's broadcast", func() bool { return s.Stats().Calls-base >= 3 })
	base = s.Stats().Calls
	batch := make([]sdk.Outcome, 64)
	for i := range batch {
		batch[i] = sdktest.OK("broker-b", time.Millisecond)
	}
	s.Observe(ctx, batch)
	testwait.For(t, 10*time.Second, "the full batch's broadcast", func() bool { return s.Stats().Calls-base >= 3 })
	// A backlog the flusher has not taken (the guest is not keeping up) is broadcast by
	// the caller: the queue stays bounded.
	base = s.Stats().Calls
	backlog := make([]sdk.Outcome, 4*1024)
	for i := range backlog {
		backlog[i] = sdktest.OK("broker-c", time.Millisecond)
	}
	s.Observe(ctx, backlog)
	if got := s.Stats().Calls - base; got < 2 {
		t.Fatalf("Observe of a %d-outcome backlog returned after %d guest calls, want it applied on every instance", len(backlog), got)
	}
}

// TestOnlyInstanceReplacedKeepsPolicy: the one instance of a locally applied module
// dies; its replacement starts from the policy the host decides with, so an isolation
// survives it.
func TestOnlyInstanceReplacedKeepsPolicy(t *testing.T) {
	s := loadHeavy(t, pkgLatencyFault, nil)
	rt := sdktest.NewRoute("t", sdktest.Queues(2, 2))
	sdktest.MustSelect(t, s, rt.First())
	s.Observe(context.Background(), []sdk.Outcome{sdktest.Failure("broker-a", sdk.OutcomeConnectFailure, time.Second)})
	if !wasm.KillInstance(s, 0) {
		t.Fatal("no live instance to kill")
	}
	waitLive(t, s)
	isolated := false
	for _, r := range s.Health() {
		if r.Broker == "broker-a" {
			isolated = !r.Available
		}
	}
	if !isolated {
		t.Fatalf("after the replacement, health %+v: broker-a is not isolated", s.Health())
	}
	for range 20 {
		if q := sdktest.MustSelect(t, s, rt.First()); q.Broker == "broker-a" {
			t.Fatalf("picked isolated broker-a")
		}
	}
}

// TestFailedPolicyReadRetried: a policy change whose read failed is read again at the
// next flush, though the guest reports each change once. The flakyhealth module's first
// read after a change fails: the host keeps deciding from the old policy (broker-a is
// still picked); the next broadcast, which changes nothing in the guest, installs the
// table, and broker-a is not picked any more.
func TestFailedPolicyReadRetried(t *testing.T) {
	logs := &logSink{}
	s := load(t, buildModule(t, pkgFlakyHealth), testOptions(t, logs))
	rt := sdktest.NewRoute("t", sdktest.Queues(2, 2))
	picks := func() map[string]int {
		got := map[string]int{}
		for range 40 {
			got[sdktest.MustSelect(t, s, rt.First()).Broker]++
		}
		return got
	}
	ctx := context.Background()
	// Failures are urgent: each Observe broadcasts and reads the policy before it returns.
	s.Observe(ctx, []sdk.Outcome{sdktest.Failure("broker-a", sdk.OutcomeConnectFailure, time.Second)})
	if !strings.Contains(logs.String(), "deliberate health failure") {
		t.Fatalf("the policy read after broker-a's failure did not fail; logs:\n%s", logs)
	}
	if got := picks(); got["broker-a"] == 0 {
		t.Fatalf("after a failed policy read, picks %v: the policy was installed anyway", got)
	}
	s.Observe(ctx, []sdk.Outcome{sdktest.Failure("broker-a", sdk.OutcomeConnectFailure, time.Second)})
	if got := picks(); got["broker-a"] != 0 || got["broker-b"] != 40 {
		t.Fatalf("after the next flush, picks %v: want all 40 on broker-b (broker-a unavailable)", got)
	}
}
