package host

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/producerd/producerd/plugins/sdk"
)

// pooledHosts returns n Hosts on one Pool, with the Pool's log.
func pooledHosts(t *testing.T, n int) ([]*Host, *Pool, *logBuffer) {
	t.Helper()
	logs := &logBuffer{}
	pool := NewPool(hclog.New(&hclog.LoggerOptions{Name: "pool", Output: logs, Level: hclog.Debug}))
	hosts := make([]*Host, n)
	for i := range hosts {
		hosts[i], _ = newHost(t, func(c *Config) { c.Pool = pool })
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("pool log:\n%s", logs.String())
		}
	})
	return hosts, pool, logs
}

// TestPoolSharesProcess: hosts on one Pool running the same plugin share one process,
// each with its own session and counters; a SIGKILL restarts it once for all of them;
// the process stops when its last user leaves, not before.
func TestPoolSharesProcess(t *testing.T) {
	hosts, pool, logs := pooledHosts(t, 3)
	ctx := context.Background()
	spec := Spec{Plugin: "latencyfault", Command: selfCommand("latencyfault"), Settings: []byte(`{"preset":"rocketmq5"}`)}
	for _, h := range hosts {
		if err := h.Start(ctx, spec); err != nil {
			t.Fatal(err)
		}
	}
	pid := hosts[0].Status().PID
	for i, h := range hosts {
		if st := h.Status(); st.Mode != ModePlugin || st.PID != pid || st.ProcessUsers != 3 {
			t.Fatalf("host %d: mode %s pid %d users %d, want plugin %d 3", i, st.Mode, st.PID, st.ProcessUsers, pid)
		}
	}
	if procs := pool.Processes(); len(procs) != 1 || procs[0].PID != pid || procs[0].Users != 3 {
		t.Fatalf("Processes = %+v", procs)
	}

	loads := make([]load, len(hosts))
	for i, h := range hosts {
		loads[i] = startLoad(t, h.Strategy(), 2, false)
	}
	waitFor(t, "decisions on every host", 20*time.Second, func() bool {
		for _, l := range loads {
			if l.count.Load() < 200 {
				return false
			}
		}
		return true
	})
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "every host on the restarted process", 20*time.Second, func() bool {
		first := hosts[0].Status().PID
		for _, h := range hosts {
			st := h.Status()
			if st.Mode != ModePlugin || st.PID == 0 || st.PID == pid || st.PID != first || st.Restarts != 1 {
				return false
			}
		}
		return true
	})
	for i, l := range loads {
		if err := l.stop(); err != nil {
			t.Fatalf("host %d: a caller saw a failed decision: %v", i, err)
		}
	}
	newPID := hosts[0].Status().PID
	for i, h := range hosts {
		if st := h.Status(); st.Crashes != 1 || st.Restarts != 1 {
			t.Fatalf("host %d: crashes %d restarts %d, want 1 and 1", i, st.Crashes, st.Restarts)
		}
	}
	if procs := pool.Processes(); len(procs) != 1 || procs[0].Starts != 2 || procs[0].PID != newPID {
		t.Fatalf("Processes = %+v, want one process started twice", procs)
	}
	if pidAlive(pid) {
		t.Fatalf("the killed plugin %d is still alive", pid)
	}
	if got := strings.Count(logs.String(), "strategy plugin failed"); got != 1 {
		t.Fatalf("the crash was logged %d times, want once (one supervisor)", got)
	}

	// Users leave one by one; the process stays until the last one is gone.
	for i, h := range hosts {
		if err := h.Close(); err != nil {
			t.Fatal(err)
		}
		last := i == len(hosts)-1
		if alive := pidAlive(newPID); alive == last {
			t.Fatalf("after closing %d of %d hosts the plugin alive = %v", i+1, len(hosts), alive)
		}
	}
	if procs := pool.Processes(); len(procs) != 0 {
		t.Fatalf("Processes after the last host closed = %+v", procs)
	}
}

