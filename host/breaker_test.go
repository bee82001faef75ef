package host

import (
	"context"
	"errors"

	"strings"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/producerd/producerd/internal/strategywire"
	"github.com/producerd/producerd/internal/wasmtest"
	"github.com/producerd/producerd/plugins/roundrobin"
	"github.com/producerd/producerd/plugins/sdk"
)

// flaky is an in-process strategy that fails (with a decision timeout) while broken
// is set, and counts the decisions it was asked for.
type flaky struct {
	broken atomic.Bool
	asked  atomic.Int64
}

func (f *flaky) Select(context.Context, *sdk.Selection) (int, error) {
	f.asked.Add(1)
	if f.broken.Load() {
		return -1, strategywire.ErrDecisionTimeout
	}
	return 0, nil
}

// breakerGeneration returns a generation deciding with s in-process behind a circuit
// breaker, as a WebAssembly strategy does.
func breakerGeneration(t *testing.T, h *Host, s sdk.Selector) *generation {
	t.Helper()
	g := &generation{h: h, spec: Spec{Name: "flaky", Plugin: "./flaky.wasm"}, log: h.log, inproc: s,
		rr: roundrobin.New(), mode: ModeInProcess, brk: &breaker{}}
	g.fallback = g.rr
	d := sdk.Descriptor{Name: "flaky"}
	g.desc.Store(&d)
	return g
}

func decideOnce(t *testing.T, g *generation) {
	t.Helper()
	sel := &sdk.Selection{Topic: "t", RouteVersion: 1, Queues: []sdk.Queue{{Broker: "a"}, {Broker: "b"}}}
	if i, err := g.Select(context.Background(), sel); err != nil || i < 0 || i > 1 {
		t.Fatalf("Select = %d, %v: every decision must yield a queue", i, err)
	}
}

// TestBreakerOpensProbesAndCloses walks the circuit through its states with a fake
// clock: closed while decisions succeed; a burst of failures inside one probe interval
// does not open it; failures spanning one do; while open the strategy is asked once per
// probe interval, the interval doubling after each failed probe up to the maximum; a
// successful probe closes it. Status and the hook follow.
func TestBreakerOpensProbesAndCloses(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var events []string
		h, logs := newHost(t, func(c *Config) {
			c.BreakerThreshold = 5
			c.BreakerProbe = 100 * time.Millisecond
			c.BreakerMaxProbe = 400 * time.Millisecond
			c.Hooks.OnBreaker = func(name string, open bool, err error) {
				events = append(events, name+map[bool]string{true: " open", false: " closed"}[open])
			}
		})
		f := &flaky{}
		g := breakerGeneration(t, h, f)
		decideOnce(t, g)
		f.broken.Store(true)
		for range 10 { // a burst: no time passes
			decideOnce(t, g)
		}
		if g.brk.open() {
			t.Fatal("a burst of failures within one probe interval opened the circuit")
		}
		time.Sleep(100 * time.Millisecond)
		decideOnce(t, g) // 11 failures spanning 100 ms
		if !g.brk.open() {
			t.Fatal("failures spanning a probe interval did not open the circuit")
		}
		st := g.status()
		if st.Mode != ModeBreakerOpen || !strings.Contains(st.LastError, "decision timed out") || st.BreakerOpens != 1 {
			t.Fatalf("status while open: mode %s, last error %q, opens %d", st.Mode, st.LastError, st.BreakerOpens)
		}
		if !strings.Contains(logs.String(), "strategy circuit open") {
			t.Fatal("the opening was not logged")
		}

		// While open, the strategy is asked only once per interval: 100, 200, 400, 400 ms.
		for _, interval := range []time.Duration{100, 200, 400, 400} {
			asked := f.asked.Load()
			for range 5 {
				decideOnce(t, g)
			}
			time.Sleep(interval*time.Millisecond - time.Millisecond)
			decideOnce(t, g)
			if n := f.asked.Load() - asked; n != 0 {
				t.Fatalf("asked %d times within the %v probe interval", n, interval*time.Millisecond)
			}
			time.Sleep(time.Millisecond)
			decideOnce(t, g)
			decideOnce(t, g)
			if n := f.asked.Load() - asked; n != 1 {
				t.Fatalf("asked %d times once the %v interval passed, want one probe", n, interval*time.Millisecond)
			}
		}
		if st := g.status(); st.FallbacksByReason["breaker"] == 0 || st.FallbacksByReason["timeout"] < 11 {
			t.Fatalf("fallbacks %v", st.FallbacksByReason)
		}

		f.broken.Store(false)
		time.Sleep(400 * time.Millisecond)
		decideOnce(t, g) // the probe succeeds
		if g.brk.open() {
			t.Fatal("a successful probe did not close the circuit")
		}
		asked := f.asked.Load()
		decideOnce(t, g)
		if f.asked.Load() != asked+1 {
			t.Fatal("the closed circuit does not ask the strategy")
		}
		if st := g.status(); st.Mode != ModeInProcess || st.LastError != "" {
			t.Fatalf("status after closing: mode %s, last error %q", st.Mode, st.LastError)
		}
		if strings.Join(events, ",") != "flaky open,flaky closed" {
			t.Fatalf("hook events %v", events)
		}
	})
}

