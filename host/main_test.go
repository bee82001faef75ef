package host

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/go-plugin"

	"github.com/producerd/producerd/host/internal/pluginclient"
	"github.com/producerd/producerd/internal/strategywire"
	"github.com/producerd/producerd/plugins/examples/keyhash"
	"github.com/producerd/producerd/plugins/examples/leastlatency"
	"github.com/producerd/producerd/plugins/sdk"
)

// The test binary doubles as every plugin the tests need: run as
// "<test binary> producerd-test-plugin MODE" it serves MODE instead of running tests.
const pluginArg = "producerd-test-plugin"

func TestMain(m *testing.M) {
	if len(os.Args) >= 3 && os.Args[1] == pluginArg {
		servePluginMode(os.Args[2])
		os.Exit(0)
	}
	code := m.Run()
	dirs := []string{keyhashBin.path, trialGuestBin.path}
	wasmBuilt.Range(func(_, p any) bool { dirs = append(dirs, p.(string)); return true })
	for _, p := range dirs {
		if p != "" {
			_ = os.RemoveAll(filepath.Dir(p))
		}
	}
	os.Exit(code)
}

// testBuiltins are the default built-ins plus keyhash, so that the example can run
// in-process and as a re-executed built-in too.
func testBuiltins() map[string]Builtin {
	b := DefaultBuiltins()
	b["keyhash"] = keyhash.Build
	b["leastlatency"] = leastlatency.New
	return b
}

// fixed is the constructor of a test strategy that takes no settings.
func fixed(sel sdk.Selector) sdk.Constructor {
	return sdk.NoSettings(func() sdk.Selector { return sel })
}

func servePluginMode(mode string) {
	switch mode {
	case "exit":
		os.Exit(3)
	case "hang":
		sdk.Serve(fixed(misbehaving{hang: true}))
	case "outofrange":
		sdk.Serve(fixed(misbehaving{outOfRange: true}))
	case "failafter":
		sdk.Serve(fixed(&failAfter{}))
	case "badcookie":
		// A plugin built for another host: it expects a different cookie and refuses.
		hs := strategywire.Handshake
		hs.MagicCookieKey, hs.MagicCookieValue = "SOME_OTHER_HOST", "not-producerd"
		plugin.Serve(&plugin.ServeConfig{HandshakeConfig: hs, Plugins: pluginclient.PluginSet(), GRPCServer: plugin.DefaultGRPCServer})
	case "badversion":
		hs := strategywire.Handshake
		hs.ProtocolVersion = 99
		plugin.Serve(&plugin.ServeConfig{HandshakeConfig: hs, Plugins: pluginclient.PluginSet(), GRPCServer: plugin.DefaultGRPCServer})
	case "helper":
		runOrphanHelper()
	case "envdump":
		dumpEnv()
		if err := ServeBuiltin("roundrobin", testBuiltins()); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(2)
		}
	default:
		if err := ServeBuiltin(mode, testBuiltins()); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(2)
		}
	}
}

// misbehaving passes the host's health check (it answers the probe decision) and then
// hangs or answers out of range on real decisions.
type misbehaving struct{ hang, outOfRange bool }

func (m misbehaving) Select(ctx context.Context, s *sdk.Selection) (int, error) {
	if s.Topic == healthCheckTopic {
		return 0, nil
	}
	switch {
	case m.hang:
		select {} // ignores ctx on purpose
	case m.outOfRange:
		return len(s.Queues) + 5, nil
	}
	return 0, nil
}

// failAfter passes the health check, then every decision fails.
type failAfter struct{}

func (*failAfter) Select(_ context.Context, s *sdk.Selection) (int, error) {
	if s.Topic == healthCheckTopic {
		return 0, nil
	}
	return -1, errors.New("failAfter: this strategy fails every real decision")
}

// runOrphanHelper starts a plugin through a Host, prints its pid and waits to be
// killed.
func runOrphanHelper() {
	h, err := New(Config{Builtins: testBuiltins()})
	if err != nil {
		fmt.Println("ERR", err)
		os.Exit(1)
	}
	if err := h.Start(context.Background(), Spec{Plugin: "roundrobin", Command: selfCommand("roundrobin")}); err != nil {
		fmt.Println("ERR", err)
		os.Exit(1)
	}
	fmt.Printf("PID %d\n", h.Status().PID)
	select {}
}

// selfCommand returns the Command that re-executes the test binary as plugin mode.
func selfCommand(mode string) []string {
	exe, err := os.Executable()
	if err != nil {
		panic(err)
	}
	return []string{exe, pluginArg, mode}
}

// scriptPlugin writes an executable script that runs the test binary as plugin mode,
// for tests of plugins given by path.
func scriptPlugin(t *testing.T, mode string) string {
	t.Helper()
	cmd := selfCommand(mode)
	p := filepath.Join(t.TempDir(), mode+"-plugin")
	script := fmt.Sprintf("#!/bin/sh\nexec '%s' %s %s\n", cmd[0], cmd[1], cmd[2])
	if err := os.WriteFile(p, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	return p
}

var keyhashBin struct {
	once sync.Once
	path string
	err  error
}

// keyhashPlugin builds plugins/examples/keyhash/cmd/keyhash-plugin once per test run.
func keyhashPlugin(tb testing.TB) string {
	tb.Helper()
	keyhashBin.once.Do(func() {
		dir, err := os.MkdirTemp("", "producerd-keyhash-*")
		if err != nil {
			keyhashBin.err = err
			return
		}
		keyhashBin.path = filepath.Join(dir, "keyhash-plugin")
		gobin, err := exec.LookPath("go")
		if err != nil {
			keyhashBin.err = err
			return
		}
		out, err := exec.Command(gobin, "build", "-o", keyhashBin.path, "../plugins/examples/keyhash/cmd/keyhash-plugin").CombinedOutput()
		if err != nil {
			keyhashBin.err = fmt.Errorf("go build keyhash-plugin: %v\n%s", err, out)
		}
	})
	if keyhashBin.err != nil {
		tb.Skipf("cannot build the keyhash plugin: %v", keyhashBin.err)
	}
	return keyhashBin.path
}

// logBuffer collects a Host's log for assertions; it is dumped when the test fails.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Write(p)
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.String()
}