// TestPoolSwapJoinsAndLeaves: a swap to a plugin another host runs joins its process;
// a swap away leaves it (the process stops once the retired generation is closed); a
// swap to the same plugin within one host keeps the process.
func TestPoolSwapJoinsAndLeaves(t *testing.T) {
	hosts, pool, _ := pooledHosts(t, 2)
	a, b := hosts[0], hosts[1]
	ctx := context.Background()
	lf := Spec{Plugin: "latencyfault", Command: selfCommand("latencyfault")}
	rr := Spec{Plugin: "roundrobin", Command: selfCommand("roundrobin")}
	if err := a.Start(ctx, lf); err != nil {
		t.Fatal(err)
	}
	if err := b.Start(ctx, rr); err != nil {
		t.Fatal(err)
	}
	lfPID, rrPID := a.Status().PID, b.Status().PID
	if lfPID == rrPID || len(pool.Processes()) != 2 {
		t.Fatalf("two plugins: pids %d %d, processes %+v", lfPID, rrPID, pool.Processes())
	}

	// b joins a's process; its own rr process stops after the probation.
	if err := b.SwapAndAwait(ctx, lf); err != nil {
		t.Fatal(err)
	}
	if st := b.Status(); st.PID != lfPID || st.Mode != ModePlugin {
		t.Fatalf("b after the swap: pid %d mode %s, want the shared %d", st.PID, st.Mode, lfPID)
	}
	waitFor(t, "the rr plugin to stop with its last user", 10*time.Second, func() bool { return !pidAlive(rrPID) })
	if n := a.Status().ProcessUsers; n != 2 {
		t.Fatalf("ProcessUsers = %d, want 2", n)
	}

	// A swap within a to the same plugin under another name keeps the process.
	renamed := lf
	renamed.Name = "lf2"
	if err := a.SwapAndAwait(ctx, renamed); err != nil {
		t.Fatal(err)
	}
	if st := a.Status(); st.PID != lfPID || st.Name != "lf2" {
		t.Fatalf("a after swapping to the same plugin: pid %d name %s, want %d lf2", st.PID, st.Name, lfPID)
	}
	waitFor(t, "a's retired generation to leave", 10*time.Second, func() bool { return a.Status().ProcessUsers == 2 })

	// Other settings are another process.
	tuned := lf
	tuned.Settings = []byte(`{"preset":"rocketmq4"}`)
	if err := a.SwapAndAwait(ctx, tuned); err != nil {
		t.Fatal(err)
	}
	if st := a.Status(); st.PID == lfPID || st.ProcessUsers != 1 {
		t.Fatalf("a with other settings: pid %d users %d, want its own process", st.PID, st.ProcessUsers)
	}
	waitFor(t, "b alone on the first process", 10*time.Second, func() bool { return b.Status().ProcessUsers == 1 })
	if !pidAlive(lfPID) {
		t.Fatal("the process b still uses stopped")
	}
}

// TestPoolSharesBrokerHealth documents the decision that generations sharing a process
// share its one strategy instance: a broker isolated by one host's outcome is isolated
// in the other host's health table too, while each keeps its own fallback counters.
func TestPoolSharesBrokerHealth(t *testing.T) {
	hosts, _, _ := pooledHosts(t, 2)
	ctx := context.Background()
	spec := Spec{Plugin: "latencyfault", Command: selfCommand("latencyfault"), Settings: []byte(`{"preset":"rocketmq5"}`)}
	for _, h := range hosts {
		if err := h.Start(ctx, spec); err != nil {
			t.Fatal(err)
		}
	}
	obs := hosts[0].Strategy().(sdk.Observer)
	obs.Observe(ctx, []sdk.Outcome{{Topic: "t", Broker: "broker-b", Kind: sdk.OutcomeConnectFailure, Isolation: true, Latency: time.Second}})
	isolated := func(h *Host) bool {
		for _, r := range h.Status().Health {
			if r.Broker == "broker-b" && !r.Available {
				return true
			}
		}
		return false
	}
	if !isolated(hosts[0]) {
		t.Fatalf("the observing host does not see broker-b isolated: %+v", hosts[0].Status().Health)
	}
	waitFor(t, "the other host to see broker-b isolated", 10*time.Second, func() bool { return isolated(hosts[1]) })
}

