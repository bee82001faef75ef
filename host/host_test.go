package host

import (
	"bufio"
	"cmp"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/producerd/producerd/plugins/sdk"
	"github.com/producerd/producerd/plugins/sdk/sdktest"
)

// specs of every built-in and the keyhash example, in-process and out of process.
func conformanceSpecs(t *testing.T) map[string]Spec {
	return map[string]Spec{
		"roundrobin/in-process":   {Plugin: "roundrobin", InProcess: true},
		"latencyfault/in-process": {Plugin: "latencyfault", InProcess: true},
		"keyhash/in-process":      {Plugin: "keyhash", InProcess: true},
		"roundrobin/plugin":       {Plugin: "roundrobin", Command: selfCommand("roundrobin")},
		"latencyfault/plugin":     {Plugin: "latencyfault", Command: selfCommand("latencyfault")},
		"keyhash/plugin-by-path":  {Name: "keyhash", Plugin: keyhashPlugin(t)},
		"leastlatency/in-process": {Plugin: "leastlatency", InProcess: true},
		"leastlatency/plugin":     {Plugin: "leastlatency", Command: selfCommand("leastlatency")},
	}
}

func TestConformance(t *testing.T) {
	for name, spec := range conformanceSpecs(t) {
		t.Run(name, func(t *testing.T) {
			sdktest.Conformance(t, func(t *testing.T) sdk.Selector {
				h, _ := newHost(t, nil)
				if err := h.Start(context.Background(), spec); err != nil {
					t.Fatalf("Start: %v", err)
				}
				return h.Strategy()
			})
		})
	}
}

// TestPluginDecides checks that out-of-process strategies really decide in the plugin
// (or locally from its table), with no fallback on the happy path.
func TestPluginDecides(t *testing.T) {
	for name, spec := range conformanceSpecs(t) {
		if strings.HasSuffix(name, "in-process") {
			continue
		}
		t.Run(name, func(t *testing.T) {
			h, _ := newHost(t, nil)
			if err := h.Start(context.Background(), spec); err != nil {
				t.Fatal(err)
			}
			st := h.Status()
			if st.Mode != ModePlugin || st.PID == 0 || !pidAlive(st.PID) {
				t.Fatalf("Status = %+v, want a running plugin", st)
			}
			l := startLoad(t, h.Strategy(), 4, false)
			waitFor(t, "decisions", 20*time.Second, func() bool { return l.count.Load() >= 2000 })
			if err := l.stop(); err != nil {
				t.Fatal(err)
			}
			if st := h.Status(); st.Fallbacks != 0 {
				t.Fatalf("healthy plugin fell back: %v", st.FallbacksByReason)
			}
		})
	}
}

