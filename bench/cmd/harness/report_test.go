package main

import (
	"math"
	"slices"
	"strings"
	"testing"

	"github.com/producerd/producerd/bench/internal/load"
)

// TestRoundOrderRotatesPaths: over three rounds each strategy's interleaved cell runs
// every path first once, the strategies rotate, and no cell is lost or repeated.
func TestRoundOrderRotatesPaths(t *testing.T) {
	s := scenarios(1, "none", true)
	i := slices.IndexFunc(s, func(s scenario) bool { return s.Paths })
	paths := s[i]
	first := map[string]map[string]bool{} // strategy -> paths that ran first
	for round := 1; round <= 3; round++ {
		order := roundOrder(paths, round)
		if len(order) != len(paths.Cells) {
			t.Fatalf("round %d: %d cells, want %d", round, len(order), len(paths.Cells))
		}
		seen := map[string]bool{}
		for _, c := range order {
			seen[c.Variant] = true
			list := strings.Split(c.Strategy, ",")
			if len(list) != 3 {
				t.Fatalf("round %d: %s runs %q, want three paths", round, c.Variant, c.Strategy)
			}
			if first[c.Variant] == nil {
				first[c.Variant] = map[string]bool{}
			}
			first[c.Variant][list[0]] = true
		}
		if len(seen) != len(paths.Cells) {
			t.Fatalf("round %d repeats a cell: %v", round, order)
		}
		if round == 2 && order[0].Variant == roundOrder(paths, 1)[0].Variant {
			t.Fatalf("round 2 starts with the same strategy as round 1")
		}
	}
	for st, f := range first {
		if len(f) != 3 {
			t.Errorf("%s: paths %v ran first in three rounds, want all three", st, f)
		}
	}
	// Over six rounds each path follows each of the others.
	follows := map[string]bool{} // "a>b": b ran right after a
	for round := 1; round <= 6; round++ {
		order := roundOrder(paths, round)
		list := strings.Split(order[slices.IndexFunc(order, func(c cell) bool { return c.Variant == "rr" })].Strategy, ",")
		for k := range list {
			follows[list[k]+">"+list[(k+1)%len(list)]] = true
		}
	}
	if len(follows) != 6 {
		t.Errorf("in six rounds the paths followed each other as %v, want all six pairs", follows)
	}
	// The other scenarios keep reversing every other round.
	h := s[0]
	if got := roundOrder(h, 2); got[0].Driver != h.Cells[len(h.Cells)-1].Driver {
		t.Fatalf("round 2 of %s does not start with its last cell", h.ID)
	}
}

// TestSplitPaths: an interleaved cell becomes one result per path, with the path's
// figures and STRATEGY counts.
func TestSplitPaths(t *testing.T) {
	r := &cellResult{Cell: cell{Scenario: "strategy-paths", Driver: "core", Variant: "rr", Round: 2}, Status: "ok",
		Res: &load.Result{Msgs: 300, MsgsPerSec: 100, P50: 7},
		Paths: []pathResult{{Name: "rr-plugin", Msgs: 90, Sec: 1, MsgsPerSec: 90, CPU: 0.5, Decisions: 5, Fallbacks: 1},
			{Name: "rr-inproc", Msgs: 110, Sec: 1, MsgsPerSec: 110, CPU: 0.4, Decisions: 6}}}
	out := splitPaths(r)
	if len(out) != 2 || out[0].Cell.Variant != "rr-plugin" || out[1].Cell.Variant != "rr-inproc" {
		t.Fatalf("split into %d: %+v", len(out), out)
	}
	if p := out[0]; p.Res.MsgsPerSec != 90 || p.Res.CPU != 0.5 || p.Res.P50 != 7 || p.Cell.Round != 2 || p.Decisions != 5 || p.Fallbacks != 1 || p.Paths != nil {
		t.Fatalf("plugin path: %+v %+v", p, p.Res)
	}
	if r.Res.MsgsPerSec != 100 {
		t.Fatal("splitPaths changed the cell's own result")
	}
}

