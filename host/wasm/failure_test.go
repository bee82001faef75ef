package wasm_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/producerd/producerd/host/wasm"
	"github.com/producerd/producerd/internal/strategywire"
	"github.com/producerd/producerd/plugins/sdk"
	"github.com/producerd/producerd/plugins/sdk/sdktest"
)

// waitLive waits until every instance of s is live again (replacements done).
func waitLive(t *testing.T, s wasm.Strategy) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for {
		st := s.Stats()
		if st.Live == st.Instances {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("instances not replaced within 60s: %+v", st)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// selectTopic makes one decision for topic with a fresh route of 2 brokers × 2 queues.
func selectTopic(s sdk.Selector, topic string) (int, error) {
	return s.Select(context.Background(), sdktest.NewRoute(topic, sdktest.Queues(2, 2)).First())
}

// TestGuestFailures drives the misbehaving guest (testdata/badguest) through each
// failure: the decision returns the expected error, the failure is logged, the other
// instance keeps deciding, the dead instance is replaced, and decisions keep working.
func TestGuestFailures(t *testing.T) {
	t.Parallel()
	path := buildModule(t, pkgBadGuest)
	tests := []struct {
		topic  string
		want   []error  // the decision's error wraps all of these
		log    []string // the log line contains all of these
		killed bool     // the instance dies and is replaced
	}{
		{"loop", []error{wasm.ErrTimeout, strategywire.ErrDecisionTimeout}, []string{"exceeded its deadline", "instance failed; replacing it"}, true},
		{"trap", []error{wasm.ErrTrap}, []string{"out of bounds memory access", "instance failed; replacing it"}, true},
		{"fatal", []error{wasm.ErrTrap}, []string{"fatal error: sync: unlock of unlocked mutex"}, true},
		{"grow", []error{wasm.ErrTrap}, []string{"out of memory"}, true},
		{"error", []error{wasm.ErrGuest, strategywire.ErrSelectFailed}, []string{"deliberate error"}, false},
	}
	for _, tc := range tests {
		t.Run(tc.topic, func(t *testing.T) {
			t.Parallel()
			var logs logSink
			opts := testOptions(t, &logs)
			opts.Instances = 2
			opts.CallTimeout = 50 * time.Millisecond
			opts.MemoryLimitPages = 256 // 16 MiB
			s := load(t, path, opts)
			for range 4 {
				if _, err := selectTopic(s, "ok"); err != nil {
					t.Fatalf("healthy decision before the failure: %v", err)
				}
			}

			_, err := selectTopic(s, tc.topic)
			for _, want := range tc.want {
				if !errors.Is(err, want) {
					t.Fatalf("Select(%s) error = %v, want it to wrap %v", tc.topic, err, want)
				}
			}
			// The other instance keeps deciding while the dead one is replaced (with
			// two instances and one dead, every decision finds the live one).
			if _, err := selectTopic(s, "ok"); err != nil {
				t.Fatalf("decision right after the failure: %v", err)
			}
			waitLive(t, s)
			for range 20 {
				if i, err := selectTopic(s, "ok"); err != nil || i != 0 {
					t.Fatalf("decision after replacement = %d, %v", i, err)
				}
			}
			st := s.Stats()
			switch {
			case !tc.killed && (st.Traps != 0 || st.Timeouts != 0 || st.Replaced != 0 || st.GuestErrors != 1):
				t.Errorf("stats %+v: want one guest error and no instance lost", st)
			case tc.killed && (st.Traps+st.Timeouts != 1 || st.Replaced != 1):
				t.Errorf("stats %+v: want one failure and one replacement", st)
			}
			text := logs.String()
			if !tc.killed {
				// A guest error code is the decision's error; the host logs it only
				// for calls without a caller to return it to (Observe, Seed).
				text = err.Error()
			}
			for _, want := range tc.log {
				if !strings.Contains(text, want) {
					t.Errorf("log does not mention %q:\n%s", want, text)
				}
			}
		})
	}
}

// TestStuckInstanceDoesNotBlockOthers: while one instance loops until its deadline,
// decisions on the other instance go on.
func TestStuckInstanceDoesNotBlockOthers(t *testing.T) {
	t.Parallel()
	opts := testOptions(t, nil)
	opts.Instances = 2
	opts.CallTimeout = time.Second
	s := load(t, buildModule(t, pkgBadGuest), opts)
	stuck := make(chan error, 1)
	go func() {
		_, err := selectTopic(s, "loop")
		stuck <- err
	}()
	// Wait until the loop holds an instance: a decision then always lands on the
	// other one. Decisions made meanwhile must all succeed.
	for n := 0; ; n++ {
		if _, err := selectTopic(s, "ok"); err != nil {
			t.Fatalf("decision %d while another instance loops: %v", n, err)
		}
		select {
		case err := <-stuck:
			if !errors.Is(err, wasm.ErrTimeout) {
				t.Fatalf("looping decision: %v, want ErrTimeout", err)
			}
			if n == 0 {
				t.Log("the loop ended before a concurrent decision ran")
			}
			return
		default:
		}
	}
}

func TestLoadRefusesABIMismatch(t *testing.T) {
	t.Parallel()
	_, err := wasm.Load(context.Background(), buildModule(t, pkgBadABI), testOptions(t, nil))
	if !errors.Is(err, wasm.ErrABI) {
		t.Fatalf("Load(badabi) = %v, want ErrABI", err)
	}
	for _, want := range []string{
		"export producerd_select has signature (i32) -> (i64), want (i32, i32) -> (i32)",
		"missing export producerd_alloc",
		"missing export producerd_describe",
		"missing export producerd_last_error",
	} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error does not say %q:\n%v", want, err)
		}
	}
}

