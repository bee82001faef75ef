package wasmbin_test

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/api"

	"github.com/producerd/producerd/host/wasm/internal/wasmbin"
)

func uleb(v int) []byte { return binary.AppendUvarint(nil, uint64(v)) }

func vec(items ...[]byte) []byte {
	return append(uleb(len(items)), bytes.Join(items, nil)...)
}

func name(s string) []byte { return append(uleb(len(s)), s...) }

func section(id byte, payload []byte) []byte {
	return append(append([]byte{id}, uleb(len(payload))...), payload...)
}

func cat(parts ...[]byte) []byte { return bytes.Join(parts, nil) }

func body(code ...byte) []byte {
	b := append([]byte{0}, code...) // no locals
	return append(uleb(len(b)), b...)
}

// testModule is a small module:
//
//	(memory 1) (global $g (mut i32) (i32.const 7))
//	(func (export "count") (param i32) (result i32)
//	  loop  local.get 0  i32.const 1  i32.sub  local.tee 0  br_if 0  end
//	  global.get $g)
//	(func (export "spin") i32.const 0 i32.const 1 i32.store  loop br 0 end)
//
// plus a DWARF section and a name section.
func testModule() []byte {
	return cat(
		[]byte{0, 'a', 's', 'm', 1, 0, 0, 0},
		section(1, vec(
			cat([]byte{0x60}, vec([]byte{0x7F}), vec([]byte{0x7F})),
			cat([]byte{0x60}, vec(), vec()),
		)),
		section(3, vec([]byte{0}, []byte{1})),
		section(5, vec([]byte{0x00, 0x01})),
		section(6, vec([]byte{0x7F, 0x01, 0x41, 0x07, 0x0B})),
		section(7, vec(
			cat(name("count"), []byte{0, 0}),
			cat(name("spin"), []byte{0, 1}),
			cat(name("memory"), []byte{2, 0}),
		)),
		section(10, vec(
			body(0x03, 0x40, 0x20, 0x00, 0x41, 0x01, 0x6B, 0x22, 0x00, 0x0D, 0x00, 0x0B, 0x23, 0x00, 0x0B),
			body(0x41, 0x00, 0x41, 0x01, 0x36, 0x02, 0x00, 0x03, 0x40, 0x0C, 0x00, 0x0B, 0x0B),
		)),
		section(0, cat(name(".debug_info"), []byte{1, 2, 3})),
		section(0, cat(name("name"), []byte{})),
	)
}

func TestParse(t *testing.T) {
	m, err := wasmbin.Parse(testModule())
	if err != nil {
		t.Fatal(err)
	}
	e, ok := m.Export("count")
	if !ok || e.Kind != wasmbin.KindFunc {
		t.Fatalf("export count = %+v, %v", e, ok)
	}
	typ, ok := m.FuncType(e.Index)
	want := wasmbin.FuncType{Params: []wasmbin.ValType{wasmbin.I32}, Results: []wasmbin.ValType{wasmbin.I32}}
	if !ok || !typ.Equal(want) || typ.String() != "(i32) -> (i32)" {
		t.Fatalf("count type = %v, %v", typ, ok)
	}
	if !m.HasMemory || m.HasStart || len(m.Imports) != 0 {
		t.Fatalf("module %+v", m)
	}
}

// instantiate compiles bin with wazero (no WithCloseOnContextDone) and returns the
// module and its interrupt global.
func instantiate(t *testing.T, bin []byte) (api.Module, api.MutableGlobal) {
	t.Helper()
	ctx := context.Background()
	r := wazero.NewRuntimeWithConfig(ctx, wazero.NewRuntimeConfig().WithCloseOnContextDone(false))
	t.Cleanup(func() { _ = r.Close(ctx) })
	mod, err := r.Instantiate(ctx, bin)
	if err != nil {
		t.Fatalf("instantiate: %v", err)
	}
	g, _ := mod.ExportedGlobal("interrupt").(api.MutableGlobal)
	if g == nil {
		t.Fatal("no mutable global exported as interrupt")
	}
	return mod, g
}

func TestInstrumentKeepsBehaviour(t *testing.T) {
	bin, err := wasmbin.Instrument(testModule(), "interrupt")
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(bin, []byte(".debug_info")) {
		t.Error("DWARF section kept")
	}
	if !bytes.Contains(bin, []byte("name")) {
		t.Error("name section dropped")
	}
	mod, _ := instantiate(t, bin)
	count := mod.ExportedFunction("count")
	// Several times CheckInterval iterations, so the slow path runs too.
	for _, n := range []uint64{1, 10, wasmbin.CheckInterval, 5*wasmbin.CheckInterval + 3} {
		res, err := count.Call(context.Background(), n)
		if err != nil || res[0] != 7 {
			t.Fatalf("count(%d) = %v, %v; want 7", n, res, err)
		}
	}
}

func TestInterrupt(t *testing.T) {
	bin, err := wasmbin.Instrument(testModule(), "interrupt")
	if err != nil {
		t.Fatal(err)
	}
	mod, interrupt := instantiate(t, bin)
	done := make(chan error, 1)
	go func() {
		_, err := mod.ExportedFunction("spin").Call(context.Background())
		done <- err
	}()
	// spin stores 1 at address 0 before it loops.
	for deadline := time.Now().Add(30 * time.Second); ; {
		if b, _ := mod.Memory().ReadByte(0); b == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("spin did not start")
		}
		runtime.Gosched()
	}
	// A garbage collection needs every goroutine to stop, including the one running
	// spin; the periodic exit to Go lets it. Without it this call never returns.
	runtime.GC()
	interrupt.Set(1)
	if err := <-done; err == nil || !strings.Contains(err.Error(), "unreachable") {
		t.Fatalf("interrupted spin returned %v, want an unreachable trap", err)
	}
}