// TestPoolKey: what makes two specs share a process.
func TestPoolKey(t *testing.T) {
	exe := filepath.Join(t.TempDir(), "plugin")
	if err := os.WriteFile(exe, []byte("#!/bin/sh\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	t.Setenv("POOL_KEY_TEST", "one")
	base := Spec{Name: "a", Plugin: exe, Settings: []byte(`{"x":1}`), Env: []string{"POOL_KEY_TEST"}}
	key := poolKey(base)
	for _, tc := range []struct {
		name  string
		tweak func(*Spec)
		same  bool
	}{
		{"name and decision timeout", func(s *Spec) { s.Name, s.DecisionTimeout = "b", time.Second }, true},
		{"settings around whitespace", func(s *Spec) { s.Settings = []byte(" {\"x\":1}\n") }, true},
		{"settings", func(s *Spec) { s.Settings = []byte(`{"x":2}`) }, false},
		{"sha256", func(s *Spec) { s.SHA256 = "00" }, false},
		{"env names", func(s *Spec) { s.Env = nil }, false},
		{"trust", func(s *Spec) { s.AllowInsecurePath = true }, false},
		{"path", func(s *Spec) { s.Plugin = exe + "2" }, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := base
			tc.tweak(&s)
			if got := poolKey(s) == key; got != tc.same {
				t.Fatalf("same process = %v, want %v", got, tc.same)
			}
		})
	}
	t.Run("env value", func(t *testing.T) {
		t.Setenv("POOL_KEY_TEST", "two")
		if poolKey(base) == key {
			t.Fatal("another value of an allowed variable shares the process")
		}
	})
	t.Run("rebuilt binary", func(t *testing.T) {
		later := time.Now().Add(time.Hour)
		if err := os.Chtimes(exe, later, later); err != nil {
			t.Fatal(err)
		}
		if poolKey(base) == key {
			t.Fatal("a rebuilt binary shares the old process")
		}
	})
	t.Run("builtin command", func(t *testing.T) {
		a := Spec{Plugin: "roundrobin", Command: []string{exe, "plugin", "roundrobin"}}
		b := Spec{Plugin: "roundrobin", Command: []string{exe, "plugin", "latencyfault"}}
		if poolKey(a) == poolKey(b) {
			t.Fatal("different commands share a process")
		}
	})
}

// builtWasm builds the module of a strategy in wasmPkgs once per test binary.
func builtWasm(t *testing.T, name string) string {
	t.Helper()
	if p, ok := wasmBuilt.Load(name); ok {
		return p.(string)
	}
	dir, err := os.MkdirTemp("", "producerd-pooltest-*")
	if err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, name+".wasm")
	cmd := exec.Command("go", "build", "-buildmode=c-shared", "-o", out, wasmPkgs[name])
	cmd.Env = append(os.Environ(), "GOOS=wasip1", "GOARCH=wasm")
	if msg, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build %s as a module: %v\n%s", name, err, msg)
	}
	wasmBuilt.Store(name, out)
	return out
}

// TestPoolSharesWasm: hosts on one Pool running the same module with the same settings
// share one loaded strategy (its instances); each host decides through it, and the
// last one to close releases it.
func TestPoolSharesWasm(t *testing.T) {
	hosts, pool, _ := pooledHosts(t, 3)
	ctx := context.Background()
	spec := Spec{Name: "lf-wasm", Plugin: builtWasm(t, "latencyfault"), Settings: []byte(`{"preset":"rocketmq5"}`)}
	for _, h := range hosts {
		if err := h.Start(ctx, spec); err != nil {
			t.Fatal(err)
		}
	}
	if n := pool.wasmModules(); n != 1 {
		t.Fatalf("%d hosts on one module hold %d loaded modules, want 1", len(hosts), n)
	}
	other := spec
	other.Settings = []byte(`{"preset":"rocketmq4"}`)
	if err := hosts[2].SwapAndAwait(ctx, other); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the swapped host's old generation to release the module", 10*time.Second, func() bool { return pool.wasmModules() == 2 })
	for i, h := range hosts[:2] {
		l := startLoad(t, h.Strategy(), 2, false)
		waitFor(t, "decisions", 10*time.Second, func() bool { return l.count.Load() > 200 })
		if err := l.stop(); err != nil {
			t.Fatalf("host %d: %v", i, err)
		}
		if st := h.Status(); st.Fallbacks != 0 || st.Mode != ModeInProcess {
			t.Fatalf("host %d: mode %s fallbacks %v", i, st.Mode, st.FallbacksByReason)
		}
	}
	_ = hosts[0].Close()
	if n := pool.wasmModules(); n != 2 {
		t.Fatalf("after one of two users closed: %d modules, want 2", n)
	}
	l := startLoad(t, hosts[1].Strategy(), 2, false)
	waitFor(t, "decisions of the remaining user", 10*time.Second, func() bool { return l.count.Load() > 200 })
	if err := l.stop(); err != nil {
		t.Fatal(err)
	}
	_ = hosts[1].Close()
	_ = hosts[2].Close()
	if n := pool.wasmModules(); n != 0 {
		t.Fatalf("after every host closed: %d modules, want 0", n)
	}
}

