package main

import (
	"math"
	"slices"
	"testing"

	"github.com/producerd/producerd/bench/internal/load"
)

// TestRoundOrderRotatesPaths: over three rounds each strategy-paths cell runs in every
// position of its strategy's block, the blocks rotate, and no cell is lost or repeated.
func TestRoundOrderRotatesPaths(t *testing.T) {
	s := scenarios(1, "none", true)
	i := slices.IndexFunc(s, func(s scenario) bool { return s.Paths })
	paths := s[i]
	seen := map[string]map[int]bool{} // cell -> positions within its block
	for round := 1; round <= 3; round++ {
		order := roundOrder(paths, round)
		if len(order) != len(paths.Cells) {
			t.Fatalf("round %d: %d cells, want %d", round, len(order), len(paths.Cells))
		}
		names := map[string]bool{}
		for k, c := range order {
			names[c.Strategy] = true
			if seen[c.Strategy] == nil {
				seen[c.Strategy] = map[int]bool{}
			}
			seen[c.Strategy][k%3] = true
			if strategyOf(c) != strategyOf(order[k-k%3]) {
				t.Fatalf("round %d: %s is outside its strategy's block: %v", round, c.Strategy, order)
			}
		}
		if len(names) != len(paths.Cells) {
			t.Fatalf("round %d repeats a cell: %v", round, order)
		}
		if round == 2 && strategyOf(order[0]) == strategyOf(roundOrder(paths, 1)[0]) {
			t.Fatalf("round 2 starts with the same strategy as round 1")
		}
	}
	for name, pos := range seen {
		if len(pos) != 3 {
			t.Errorf("%s ran at positions %v of its block in three rounds, want all three", name, pos)
		}
	}
	// The other scenarios keep reversing every other round.
	h := s[0]
	if got := roundOrder(h, 2); got[0].Driver != h.Cells[len(h.Cells)-1].Driver {
		t.Fatalf("round 2 of %s does not start with its last cell", h.ID)
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
