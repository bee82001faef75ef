// Command flakyhealth is a WebAssembly strategy the host applies locally (LocalApply
// and a health reporter) whose policy read fails once, for the test that the host
// reads a changed policy again at the next flush (host/wasm TestFailedPolicyReadRetried).
// It implements the ABI by hand from docs/wasm-abi.md, as badguest does.
//
// Its health table has a row for every broker that had a failed outcome, unavailable;
// observe answers 1 (policy changed) when a row is added. producerd_health fails (code
// -1) the first time it is called after such an answer, and never again.
//
// Build: GOOS=wasip1 GOARCH=wasm go build -buildmode=c-shared -o flakyhealth.wasm .
package main

import (
	"encoding/binary"
	"slices"
	"unsafe"

	"github.com/producerd/producerd/plugins/sdk"
	"github.com/producerd/producerd/plugins/sdk/wasmguest/wasmabi"
)

var (
	in      []byte
	out     []byte
	lastErr []byte
	obs     wasmabi.Observe
	down    []string // brokers with a failed outcome, in order
	// failNext: the next health call fails; failed: one did.
	failNext, failed bool
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
	flags := wasmabi.FlagLocalApply | wasmabi.FlagObserver | wasmabi.FlagHealthReporter
	out = binary.LittleEndian.AppendUint32(out[:0], flags)
	out = binary.LittleEndian.AppendUint64(out, 0)
	out = binary.LittleEndian.AppendUint32(out, uint32(len("flakyhealth")))
	out = append(out, "flakyhealth"...)
	return pack(out)
}

//go:wasmexport producerd_last_error
func lastError() uint64 { return pack(lastErr) }

// selectQueue is never called (the host decides from the health table) but required.
//
//go:wasmexport producerd_select
func selectQueue(unsafe.Pointer, uint32) int32 { return 0 }

//go:wasmexport producerd_observe
func observe(ptr unsafe.Pointer, n uint32) int32 {
	if obs.Decode(unsafe.Slice((*byte)(ptr), n), nil) != nil {
		return wasmabi.CodeBadInput
	}
	changed := false
	for _, o := range obs.Outcomes {
		if o.Kind.Failed() && !slices.Contains(down, o.Broker) {
			down = append(down, o.Broker)
			changed = true
		}
	}
	if !changed || obs.Flags&wasmabi.ObservePolicy == 0 {
		return 0
	}
	failNext = !failed
	return wasmabi.ObservePolicyChanged
}

//go:wasmexport producerd_health
func health(unsafe.Pointer, uint32) int64 {
	if failNext {
		failNext, failed = false, true
		lastErr = append(lastErr[:0], "deliberate health failure"...)
		return int64(wasmabi.CodeFailed)
	}
	rows := make([]sdk.BrokerHealth, len(down))
	for i, b := range down {
		rows[i] = sdk.BrokerHealth{Broker: b}
	}
	out = wasmabi.AppendHealth(out[:0], rows)
	return int64(pack(out))
}

func pack(b []byte) uint64 {
	if len(b) == 0 {
		return 0
	}
	return uint64(uintptr(unsafe.Pointer(unsafe.SliceData(b))))<<32 | uint64(len(b))
}
