package wasm_test

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/hashicorp/go-hclog"

	"github.com/producerd/producerd/host/wasm"
)

// Modules the tests build: the three strategies and the misbehaving guests.
const (
	pkgRoundRobin   = "github.com/producerd/producerd/plugins/roundrobin/wasm"
	pkgLatencyFault = "github.com/producerd/producerd/plugins/latencyfault/wasm"
	pkgKeyHash      = "github.com/producerd/producerd/plugins/examples/keyhash/wasm"
	pkgLeastLatency = "github.com/producerd/producerd/plugins/examples/leastlatency/wasm"
	pkgBadGuest     = "./testdata/badguest"
	pkgBadABI       = "./testdata/badabi"
	pkgFlakyHealth  = "./testdata/flakyhealth"
)

// scratch holds the built modules and the shared compilation cache of this test
// binary run; TestMain removes it.
var scratch string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "producerd-wasm-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	scratch = dir
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

type built struct {
	once sync.Once
	path string
	err  error
}

var builds sync.Map // package → *built

// buildModule builds pkg as a WASI reactor (GOOS=wasip1 GOARCH=wasm go build
// -buildmode=c-shared), once per test binary run, and returns the .wasm path.
// $PRODUCERD_WASM_BUILDFLAGS adds flags to those builds only (for example an -overlay).
func buildModule(tb testing.TB, pkg string) string {
	tb.Helper()
	v, _ := builds.LoadOrStore(pkg, &built{})
	b := v.(*built)
	b.once.Do(func() {
		b.path = filepath.Join(scratch, strings.NewReplacer("/", "_", ".", "_").Replace(pkg)+".wasm")
		args := []string{"build", "-buildmode=c-shared", "-o", b.path}
		args = append(args, strings.Fields(os.Getenv("PRODUCERD_WASM_BUILDFLAGS"))...)
		cmd := exec.Command("go", append(args, pkg)...)
		cmd.Env = append(os.Environ(), "GOOS=wasip1", "GOARCH=wasm", "CGO_ENABLED=0")
		var out bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &out
		if err := cmd.Run(); err != nil {
			b.err = fmt.Errorf("go build %s: %v\n%s", pkg, err, out.String())
		}
	})
	if b.err != nil {
		tb.Fatal(b.err)
	}
	skipHeavyUnderRace(tb, b.path)
	return b.path
}

// heavyLimit: modules larger than this (every strategy built with the Go SDK, ~3 MB) are
// not compiled under the race detector; the hand-written test guests are far smaller.
const heavyLimit = 1 << 20

// skipHeavyUnderRace skips a test that loads a large module when the race detector is
// on: wazero's compiler then runs about 25 times slower, and on a 2-core CI machine next
// to the other race-enabled packages a 3 MB module takes minutes. `make test` runs this
// package once more without -race, so these tests still run in CI.
func skipHeavyUnderRace(tb testing.TB, path string) {
	tb.Helper()
	if !raceEnabled {
		return
	}
	if fi, err := os.Stat(path); err == nil && fi.Size() > heavyLimit {
		tb.Skipf("compiling %s (%d MB) under -race takes minutes; run without -race (make test does)", filepath.Base(path), fi.Size()>>20)
	}
}

// testOptions are Options with the run's shared compilation cache and a logger that
// writes to the test log and, when logs is set, to logs.
func testOptions(tb testing.TB, logs *logSink) wasm.Options {
	w := &testWriter{tb: tb, sink: logs}
	return wasm.Options{
		CacheDir: filepath.Join(scratch, "cache"),
		Logger: hclog.New(&hclog.LoggerOptions{
			Name:   "wasm-test",
			Level:  hclog.Info,
			Output: w,
		}),
	}
}

// load loads the module at path and closes it when the test ends.
func load(tb testing.TB, path string, opts wasm.Options) wasm.Strategy {
	tb.Helper()
	s, err := wasm.Load(context.Background(), path, opts)
	if err != nil {
		tb.Fatalf("Load(%s): %v", filepath.Base(path), err)
	}
	tb.Cleanup(func() { _ = s.Close() })
	return s
}

// testWriter sends log lines to the test log and, when sink is set, keeps them.
type testWriter struct {
	tb   testing.TB
	sink *logSink
}

func (w *testWriter) Write(p []byte) (int, error) {
	if w.sink != nil {
		w.sink.mu.Lock()
		w.sink.b.Write(p)
		w.sink.mu.Unlock()
	}
	w.tb.Logf("%s", bytes.TrimRight(p, "\n"))
	return len(p), nil
}

// logSink keeps log output for assertions; it is safe for concurrent use.
type logSink struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *logSink) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}