// TestMisbehavingPlugins: every broken plugin leaves the strategy deciding (via a
// counted fallback) and logs a clear error.
func TestMisbehavingPlugins(t *testing.T) {
	zeros := strings.Repeat("0", 64)
	for _, tc := range []struct {
		name      string
		spec      func(t *testing.T) Spec
		startErr  error  // wanted from Start (nil: Start succeeds)
		reason    string // fallback reason that must be counted
		minReason int    // ... at least this often (0: 50)
		log       string // must appear in the host log
		wantMode  Mode   // eventually
		restarted bool   // the plugin must be restarted at least once
	}{
		{
			name: "hangs in Select",
			spec: func(t *testing.T) Spec {
				return Spec{Plugin: scriptPlugin(t, "hang"), DecisionTimeout: 5 * time.Millisecond}
			},
			// A hung plugin times out only until its breaker opens, then once per
			// probe until the crash loop stops it: on a loaded machine that can be
			// fewer than 50 (CI, 2026-12-07); the other fallbacks are the breaker's.
			reason: "timeout", minReason: 5,
			log:      "plugin decision timed out",
			wantMode: ModeCrashLoop, restarted: true,
		},
		{
			name:     "exits at start",
			spec:     func(t *testing.T) Spec { return Spec{Plugin: scriptPlugin(t, "exit")} },
			startErr: ErrPluginDown,
			reason:   "plugin-down",
			log:      "plugin crash loop; restarts stopped",
			wantMode: ModeCrashLoop,
		},
		{
			name:     "wrong magic cookie",
			spec:     func(t *testing.T) Spec { return Spec{Plugin: scriptPlugin(t, "badcookie")} },
			startErr: ErrPluginDown,
			reason:   "plugin-down",
			log:      "plugin crash loop; restarts stopped",
			wantMode: ModeCrashLoop,
		},
		{
			name:     "wrong protocol version",
			spec:     func(t *testing.T) Spec { return Spec{Plugin: scriptPlugin(t, "badversion")} },
			startErr: ErrPluginDown,
			reason:   "plugin-down",
			log:      "incompatible API version with plugin",
			wantMode: ModeCrashLoop,
		},
		{
			name:     "wrong SHA-256",
			spec:     func(t *testing.T) Spec { return Spec{Plugin: scriptPlugin(t, "roundrobin"), SHA256: zeros} },
			startErr: ErrChecksumMismatch,
			reason:   "plugin-down",
			log:      "does not match its SHA-256 pin",
			wantMode: ModeFailed,
		},
		{
			name:     "out-of-range index",
			spec:     func(t *testing.T) Spec { return Spec{Plugin: scriptPlugin(t, "outofrange")} },
			reason:   "out-of-range",
			log:      "index=10",
			wantMode: ModeBreakerOpen,
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h, logs := newHost(t, func(c *Config) {
				c.CrashLoopLimit = 3
				c.StallRestart = 200 * time.Millisecond
				c.BreakerProbe = 20 * time.Millisecond
				c.BreakerMaxProbe = 20 * time.Millisecond // probes keep the fallback counts coming
			})
			err := h.Start(context.Background(), tc.spec(t))
			if tc.startErr == nil && err != nil || tc.startErr != nil && !errors.Is(err, tc.startErr) {
				t.Fatalf("Start = %v, want %v", err, tc.startErr)
			}
			l := startLoad(t, h.Strategy(), 4, false)
			minReason := cmp.Or(tc.minReason, 50)
			waitFor(t, "fallback decisions with reason "+tc.reason, 20*time.Second, func() bool {
				st := h.Status()
				return st.FallbacksByReason[tc.reason] >= uint64(minReason) && st.Fallbacks >= 50
			})
			waitFor(t, "mode "+string(tc.wantMode), 30*time.Second, func() bool { return h.Status().Mode == tc.wantMode })
			if tc.restarted {
				waitFor(t, "a restart", 20*time.Second, func() bool { return h.Status().Restarts >= 1 })
			}
			if err := l.stop(); err != nil {
				t.Fatalf("a caller saw a failed decision: %v", err)
			}
			waitFor(t, "log line "+strconv.Quote(tc.log), 10*time.Second, func() bool { return strings.Contains(logs.String(), tc.log) })
			if st := h.Status(); st.Decisions == 0 || st.Totals.Fallbacks == 0 {
				t.Fatalf("Status = %+v", st)
			}
		})
	}
}

func TestChecksumPin(t *testing.T) {
	path := scriptPlugin(t, "roundrobin")
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(b)
	h, _ := newHost(t, nil)
	if err := h.Start(context.Background(), Spec{Plugin: path, SHA256: hex.EncodeToString(sum[:])}); err != nil {
		t.Fatalf("Start with the right pin: %v", err)
	}
	if st := h.Status(); st.Mode != ModePlugin {
		t.Fatalf("Mode = %s, want plugin", st.Mode)
	}
}

func TestStartRefusesInvalidSpecs(t *testing.T) {
	h, _ := newHost(t, nil)
	for _, spec := range []Spec{
		{},
		{Plugin: "nosuchbuiltin"},
		{Plugin: "./x", InProcess: true},
		{Plugin: "roundrobin", SHA256: "abc"},
		{Plugin: "latencyfault", InProcess: true, Settings: []byte(`{"preset":"rocketmq9"}`)},
		{Plugin: "latencyfault", InProcess: true, Settings: []byte(`{"nope":1}`)},
		{Plugin: "roundrobin", Settings: []byte(`{"x":1}`), Command: selfCommand("roundrobin")},
	} {
		if err := h.Start(context.Background(), spec); err == nil {
			t.Errorf("Start(%+v) succeeded", spec)
		}
	}
	if st := h.Status(); st.Generation != 0 || st.Mode != ModeInProcess {
		t.Fatalf("a refused Start changed the strategy: %+v", st)
	}
	sdktest.MustSelect(t, h.Strategy(), sdktest.NewRoute("t", sdktest.Queues(2, 2)).First())
}