// TestWasmBreaker: WebAssembly strategies that stall (a loop, a loop-free call tree)
// or trap on every decision, loaded by the host: every decision still yields a queue
// (falling back), the circuit opens, Status says why, and the host keeps deciding.
func TestWasmBreaker(t *testing.T) {
	guest := trialGuest(t)
	for _, tc := range []struct {
		kind wasmtest.Kind
		why  string
	}{
		{wasmtest.Loop, "decision timed out"},
		{wasmtest.Recurse, "decision timed out"},
		{wasmtest.Trap, "trapped"},
	} {
		t.Run(string(tc.kind), func(t *testing.T) {
			t.Parallel()
			// A module that fails every decision never passes the trial decision.
			path, err := wasmtest.Write(t.TempDir(), tc.kind)
			if err != nil {
				t.Fatal(err)
			}
			h, _ := newHost(t, func(c *Config) {
				c.BreakerProbe = 20 * time.Millisecond
			})
			if err := h.Start(context.Background(), Spec{Plugin: path, DecisionTimeout: 20 * time.Millisecond}); !errors.Is(err, ErrHealthCheck) {
				t.Fatalf("Start(%s) = %v, want ErrHealthCheck", tc.kind, err)
			}
			// One that passes it and then fails opens the circuit.
			spec := Spec{Plugin: guest, DecisionTimeout: 20 * time.Millisecond, Settings: []byte(`{"mode":"` + string(tc.kind) + `"}`)}
			if err := h.Start(context.Background(), spec); err != nil {
				t.Fatal(err)
			}
			l := startLoad(t, h.Strategy(), 2, false)
			waitFor(t, "the circuit to open", 30*time.Second, func() bool { return h.Status().Mode == ModeBreakerOpen })
			before := l.count.Load()
			waitFor(t, "decisions while the circuit is open", 30*time.Second, func() bool { return l.count.Load() > before+100 })
			if err := l.stop(); err != nil {
				t.Fatalf("a caller saw a failed decision: %v", err)
			}
			st := h.Status()
			if !strings.Contains(st.LastError, "circuit open") || !strings.Contains(st.LastError, tc.why) || st.BreakerOpens == 0 {
				t.Fatalf("status: mode %s, last error %q, opens %d", st.Mode, st.LastError, st.BreakerOpens)
			}
			if st.FallbacksByReason["breaker"] == 0 {
				t.Fatalf("no decision was counted as a breaker fallback: %v", st.FallbacksByReason)
			}
		})
	}
}
