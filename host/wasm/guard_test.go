package wasm_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/producerd/producerd/host/wasm"
	"github.com/producerd/producerd/internal/strategywire"
	"github.com/producerd/producerd/internal/wasmtest"
	"github.com/producerd/producerd/plugins/sdk/wasmguest/wasmabi"
)

// pkgSDKBadGuest is a misbehaving strategy built with the Go SDK (wasmguest).
const pkgSDKBadGuest = "./testdata/sdkbadguest"

// guestCases are the guests that must not hold the daemon: each hand-built module
// (internal/wasmtest), and the same behaviours through the Go SDK (by topic).
var guestCases = []struct {
	name  string
	kind  wasmtest.Kind // hand-built; "" for the SDK guest
	topic string        // the SDK guest's topic
	want  error         // or, for grow, ErrTimeout: growing page by page may outlast the deadline
}{
	{"handbuilt/recurse", wasmtest.Recurse, "x", wasm.ErrTimeout},
	{"handbuilt/loop", wasmtest.Loop, "x", wasm.ErrTimeout},
	{"handbuilt/trap", wasmtest.Trap, "x", wasm.ErrTrap},
	{"handbuilt/grow", wasmtest.Grow, "x", wasm.ErrTrap},
	{"sdk/recurse", "", "recurse", wasm.ErrTimeout},
	{"sdk/loop", "", "loop", wasm.ErrTimeout},
	{"sdk/trap", "", "trap", wasm.ErrTrap},
	{"sdk/grow", "", "grow", wasm.ErrTrap},
}

// guestPath returns the module of a guest case (building or writing it) and the topic
// that triggers its misbehaviour.
func guestPath(t *testing.T, kind wasmtest.Kind) string {
	t.Helper()
	if kind == "" {
		return buildModule(t, pkgSDKBadGuest)
	}
	p, err := wasmtest.Write(t.TempDir(), kind)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// TestGuestsCannotHoldTheHost: every misbehaving guest, however it was built, ends
// its decision with the expected error (a timeout for the ones that never return), its
// instance is replaced, and decisions work again afterwards.
func TestGuestsCannotHoldTheHost(t *testing.T) {
	t.Parallel()
	for _, tc := range guestCases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			opts := testOptions(t, nil)
			opts.Instances = 2
			opts.CallTimeout = 50 * time.Millisecond
			opts.MemoryLimitPages = 256 // 16 MiB
			path := guestPath(t, tc.kind)
			s := load(t, path, opts)
			_, err := selectTopic(s, tc.topic)
			grewTooLong := tc.topic == "grow" || tc.kind == wasmtest.Grow
			if !errors.Is(err, tc.want) && !(grewTooLong && errors.Is(err, wasm.ErrTimeout)) {
				t.Fatalf("Select = %v, want %v", err, tc.want)
			}
			if errors.Is(tc.want, wasm.ErrTimeout) && !errors.Is(err, strategywire.ErrDecisionTimeout) {
				t.Fatalf("Select = %v, want it to wrap strategywire.ErrDecisionTimeout", err)
			}
			waitLive(t, s)
			if st := s.Stats(); st.Replaced == 0 {
				t.Fatalf("stats %+v: the failed instance was not replaced", st)
			}
			if tc.kind != "" {
				return // every select of a hand-built module misbehaves
			}
			if i, err := selectTopic(s, "ok"); err != nil || i != 0 {
				t.Fatalf("decision after the replacement = %d, %v", i, err)
			}
		})
	}
}

// TestStuckGuestDoesNotBlockGC: a garbage collection stops every goroutine, and Go
// cannot preempt one inside compiled guest code; the check-ins return to Go often
// enough that a collection completes while the guest is still stuck (before the
// watchdog ends the call), for a loop and for a loop-free call tree.
func TestStuckGuestDoesNotBlockGC(t *testing.T) {
	t.Parallel()
	for _, kind := range []wasmtest.Kind{wasmtest.Loop, wasmtest.Recurse} {
		t.Run(string(kind), func(t *testing.T) {
			t.Parallel()
			opts := testOptions(t, nil)
			opts.Instances = 1
			opts.CallTimeout = 5 * time.Second
			s := load(t, guestPath(t, kind), opts)
			base := s.Stats().Calls
			stuck := make(chan error, 1)
			go func() {
				_, err := selectTopic(s, "x")
				stuck <- err
			}()
			for s.Stats().Calls == base {
				runtime.Gosched()
			}
			gc := make(chan struct{})
			go func() {
				runtime.GC()
				close(gc)
			}()
			select {
			case <-gc:
			case err := <-stuck:
				t.Fatalf("the garbage collection completed only after the guest was stopped (%v)", err)
			}
			if err := <-stuck; !errors.Is(err, wasm.ErrTimeout) {
				t.Fatalf("stuck decision = %v, want ErrTimeout", err)
			}
		})
	}
}

// TestLoadRefusesOtherABIVersion: a module built for another ABI version (version 1
// encoded outcomes differently) is refused at Load with ErrABI naming both versions.
func TestLoadRefusesOtherABIVersion(t *testing.T) {
	t.Parallel()
	m := wasmtest.Module(wasmtest.OK)
	// producerd_abi_version's body: size 4, no locals, i32.const 2, end.
	cur := []byte{4, 0, 0x41, byte(wasmabi.Version), 0x0b}
	i := bytes.Index(m, cur)
	if i < 0 || bytes.Count(m, cur) != 1 {
		t.Fatalf("producerd_abi_version's body not found once in the hand-built module")
	}
	m[i+3] = 1
	path := filepath.Join(t.TempDir(), "v1.wasm")
	if err := os.WriteFile(path, m, 0o644); err != nil {
		t.Fatal(err)
	}
	s, err := wasm.Load(context.Background(), path, testOptions(t, nil))
	if err == nil {
		_ = s.Close()
		t.Fatal("Load accepted a module of ABI version 1")
	}
	if !errors.Is(err, wasm.ErrABI) || !strings.Contains(err.Error(), fmt.Sprintf("ABI version 1, the host %d", wasmabi.Version)) {
		t.Fatalf("Load: %v", err)
	}
}