// TestSIGKILLMidLoad: decisions continue (via fallback) while the plugin is killed,
// and the plugin comes back, counted.
func TestSIGKILLMidLoad(t *testing.T) {
	for _, plugin := range []string{"latencyfault", "keyhash"} {
		t.Run(plugin, func(t *testing.T) {
			h, logs := newHost(t, nil)
			spec := Spec{Plugin: plugin, Command: selfCommand(plugin)}
			if plugin == "keyhash" {
				spec = Spec{Name: "keyhash", Plugin: keyhashPlugin(t)}
			}
			if err := h.Start(context.Background(), spec); err != nil {
				t.Fatal(err)
			}
			pid := h.Status().PID
			l := startLoad(t, h.Strategy(), 4, false)
			waitFor(t, "decisions", 20*time.Second, func() bool { return l.count.Load() > 500 })
			killed := time.Now()
			if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
				t.Fatal(err)
			}
			waitFor(t, "a restarted plugin", 20*time.Second, func() bool {
				st := h.Status()
				return st.Mode == ModePlugin && st.PID != 0 && st.PID != pid && st.Restarts == 1
			})
			t.Logf("plugin back %v after SIGKILL", time.Since(killed).Round(time.Millisecond))
			before := l.count.Load()
			waitFor(t, "decisions after the restart", 20*time.Second, func() bool { return l.count.Load() > before+500 })
			if err := l.stop(); err != nil {
				t.Fatalf("a caller saw a failed decision: %v", err)
			}
			st := h.Status()
			if st.Crashes != 1 || pidAlive(pid) {
				t.Fatalf("Status = %+v; old pid alive %v", st, pidAlive(pid))
			}
			if !strings.Contains(logs.String(), "strategy plugin failed") {
				t.Fatalf("no crash logged")
			}
		})
	}
}

// TestHotSwap swaps roundrobin → latencyfault → keyhash → roundrobin while goroutines
// select continuously: no caller sees an error and every old generation drains and is
// retired.
func TestHotSwap(t *testing.T) {
	h, _ := newHost(t, nil)
	ctx := context.Background()
	if err := h.Start(ctx, Spec{Plugin: "roundrobin", Command: selfCommand("roundrobin")}); err != nil {
		t.Fatal(err)
	}
	l := startLoad(t, h.Strategy(), 6, true)
	steps := []Spec{
		{Plugin: "latencyfault", Command: selfCommand("latencyfault"), Settings: []byte(`{"preset":"rocketmq5"}`)},
		{Name: "keyhash", Plugin: keyhashPlugin(t)},
		{Plugin: "roundrobin", Command: selfCommand("roundrobin")},
	}
	for _, spec := range steps {
		before := l.count.Load()
		waitFor(t, "decisions before the swap", 20*time.Second, func() bool { return l.count.Load() > before+300 })
		if err := h.Swap(ctx, spec); err != nil {
			t.Fatalf("Swap(%s): %v", spec.Plugin, err)
		}
		if st := h.Status(); st.Mode != ModePlugin || st.Descriptor.Name != spec.Name && st.Name != spec.Name && st.Plugin != spec.Plugin {
			t.Fatalf("after Swap(%s): %+v", spec.Plugin, st)
		}
	}
	before := l.count.Load()
	waitFor(t, "decisions after the last swap", 20*time.Second, func() bool { return l.count.Load() > before+300 })
	if err := l.stop(); err != nil {
		t.Fatalf("a caller saw a failed decision during the swaps: %v", err)
	}
	waitFor(t, "old generations retired", 20*time.Second, func() bool {
		h.regMu.Lock()
		defer h.regMu.Unlock()
		return len(h.live) == 1
	})
	st := h.Status()
	if st.Swaps != 3 || st.Rollbacks != 0 || st.Generation != 4 || st.InFlight != 0 {
		t.Fatalf("Status = %+v", st)
	}
}

func TestSwapKeepsOldOnFailedHealthCheck(t *testing.T) {
	h, logs := newHost(t, nil)
	ctx := context.Background()
	if err := h.Start(ctx, Spec{Plugin: "roundrobin", Command: selfCommand("roundrobin")}); err != nil {
		t.Fatal(err)
	}
	for _, mode := range []string{"exit", "outofrange-at-probe"} {
		var spec Spec
		switch mode {
		case "exit":
			spec = Spec{Plugin: scriptPlugin(t, "exit")}
		default:
			// roundrobin with settings it rejects: refused at Configure.
			spec = Spec{Plugin: scriptPlugin(t, "roundrobin"), Settings: []byte(`{"bad":true}`)}
		}
		err := h.Swap(ctx, spec)
		if err == nil {
			t.Fatalf("Swap(%s) succeeded", mode)
		}
		if st := h.Status(); st.Generation != 1 || st.Mode != ModePlugin {
			t.Fatalf("after a failed Swap(%s): %+v", mode, st)
		}
	}
	_ = logs
	sdktest.MustSelect(t, h.Strategy(), sdktest.NewRoute("t", sdktest.Queues(2, 2)).First())
}

