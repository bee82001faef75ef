// Command badguest is a WebAssembly strategy that misbehaves on request, for the
// failure tests of host/wasm. It implements the ABI by hand from docs/wasm-abi.md (no
// SDK), as an author in another language would. Select's behaviour depends on the
// topic:
//
//	loop   never returns
//	trap   reads outside linear memory (a WebAssembly trap)
//	fatal  unlocks an unlocked mutex (a Go runtime fatal error: the guest exits)
//	grow   allocates 1 GiB (memory.grow fails past the host's limit: out of memory)
//	error  returns error code -1 with a message
//	other  returns queue 0
//
// Build: GOOS=wasip1 GOARCH=wasm go build -buildmode=c-shared -o badguest.wasm .
package main

import (
	"encoding/binary"
	"sync"
	"unsafe"

	"github.com/producerd/producerd/plugins/sdk/wasmguest/wasmabi"
)

var (
	in      []byte
	out     []byte
	lastErr []byte
	sink    []byte
	sinkB   byte
	topics  []string // by route slot
)

func main() {}

//go:wasmexport producerd_abi_version
func abiVersion() int32 { return wasmabi.Version }

//go:wasmexport producerd_alloc
func alloc(size uint32) unsafe.Pointer {
	if uint32(cap(in)) < size || cap(in) == 0 {
		in = make([]byte, size+4096)
	}
	return unsafe.Pointer(unsafe.SliceData(in))
}

// describe: u32 flags, i64 urgent latency, str name.
//
//go:wasmexport producerd_describe
func describe() uint64 {
	out = binary.LittleEndian.AppendUint32(out[:0], 0)
	out = binary.LittleEndian.AppendUint64(out, 0)
	out = binary.LittleEndian.AppendUint32(out, uint32(len("badguest")))
	out = append(out, "badguest"...)
	return pack(out)
}

//go:wasmexport producerd_last_error
func lastError() uint64 { return pack(lastErr) }

//go:wasmexport producerd_select
func selectQueue(ptr unsafe.Pointer, n uint32) int32 {
	b := unsafe.Slice((*byte)(ptr), n)
	// The topic is the first string after the 40-byte header; it is there only when
	// the queue list is (flag bit 0), so the guest remembers it by route slot.
	slot := binary.LittleEndian.Uint32(b[32:])
	if b[0]&1 != 0 {
		tl := binary.LittleEndian.Uint32(b[40:])
		for uint32(len(topics)) <= slot {
			topics = append(topics, "")
		}
		topics[slot] = string(b[44 : 44+tl])
	} else if slot >= uint32(len(topics)) {
		lastErr = append(lastErr[:0], "unknown route slot"...)
		return -2 // route unknown: the host sends the queue list
	}
	switch topics[slot] {
	case "loop":
		for {
		}
	case "trap":
		p := (*byte)(unsafe.Pointer(uintptr(0xFFFF_FFF0)))
		sinkB = *p
	case "fatal":
		var mu sync.Mutex
		mu.Unlock()
	case "grow":
		sink = make([]byte, 1<<30)
		sink[len(sink)-1] = 1
	case "error":
		lastErr = append(lastErr[:0], "deliberate error"...)
		return -1
	}
	return 0
}

func pack(b []byte) uint64 {
	if len(b) == 0 {
		return 0
	}
	return uint64(uintptr(unsafe.Pointer(unsafe.SliceData(b))))<<32 | uint64(len(b))
}