func TestInstrumentErrors(t *testing.T) {
	good := testModule()
	noMemory := bytes.Replace(good, section(5, vec([]byte{0x00, 0x01})), nil, 1)
	badOp := bytes.Replace(good, []byte{0x03, 0x40, 0x0C, 0x00, 0x0B, 0x0B}, []byte{0x03, 0x40, 0xFF, 0x00, 0x0B, 0x0B}, 1)
	tests := []struct {
		name string
		bin  []byte
		want string
	}{
		{"magic", []byte("\x00asn\x01\x00\x00\x00"), "bad magic"},
		{"truncated section", good[:len(good)-3], "overruns"},
		{"export clash", good, "already exports"},
		{"no memory", noMemory, "no memory"},
		{"unknown opcode", badOp, "unknown opcode"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			export := "interrupt"
			if tc.name == "export clash" {
				export = "count"
			}
			_, err := wasmbin.Instrument(tc.bin, export)
			if !errors.Is(err, wasmbin.ErrMalformed) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Instrument = %v, want ErrMalformed mentioning %q", err, tc.want)
			}
		})
	}
}

// FuzzInstrument: any input either fails cleanly or yields a binary that parses.
func FuzzInstrument(f *testing.F) {
	f.Add(testModule())
	f.Add(treeModule())
	f.Add([]byte{0, 'a', 's', 'm', 1, 0, 0, 0})
	f.Fuzz(func(t *testing.T, bin []byte) {
		out, err := wasmbin.Instrument(bin, "interrupt")
		if err != nil {
			return
		}
		if _, err := wasmbin.Parse(out); err != nil {
			t.Fatalf("instrumented binary does not parse: %v", err)
		}
	})
}

// treeModule has no loop at all: (func (export "tree") (param i32) ...) calls itself
// twice with n-1 until n is 0, after storing 1 at address 0; tree(60) makes 2^60 calls
// at a stack depth of 60.
func treeModule() []byte {
	return cat(
		[]byte{0, 'a', 's', 'm', 1, 0, 0, 0},
		section(1, vec(cat([]byte{0x60}, vec([]byte{0x7F}), vec()))),
		section(3, vec([]byte{0})),
		section(5, vec([]byte{0x00, 0x01})),
		section(7, vec(cat(name("tree"), []byte{0, 0}))),
		section(10, vec(body(
			0x41, 0x00, 0x41, 0x01, 0x36, 0x02, 0x00, // i32.store 0 <- 1
			0x20, 0x00, 0x45, 0x04, 0x40, 0x0F, 0x0B, // if n == 0 { return }
			0x20, 0x00, 0x41, 0x01, 0x6B, 0x10, 0x00, // tree(n-1)
			0x20, 0x00, 0x41, 0x01, 0x6B, 0x10, 0x00, // tree(n-1)
			0x0B,
		))),
	)
}

// TestInterruptCallTree: a call tree without a loop is interrupted too (the check at
// the entry of calling functions), and lets a garbage collection through meanwhile.
func TestInterruptCallTree(t *testing.T) {
	bin, err := wasmbin.Instrument(treeModule(), "interrupt")
	if err != nil {
		t.Fatal(err)
	}
	mod, interrupt := instantiate(t, bin)
	tree := mod.ExportedFunction("tree")
	if _, err := tree.Call(context.Background(), 3); err != nil {
		t.Fatalf("tree(3) = %v", err)
	}
	mod.Memory().WriteByte(0, 0)
	done := make(chan error, 1)
	go func() {
		_, err := tree.Call(context.Background(), 60)
		done <- err
	}()
	for deadline := time.Now().Add(30 * time.Second); ; {
		if b, _ := mod.Memory().ReadByte(0); b == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("tree did not start")
		}
		runtime.Gosched()
	}
	runtime.GC()
	interrupt.Set(1)
	if err := <-done; err == nil || !strings.Contains(err.Error(), "unreachable") {
		t.Fatalf("interrupted tree returned %v, want an unreachable trap", err)
	}
}

// TestLeafFunctionsUnchecked: a function without calls or loops is copied unchanged
// (TestInterruptCallTree shows that a calling function is checked).
func TestLeafFunctionsUnchecked(t *testing.T) {
	leaf := []byte{0x41, 0x00, 0x41, 0x01, 0x36, 0x02, 0x00, 0x0B} // store, no call
	bin := cat(
		[]byte{0, 'a', 's', 'm', 1, 0, 0, 0},
		section(1, vec(cat([]byte{0x60}, vec(), vec()))),
		section(3, vec([]byte{0})),
		section(5, vec([]byte{0x00, 0x01})),
		section(7, vec(cat(name("leaf"), []byte{0, 0}))),
		section(10, vec(body(leaf...))),
	)
	out, err := wasmbin.Instrument(bin, "interrupt")
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(out, body(leaf...)) {
		t.Fatal("the leaf function's body was changed")
	}
}