func TestLoadRefusesNonModules(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	write := func(name string, b []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, b, 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	tests := []struct {
		name string
		path string
		want error
	}{
		{"missing file", filepath.Join(dir, "nope.wasm"), os.ErrNotExist},
		{"not wasm", write("text.wasm", []byte("#!/bin/sh\necho hi\n")), wasm.ErrABI},
		{"empty module", write("empty.wasm", []byte{0, 'a', 's', 'm', 1, 0, 0, 0}), wasm.ErrABI},
		{"truncated", write("trunc.wasm", []byte{0, 'a', 's', 'm', 1, 0, 0, 0, 1, 0x7f}), wasm.ErrABI},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			if _, err := wasm.Load(context.Background(), tc.path, testOptions(t, nil)); !errors.Is(err, tc.want) {
				t.Fatalf("Load = %v, want %v", err, tc.want)
			}
		})
	}
}

func TestLoadRefusesSettingsWithoutConfigure(t *testing.T) {
	t.Parallel()
	opts := testOptions(t, nil)
	opts.Settings = []byte(`{"x":1}`)
	_, err := wasm.Load(context.Background(), buildModule(t, pkgBadGuest), opts)
	if !errors.Is(err, sdk.ErrInvalidSettings) {
		t.Fatalf("Load with settings = %v, want sdk.ErrInvalidSettings", err)
	}
	opts.Settings = []byte(" {} ")
	s := load(t, buildModule(t, pkgBadGuest), opts)
	if _, err := selectTopic(s, "ok"); err != nil {
		t.Fatal(err)
	}
}

func TestInvalidOptions(t *testing.T) {
	t.Parallel()
	_, err := wasm.Load(context.Background(), "unused.wasm", wasm.Options{
		Instances: -1, MemoryLimitPages: 1 << 20, CallTimeout: -time.Second, StartTimeout: -1,
	})
	if !errors.Is(err, wasm.ErrInvalidOptions) {
		t.Fatalf("Load = %v, want ErrInvalidOptions", err)
	}
	for _, want := range []string{"Instances", "MemoryLimitPages", "CallTimeout", "StartTimeout"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error does not name %s: %v", want, err)
		}
	}
}

func TestClose(t *testing.T) {
	t.Parallel()
	s, err := wasm.Load(context.Background(), buildModule(t, pkgBadGuest), testOptions(t, nil))
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			for range 100 {
				if _, err := selectTopic(s, "ok"); err != nil && !errors.Is(err, wasm.ErrClosed) {
					t.Errorf("Select during Close: %v", err)
					return
				}
			}
		})
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	wg.Wait()
	if err := s.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	if _, err := selectTopic(s, "ok"); !errors.Is(err, wasm.ErrClosed) {
		t.Fatalf("Select after Close = %v, want ErrClosed", err)
	}
	s.Observe(context.Background(), []sdk.Outcome{sdktest.OK("broker-a", time.Millisecond)})
	if h := s.Health(); h != nil {
		t.Fatalf("Health after Close = %v", h)
	}
}

func TestSHA256Pin(t *testing.T) {
	t.Parallel()
	path := buildModule(t, pkgBadGuest)
	bin, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	opts := testOptions(t, nil)
	opts.SHA256 = strings.Repeat("ab", 32)
	if _, err := wasm.Load(context.Background(), path, opts); !errors.Is(err, wasm.ErrChecksumMismatch) {
		t.Fatalf("Load with a wrong pin = %v, want ErrChecksumMismatch", err)
	}
	sum := sha256.Sum256(bin)
	opts.SHA256 = strings.ToUpper(hex.EncodeToString(sum[:]))
	load(t, path, opts)
}

// TestCacheDir: compiled code lands in Options.CacheDir, and a second Load of the same
// module (a hot swap to the same file, or a restart) uses it.
func TestCacheDir(t *testing.T) {
	t.Parallel()
	dir := filepath.Join(t.TempDir(), "wasm-cache")
	opts := testOptions(t, nil)
	opts.CacheDir = dir
	opts.Instances = 1
	for range 2 {
		s := load(t, buildModule(t, pkgBadGuest), opts)
		if _, err := selectTopic(s, "ok"); err != nil {
			t.Fatal(err)
		}
	}
	var files int
	_ = filepath.WalkDir(dir, func(_ string, d os.DirEntry, _ error) error {
		if d != nil && !d.IsDir() {
			files++
		}
		return nil
	})
	if files == 0 {
		t.Fatalf("no compiled code in %s", dir)
	}
}
