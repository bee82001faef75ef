//go:build wasip1 && wasm

//lint:file-ignore U1000 the functions are called by the WebAssembly host (//go:wasmexport)

package wasmguest

import (
	"unsafe"

	"github.com/producerd/producerd/plugins/sdk/wasmguest/wasmabi"
)

// The exports of the producerd WebAssembly ABI (docs/wasm-abi.md). Pointers are
// offsets in the module's linear memory; inputs live in the buffer producerd_alloc
// returned, outputs in a guest buffer valid until the next call.

//go:wasmexport producerd_abi_version
func exportABIVersion() int32 { return wasmabi.Version }

//go:wasmexport producerd_alloc
func exportAlloc(size uint32) unsafe.Pointer {
	return unsafe.Pointer(unsafe.SliceData(std.alloc(size)))
}

//go:wasmexport producerd_describe
func exportDescribe() uint64 { return packed(std.describe()) }

//go:wasmexport producerd_last_error
func exportLastError() uint64 { return packed(std.lastErr) }

//go:wasmexport producerd_configure
func exportConfigure(ptr unsafe.Pointer, n uint32) int32 {
	in, ok := std.input(uintptr(ptr), n)
	if !ok {
		return std.fail(wasmabi.CodeBadInput, "configure: input outside the producerd_alloc buffer")
	}
	return std.configure(in)
}

//go:wasmexport producerd_select
func exportSelect(ptr unsafe.Pointer, n uint32) int32 {
	in, ok := std.input(uintptr(ptr), n)
	if !ok {
		return std.fail(wasmabi.CodeBadInput, "select: input outside the producerd_alloc buffer")
	}
	return std.selectQueue(in)
}

//go:wasmexport producerd_observe
func exportObserve(ptr unsafe.Pointer, n uint32) int32 {
	in, ok := std.input(uintptr(ptr), n)
	if !ok {
		return std.fail(wasmabi.CodeBadInput, "observe: input outside the producerd_alloc buffer")
	}
	return std.observe(in)
}

//go:wasmexport producerd_health
func exportHealth(ptr unsafe.Pointer, n uint32) int64 {
	in, ok := std.input(uintptr(ptr), n)
	if !ok {
		return int64(std.fail(wasmabi.CodeBadInput, "health: input outside the producerd_alloc buffer"))
	}
	out, code := std.health(in)
	if code < 0 {
		return int64(code)
	}
	return int64(packed(out))
}

//go:wasmexport producerd_seed
func exportSeed(ptr unsafe.Pointer, n uint32) int32 {
	in, ok := std.input(uintptr(ptr), n)
	if !ok {
		return std.fail(wasmabi.CodeBadInput, "seed: input outside the producerd_alloc buffer")
	}
	return std.seed(in)
}

// packed returns ptr<<32|len of b, or 0 for an empty b.
func packed(b []byte) uint64 {
	if len(b) == 0 {
		return 0
	}
	return wasmabi.Pack(uint32(bufAddr(b)), uint32(len(b)))
}