func TestRollback(t *testing.T) {
	h, logs := newHost(t, func(c *Config) { c.Probation = 20 * time.Second })
	ctx := context.Background()
	if err := h.Start(ctx, Spec{Plugin: "latencyfault", Command: selfCommand("latencyfault")}); err != nil {
		t.Fatal(err)
	}
	l := startLoad(t, h.Strategy(), 4, false)
	if err := h.Swap(ctx, Spec{Name: "flaky", Plugin: scriptPlugin(t, "failafter")}); err != nil {
		t.Fatalf("Swap: %v", err)
	}
	waitFor(t, "the rollback", 20*time.Second, func() bool { return h.Status().Rollbacks == 1 })
	if err := l.stop(); err != nil {
		t.Fatalf("a caller saw a failed decision: %v", err)
	}
	st := h.Status()
	if st.Generation != 1 || st.Name != "latencyfault" || st.Mode != ModePlugin {
		t.Fatalf("after rollback: %+v", st)
	}
	// The counter moves before the log line is written: wait for the line.
	waitFor(t, "the rollback log line", 10*time.Second, func() bool { return strings.Contains(logs.String(), "rolled back") })
}

// TestFailureAvoidedByNextSelect: after a failed outcome is observed, the very next
// decision through an out-of-process latency-fault avoids that broker.
func TestFailureAvoidedByNextSelect(t *testing.T) {
	h, _ := newHost(t, nil)
	ctx := context.Background()
	if err := h.Start(ctx, Spec{Plugin: "latencyfault", Command: selfCommand("latencyfault")}); err != nil {
		t.Fatal(err)
	}
	s := h.Strategy()
	rt := sdktest.NewRoute("avoid", sdktest.Queues(3, 4))
	for range 100 {
		sdktest.MustSelect(t, s, rt.First())
	}
	for round, bad := range []string{"broker-a", "broker-b"} {
		o := sdktest.Failure(bad, sdk.OutcomeConnectFailure, time.Millisecond)
		o.Topic = rt.Topic
		s.(sdk.Observer).Observe(ctx, []sdk.Outcome{o})
		for k := range 60 {
			if q := sdktest.MustSelect(t, s, rt.First()); q.Broker == bad {
				t.Fatalf("round %d decision %d after a failure on %s picked it", round, k, bad)
			}
		}
	}
	rows := h.Status().Health
	avail := map[string]bool{}
	for _, r := range rows {
		avail[r.Broker] = r.Available
	}
	if avail["broker-a"] && avail["broker-b"] {
		t.Fatalf("health table %v shows no isolation", rows)
	}
}

// TestNoOrphanAfterSIGKILL: a process that started a plugin is SIGKILLed; the plugin
// must not survive it.
func TestNoOrphanAfterSIGKILL(t *testing.T) {
	cmd := exec.Command(selfCommand("helper")[0], pluginArg, "helper")
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = cmd.Process.Kill(); _ = cmd.Wait() }()
	line, err := bufio.NewReader(out).ReadString('\n')
	if err != nil {
		t.Fatalf("helper: %v", err)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(strings.TrimPrefix(line, "PID ")))
	if err != nil || pid <= 0 {
		t.Fatalf("helper said %q", line)
	}
	if !pidAlive(pid) {
		t.Fatalf("plugin %d not running before the kill", pid)
	}
	if err := cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	_ = cmd.Wait()
	waitFor(t, "the orphaned plugin to die", 10*time.Second, func() bool { return !pidAlive(pid) })
}

func TestClose(t *testing.T) {
	h, _ := newHost(t, nil)
	if err := h.Start(context.Background(), Spec{Plugin: "roundrobin", Command: selfCommand("roundrobin")}); err != nil {
		t.Fatal(err)
	}
	pid := h.Status().PID
	if err := h.Close(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the plugin to exit", 10*time.Second, func() bool { return !pidAlive(pid) })
	sdktest.MustSelect(t, h.Strategy(), sdktest.NewRoute("t", sdktest.Queues(2, 2)).First())
	if err := h.Swap(context.Background(), Spec{Plugin: "roundrobin", InProcess: true}); !errors.Is(err, ErrClosed) {
		t.Fatalf("Swap after Close = %v", err)
	}
}

// TestNoGoroutineLeak: after Close, the goroutines a Host started (supervisors,
// sessions, go-plugin's log readers) are gone.
func TestNoGoroutineLeak(t *testing.T) {
	before := runtime.NumGoroutine()
	h, _ := newHost(t, nil)
	ctx := context.Background()
	if err := h.Start(ctx, Spec{Plugin: "latencyfault", Command: selfCommand("latencyfault")}); err != nil {
		t.Fatal(err)
	}
	if err := h.Swap(ctx, Spec{Plugin: "roundrobin", Command: selfCommand("roundrobin")}); err != nil {
		t.Fatal(err)
	}
	l := startLoad(t, h.Strategy(), 2, false)
	waitFor(t, "decisions", 10*time.Second, func() bool { return l.count.Load() > 100 })
	if err := l.stop(); err != nil {
		t.Fatal(err)
	}
	_ = h.Close()
	waitFor(t, "goroutines to end", 10*time.Second, func() bool { return runtime.NumGoroutine() <= before+1 })
}