// TestPoolReopensBrokenSession: a session that breaks while the shared process runs is
// opened again for its generation alone: same process, no crash counted anywhere.
func TestPoolReopensBrokenSession(t *testing.T) {
	hosts, _, _ := pooledHosts(t, 2)
	ctx := context.Background()
	spec := Spec{Plugin: "latencyfault", Command: selfCommand("latencyfault")}
	for _, h := range hosts {
		if err := h.Start(ctx, spec); err != nil {
			t.Fatal(err)
		}
	}
	pid := hosts[0].Status().PID
	broken := hosts[0].cur.Load().conn.Load()
	_ = broken.sess.Close()
	waitFor(t, "a new session for the host whose session broke", 10*time.Second, func() bool {
		c := hosts[0].cur.Load().conn.Load()
		return c != nil && c != broken && hosts[0].Status().Mode == ModePlugin
	})
	for i, h := range hosts {
		if st := h.Status(); st.PID != pid || st.Crashes != 0 || st.Restarts != 0 {
			t.Fatalf("host %d: pid %d crashes %d restarts %d, want %d 0 0", i, st.PID, st.Crashes, st.Restarts, pid)
		}
	}
	l := startLoad(t, hosts[0].Strategy(), 2, false)
	waitFor(t, "decisions on the new session", 10*time.Second, func() bool { return l.count.Load() > 200 })
	if err := l.stop(); err != nil {
		t.Fatal(err)
	}
	if st := hosts[0].Status(); st.Fallbacks > 0 && st.FallbacksByReason["plugin-down"] != st.Fallbacks {
		t.Fatalf("fallbacks other than while the session was down: %v", st.FallbacksByReason)
	}
}

// TestPoolCrashLoopLeavesPool: a shared process that crash-loops stops restarting for
// all its users at once and leaves the pool; the next swap to the plugin starts a
// fresh process, while a user that did not swap stays on its fallback.
func TestPoolCrashLoopLeavesPool(t *testing.T) {
	hosts, pool, _ := pooledHosts(t, 2)
	for _, h := range hosts {
		h.cfg.CrashLoopLimit = 3
	}
	flag := filepath.Join(t.TempDir(), "ready")
	cmd := selfCommand("roundrobin")
	script := filepath.Join(t.TempDir(), "flaky-plugin")
	body := "#!/bin/sh\n[ -f '" + flag + "' ] && exec '" + cmd[0] + "' " + cmd[1] + " " + cmd[2] + "\nexit 3\n"
	if err := os.WriteFile(script, []byte(body), 0o755); err != nil {
		t.Fatal(err)
	}
	spec := Spec{Name: "flaky", Plugin: script}
	ctx := context.Background()
	for i, h := range hosts {
		if err := h.Start(ctx, spec); !errors.Is(err, ErrPluginDown) {
			t.Fatalf("host %d: Start = %v, want ErrPluginDown", i, err)
		}
	}
	waitFor(t, "both users in crash loop", 20*time.Second, func() bool {
		return hosts[0].Status().Mode == ModeCrashLoop && hosts[1].Status().Mode == ModeCrashLoop
	})
	if procs := pool.Processes(); len(procs) != 0 {
		t.Fatalf("a crash-looping process stays in the pool: %+v", procs)
	}
	// Each user counts the failures it saw: the first all three, the second those
	// after it joined (Start returned after the first).
	if c0, c1 := hosts[0].Status().Crashes, hosts[1].Status().Crashes; c0 != 3 || c1 < 1 || c1 > 2 {
		t.Fatalf("crashes %d and %d, want 3 and 1..2", c0, c1)
	}
	if err := os.WriteFile(flag, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := hosts[0].SwapAndAwait(ctx, spec); err != nil {
		t.Fatal(err)
	}
	if st := hosts[0].Status(); st.Mode != ModePlugin || st.PID == 0 || st.ProcessUsers != 1 {
		t.Fatalf("after the swap: %+v, want a fresh running process", st)
	}
	if st := hosts[1].Status(); st.Mode != ModeCrashLoop {
		t.Fatalf("the user that did not swap: mode %s, want crash-loop", st.Mode)
	}
}

// TestPoolHooksMayReadStatus: the crash and restart hooks run without the pool's locks,
// so a hook that reads the host's status (as a metrics exporter may) does not deadlock.
func TestPoolHooksMayReadStatus(t *testing.T) {
	pool := NewPool(hclog.NewNullLogger())
	var h *Host
	var crashes, restarts atomic.Int64
	h, _ = newHost(t, func(c *Config) {
		c.Pool = pool
		c.Hooks.OnCrash = func(string, error) { _ = h.Status(); crashes.Add(1) }
		c.Hooks.OnRestart = func(string, int) { _ = h.Status(); restarts.Add(1) }
	})
	if err := h.Start(context.Background(), Spec{Plugin: "roundrobin", Command: selfCommand("roundrobin")}); err != nil {
		t.Fatal(err)
	}
	pid := h.Status().PID
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the crash and the restart hooks", 20*time.Second, func() bool {
		return crashes.Load() == 1 && restarts.Load() == 1
	})
	if st := h.Status(); st.Mode != ModePlugin || st.PID == pid {
		t.Fatalf("after the restart: mode %s pid %d (killed %d)", st.Mode, st.PID, pid)
	}
}