func TestPairedRatio(t *testing.T) {
	res := func(variant string, round int, msgsPerSec float64) *cellResult {
		return &cellResult{Cell: cell{Scenario: "strategy-paths", Driver: "core", Variant: variant, Round: round}, Status: "ok",
			Res: &load.Result{MsgsPerSec: msgsPerSec, Msgs: 1}}
	}
	r := &report{results: []*cellResult{
		res("rr-inproc", 1, 100), res("rr-plugin", 1, 90),
		res("rr-inproc", 2, 50), res("rr-plugin", 2, 49), // a slow round for both
		res("rr-inproc", 3, 80), res("rr-plugin", 3, 40), // one bad pair
		res("rr-plugin", 4, 70), // no base in round 4: not paired
	}}
	med, each := r.paired(r.results[1], r.results[0], thr)
	if want := []float64{0.9, 0.98, 0.5}; !slices.Equal(each, want) {
		t.Fatalf("per round %v, want %v", each, want)
	}
	if med != 0.9 {
		t.Fatalf("median %v, want 0.9", med)
	}
	// rr-plugin's rounds by msgs/s: 40, 49, 70, 90; the median row is the lower middle.
	if m := r.median("strategy-paths", "core", "rr-plugin"); m.Cell.Round != 2 {
		t.Fatalf("median round %d, want 2 (49 msgs/s)", m.Cell.Round)
	}
	if q, _ := r.paired(r.results[1], nil, thr); !math.IsNaN(q) {
		t.Fatalf("no base: %v, want NaN", q)
	}
	if got := medianOf([]float64{3, 1, 2, 4}); got != 2.5 {
		t.Fatalf("medianOf even = %v, want 2.5", got)
	}
}

// TestRestartEnv: a restart starts the default two-broker cluster where it ran; any
// other cluster is not restarted.
func TestRestartEnv(t *testing.T) {
	c := &cluster{NameServer: "127.0.0.1:19876", Dir: "/dev/shm/x"}
	c.Brokers = append(c.Brokers, struct {
		Name string `json:"name"`
		Addr string `json:"addr"`
		PID  int    `json:"pid"`
	}{"broker-a", "127.0.0.1:20911", 1}, struct {
		Name string `json:"name"`
		Addr string `json:"addr"`
		PID  int    `json:"pid"`
	}{"broker-b", "127.0.0.1:20921", 2})
	env, ok := c.restartEnv()
	want := []string{"RMQ_RUN_DIR=/dev/shm/x", "RMQ_NAMESRV_PORT=19876", "RMQ_BROKER_A_PORT=20911", "RMQ_BROKER_B_PORT=20921"}
	if !ok || !slices.Equal(env, want) {
		t.Fatalf("restartEnv = %q, %v; want %q", env, ok, want)
	}
	c.Brokers[1].Name = "broker-acl"
	if _, ok := c.restartEnv(); ok {
		t.Fatal("a cluster with another broker would be restarted")
	}
}

// TestFmtRatioNear: a ratio that two decimals would show equal to its limit gets more,
// so that "missed" never stands next to the limit itself.
func TestFmtRatioNear(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		q, limit float64
		want     string
	}{
		{1.2037, 1.2, "1.204×"},
		{1.198, 1.2, "1.198×"},
		{1.2, 1.2, "1.20×"},
		{1.31, 1.2, "1.31×"},
		{0.8951, 0.9, "0.895×"},
		{1.2003, 1.2, "1.2003×"},
		{0.89996, 0.9, "0.89996×"},
		{1.2000001, 1.2, "1.200000×"},
		{math.NaN(), 1.2, "n/a"},
	} {
		if got := fmtRatioNear(c.q, c.limit); got != c.want {
			t.Errorf("fmtRatioNear(%v, %v) = %q, want %q", c.q, c.limit, got, c.want)
		}
	}
	// Every target row goes through judged (throughput against Java, strategy paths…).
	if got := judged(949, 1000, 0.95); got != "0.949×" {
		t.Errorf("judged(949, 1000, 0.95) = %q, want 0.949×", got)
	}
	if got := judged(1, 0, 1); got != "n/a" {
		t.Errorf("judged(1, 0, 1) = %q, want n/a", got)
	}
}
