// Package wasmtest builds small WebAssembly strategies by hand, byte by byte, for the
// tests of host/wasm, host and the daemon: modules that implement the producerd ABI
// (docs/wasm-abi.md) with no SDK, no WASI and no toolchain, and whose
// producerd_select misbehaves in one chosen way. They are what an attacker or a
// careless author in another language could load, so the host must survive each.
package wasmtest

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"os"
	"path/filepath"

	"github.com/producerd/producerd/plugins/sdk/wasmguest/wasmabi"
)

// Kind is how a module's producerd_select behaves.
type Kind string

// Kinds of hand-built modules.
const (
	// OK returns queue 0.
	OK Kind = "ok"
	// Recurse walks a binary call tree of depth 60 (2^60 calls) with no loop at all:
	// it never takes a loop back-edge and never overflows the stack.
	Recurse Kind = "recurse"
	// Loop spins in an empty loop.
	Loop Kind = "loop"
	// Trap executes unreachable.
	Trap Kind = "trap"
	// Grow grows its memory by a page at a time until memory.grow fails, then traps.
	Grow Kind = "grow"
)

// Kinds lists every misbehaving kind (all but OK).
var Kinds = []Kind{Recurse, Loop, Trap, Grow}

// Addresses in linear memory of the module's constant outputs and input buffer.
const (
	describeAt = 256
	errorAt    = 512
	bufferAt   = 4096
)

// Module returns the module of kind k. Its strategy is named "handbuilt-" + k.
func Module(k Kind) []byte {
	desc := binary.LittleEndian.AppendUint32(nil, 0) // flags
	desc = binary.LittleEndian.AppendUint64(desc, 0) // urgent latency
	name := "handbuilt-" + string(k)
	desc = binary.LittleEndian.AppendUint32(desc, uint32(len(name)))
	desc = append(desc, name...)
	errText := "handbuilt module failed"

	var sel []byte
	switch k {
	case OK:
		sel = []byte{opI32Const, 0}
	case Recurse:
		sel = []byte{opI32Const, 60, opCall, fnTree, opI32Const, 0}
	case Loop:
		sel = []byte{opLoop, blockEmpty, opBr, 0, opEnd, opI32Const, 0}
	case Trap:
		sel = []byte{opUnreachable}
	case Grow:
		sel = []byte{opLoop, blockEmpty, opI32Const, 1, opMemoryGrow, 0, opI32Const, 0x7F, opI32Ne, opBrIf, 0, opEnd, opUnreachable}
	default:
		panic(fmt.Sprintf("wasmtest: unknown kind %q", k))
	}
	// tree(n): if n == 0 { return }; tree(n-1); tree(n-1)
	tree := []byte{
		opLocalGet, 0, opI32Eqz, opIf, blockEmpty, opReturn, opEnd,
		opLocalGet, 0, opI32Const, 1, opI32Sub, opCall, fnTree,
		opLocalGet, 0, opI32Const, 1, opI32Sub, opCall, fnTree,
	}
	return cat(
		[]byte{0, 'a', 's', 'm', 1, 0, 0, 0},
		section(1, vec( // types
			fnType(nil, []byte{i32}),              // 0: () -> i32
			fnType([]byte{i32}, []byte{i32}),      // 1: (i32) -> i32
			fnType(nil, []byte{i64}),              // 2: () -> i64
			fnType([]byte{i32, i32}, []byte{i32}), // 3: (i32, i32) -> i32
			fnType([]byte{i32}, nil),              // 4: (i32) -> ()
		)),
		section(3, vec([]byte{0}, []byte{1}, []byte{2}, []byte{2}, []byte{3}, []byte{4})),
		section(5, vec([]byte{0x00, 0x01})), // memory: 1 page, no maximum
		section(7, vec(
			export("memory", 2, 0),
			export("producerd_abi_version", 0, 0),
			export("producerd_alloc", 0, 1),
			export("producerd_describe", 0, 2),
			export("producerd_last_error", 0, 3),
			export("producerd_select", 0, 4),
		)),
		section(10, vec(
			body(append([]byte{opI32Const}, sleb(wasmabi.Version)...)...), // producerd_abi_version
			body(append([]byte{opI32Const}, sleb(bufferAt)...)...),
			body(append([]byte{opI64Const}, sleb(describeAt<<32|int64(len(desc)))...)...),
			body(append([]byte{opI64Const}, sleb(errorAt<<32|int64(len(errText)))...)...),
			body(sel...),
			body(tree...),
		)),
		section(11, vec(
			data(describeAt, desc),
			data(errorAt, []byte(errText)),
		)),
	)
}

// Write writes the module of kind k to dir and returns its path.
func Write(dir string, k Kind) (string, error) {
	p := filepath.Join(dir, "handbuilt-"+string(k)+".wasm")
	return p, os.WriteFile(p, Module(k), 0o644)
}

const (
	i32 = 0x7F
	i64 = 0x7E

	fnTree = 5

	blockEmpty    = 0x40
	opUnreachable = 0x00
	opLoop        = 0x03
	opIf          = 0x04
	opEnd         = 0x0B
	opBr          = 0x0C
	opBrIf        = 0x0D
	opReturn      = 0x0F
	opCall        = 0x10
	opLocalGet    = 0x20
	opMemoryGrow  = 0x40
	opI32Const    = 0x41
	opI64Const    = 0x42
	opI32Eqz      = 0x45
	opI32Ne       = 0x47
	opI32Sub      = 0x6B
)

func uleb(v int) []byte { return binary.AppendUvarint(nil, uint64(v)) }

func sleb(v int64) []byte {
	var b []byte
	for {
		c := byte(v & 0x7F)
		v >>= 7
		if v == 0 && c&0x40 == 0 || v == -1 && c&0x40 != 0 {
			return append(b, c)
		}
		b = append(b, c|0x80)
	}
}

func cat(parts ...[]byte) []byte { return bytes.Join(parts, nil) }

func vec(items ...[]byte) []byte { return append(uleb(len(items)), cat(items...)...) }

func section(id byte, payload []byte) []byte {
	return cat([]byte{id}, uleb(len(payload)), payload)
}

func fnType(params, results []byte) []byte {
	return cat([]byte{0x60}, uleb(len(params)), params, uleb(len(results)), results)
}

func export(name string, kind byte, index int) []byte {
	return cat(uleb(len(name)), []byte(name), []byte{kind}, uleb(index))
}

func body(code ...byte) []byte {
	b := cat([]byte{0}, code, []byte{opEnd}) // no locals
	return append(uleb(len(b)), b...)
}

func data(at int64, b []byte) []byte {
	return cat([]byte{0x00, opI32Const}, sleb(at), []byte{opEnd}, uleb(len(b)), b)
}