// newHost returns a Host with test-friendly settings (fast restarts, short probation)
// and its log; it is closed when the test ends.
func newHost(tb testing.TB, tweak func(*Config)) (*Host, *logBuffer) {
	tb.Helper()
	logs := &logBuffer{}
	cfg := Config{
		Logger:          hclog.New(&hclog.LoggerOptions{Name: "host", Output: logs, Level: hclog.Debug}),
		Builtins:        testBuiltins(),
		RestartBackoff:  20 * time.Millisecond,
		CrashLoopWindow: time.Minute,
		Probation:       200 * time.Millisecond,
		DrainTimeout:    10 * time.Second,
		StartTimeout:    20 * time.Second,
		// Generous: a -race build on 2 shared cores can stall a healthy plugin for
		// milliseconds; the failure tests set their own.
		DecisionTimeout: 2 * time.Second,
		UrgentTimeout:   2 * time.Second,
	}
	if tweak != nil {
		tweak(&cfg)
	}
	h, err := New(cfg)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() {
		_ = h.Close()
		if t, ok := tb.(*testing.T); ok && t.Failed() {
			t.Logf("host log:\n%s", logs.String())
		}
	})
	return h, logs
}

// waitFor polls cond until it holds or the deadline passes.
func waitFor(tb testing.TB, what string, d time.Duration, cond func() bool) {
	tb.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			tb.Fatalf("timed out after %v waiting for %s", d, what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// pidAlive reports whether pid is a live (not zombie) process.
func pidAlive(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	return i < 0 || i+2 >= len(s) || (s[i+2] != 'Z' && s[i+2] != 'X')
}

// load runs selecting (and observing) goroutines against sel until stop is called,
// and returns the first error any of them saw.
type load struct {
	stop  func() error
	count *atomic.Int64
}

func startLoad(tb testing.TB, sel sdk.Selector, workers int, withMessage bool) load {
	tb.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	var first atomic.Pointer[error]
	var n atomic.Int64
	qs := []sdk.Queue{{Broker: "broker-a", ID: 0}, {Broker: "broker-a", ID: 1}, {Broker: "broker-b", ID: 0}, {Broker: "broker-b", ID: 1}, {Broker: "broker-c", ID: 0}}
	for w := range workers {
		wg.Go(func() {
			for k := 0; ctx.Err() == nil; k++ {
				s, release := sel, func() {}
				if p, ok := sel.(Provider); ok {
					s, release = p.Acquire()
				}
				selection := &sdk.Selection{Topic: "load", RouteVersion: 1, Queues: qs, Remaining: time.Second}
				if withMessage || descriptorOf(s).NeedsMessage {
					selection.Message = &sdk.MessageInfo{ShardingKey: fmt.Sprintf("k%d-%d", w, k)}
				}
				i, err := s.Select(context.Background(), selection)
				if err == nil && (i < 0 || i >= len(qs)) {
					err = fmt.Errorf("index %d outside [0, %d)", i, len(qs))
				}
				if err != nil {
					e := fmt.Errorf("worker %d decision %d: %w", w, k, err)
					first.CompareAndSwap(nil, &e)
					release()
					return
				}
				if o, ok := s.(sdk.Observer); ok && k%4 == 0 {
					o.Observe(context.Background(), []sdk.Outcome{{Topic: "load", Broker: qs[i].Broker, Queue: qs[i].ID, Latency: time.Millisecond}})
				}
				release()
				n.Add(1)
				if k%64 == 0 {
					runtime.Gosched()
				}
			}
		})
	}
	return load{count: &n, stop: func() error {
		cancel()
		wg.Wait()
		if e := first.Load(); e != nil {
			return *e
		}
		return nil
	}}
}

var trialGuestBin struct {
	once sync.Once
	path string
	err  error
}

// trialGuest builds testdata/trialguest (a module that passes the trial decision and
// then misbehaves as its settings say) once per test binary.
func trialGuest(tb testing.TB) string {
	tb.Helper()
	trialGuestBin.once.Do(func() {
		dir, err := os.MkdirTemp("", "producerd-trialguest-*")
		if err != nil {
			trialGuestBin.err = err
			return
		}
		trialGuestBin.path = filepath.Join(dir, "trialguest.wasm")
		cmd := exec.Command("go", "build", "-buildmode=c-shared", "-o", trialGuestBin.path, "./testdata/trialguest")
		cmd.Env = append(os.Environ(), "GOOS=wasip1", "GOARCH=wasm")
		if out, err := cmd.CombinedOutput(); err != nil {
			trialGuestBin.err = fmt.Errorf("go build trialguest: %v\n%s", err, out)
		}
	})
	if trialGuestBin.err != nil {
		tb.Skipf("cannot build the trial guest: %v", trialGuestBin.err)
	}
	return trialGuestBin.path
}
