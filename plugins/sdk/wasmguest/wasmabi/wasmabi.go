// Package wasmabi is the binary interface between producerd's WebAssembly host
// (host/wasm) and strategy modules (package wasmguest, or any module written in another
// language from docs/wasm-abi.md): export names, result codes, feature flags, and the
// encoding of every call's input and output.
//
// Everything is little-endian. A string is a u32 byte length followed by its bytes. Each
// message has an Append function (the side that writes it) and a Decode or Parse
// function (the side that reads it); both sides are here so that round trips can be
// tested and every decoder fuzzed. Decoders never trust a count: they check it against
// the bytes that remain before allocating, and return ErrMalformed on any
// inconsistency. Nothing in this package allocates on the encode path when dst has
// room.
package wasmabi

import (
	"encoding/binary"
	"errors"
	"math"
	"time"
)

// Version is the ABI version this package speaks; producerd_abi_version returns it.
// Version 2 changed the observe input (a name table and fixed-size outcome records,
// ObserveEncoder) and added ObservePolicy; a host refuses a module of another version.
const Version = 2

// Export names. Required: Memory, ExportABIVersion, ExportAlloc, ExportDescribe,
// ExportSelect, ExportLastError. The others are optional, but every one the module's
// flags declare must be present. ExportInitialize is WASI's reactor initialiser (called
// once, before anything else, when present).
const (
	Memory           = "memory"
	ExportInitialize = "_initialize"
	ExportABIVersion = "producerd_abi_version"
	ExportAlloc      = "producerd_alloc"
	ExportDescribe   = "producerd_describe"
	ExportConfigure  = "producerd_configure"
	ExportSelect     = "producerd_select"
	ExportObserve    = "producerd_observe"
	ExportHealth     = "producerd_health"
	ExportSeed       = "producerd_seed"
	ExportLastError  = "producerd_last_error"
)

// Result codes of producerd_select, producerd_configure, producerd_observe and
// producerd_seed (and of producerd_health as a negative i64). Zero or positive is
// success (for select: the queue index).
const (
	// CodeFailed: the strategy returned an error; producerd_last_error has its text.
	CodeFailed int32 = -1
	// CodeRouteUnknown: a select without a queue list named a (topic, route version)
	// the module does not hold; the host sends the call again with the list.
	CodeRouteUnknown int32 = -2
	// CodePanic: the strategy panicked and the module recovered.
	CodePanic int32 = -3
	// CodeBadInput: the input did not decode.
	CodeBadInput int32 = -4
	// CodeUnsupported: the module does not implement this call.
	CodeUnsupported int32 = -5
	// CodeInvalidSettings: producerd_configure rejected the settings.
	CodeInvalidSettings int32 = -6
)

// CodeName returns a short name of a result code, e.g. "route-unknown".
func CodeName(code int32) string {
	switch code {
	case CodeFailed:
		return "failed"
	case CodeRouteUnknown:
		return "route-unknown"
	case CodePanic:
		return "panic"
	case CodeBadInput:
		return "bad-input"
	case CodeUnsupported:
		return "unsupported"
	case CodeInvalidSettings:
		return "invalid-settings"
	}
	if code >= 0 {
		return "ok"
	}
	return "unknown"
}

// Flags of the describe output: the Descriptor's booleans and the optional calls the
// module implements.
const (
	FlagNeedsMessage uint32 = 1 << iota
	FlagLocalApply
	FlagObserver
	FlagHealthReporter
	FlagHealthSeeder
	FlagConfigurable
	// FlagClock: the strategy reads the time, so the host fills "now" in every select
	// input (otherwise it may pass 0 there and save a clock read per decision).
	FlagClock
)

// Bits of the select input's first byte.
const (
	SelectHasQueues  = 1 << 0
	SelectHasMessage = 1 << 1
)

// SelectHeaderSize is the size of the fixed part of the select input.
const SelectHeaderSize = 40

// MaxRouteSlots bounds the route slots of a module instance (see AppendSelect).
const MaxRouteSlots = 4096

// ErrMalformed is returned by every decoder for input that does not follow the ABI.
var ErrMalformed = errors.New("wasmabi: malformed message")

// Pack returns the i64 a module returns for an output buffer: ptr<<32 | len.
func Pack(ptr, n uint32) uint64 { return uint64(ptr)<<32 | uint64(n) }

// Unpack splits a packed output pointer.
func Unpack(v uint64) (ptr, n uint32) { return uint32(v >> 32), uint32(v) }

func appendU32(b []byte, v uint32) []byte { return binary.LittleEndian.AppendUint32(b, v) }
func appendU64(b []byte, v uint64) []byte { return binary.LittleEndian.AppendUint64(b, v) }

func appendStr(b []byte, s string) []byte {
	b = appendU32(b, uint32(len(s)))
	return append(b, s...)
}

func clampU32(v int) uint32 {
	switch {
	case v < 0:
		return 0
	case uint64(v) > math.MaxUint32:
		return math.MaxUint32
	}
	return uint32(v)
}

func clampI32(v int) int32 {
	switch {
	case v < math.MinInt32:
		return math.MinInt32
	case v > math.MaxInt32:
		return math.MaxInt32
	}
	return int32(v)
}

// unixNanos encodes t as nanoseconds since the Unix epoch, 0 for the zero time.
// Instants outside the int64 range saturate.
func unixNanos(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	switch {
	case t.After(maxInstant):
		return math.MaxInt64
	case t.Before(minInstant):
		return math.MinInt64
	}
	if n := t.UnixNano(); n != 0 {
		return n
	}
	return 1 // the epoch itself must not read back as the zero time
}

// The instants an int64 of Unix nanoseconds can hold.
var (
	maxInstant = time.Unix(0, math.MaxInt64)
	minInstant = time.Unix(0, math.MinInt64)
)

func fromUnixNanos(n int64) time.Time {
	if n == 0 {
		return time.Time{}
	}
	return time.Unix(0, n)
}

// reader decodes a message; the first problem sets bad and every later read returns
// zero values.
type reader struct {
	b   []byte
	bad bool
}

func (r *reader) take(n int) []byte {
	if r.bad || n < 0 || n > len(r.b) {
		r.bad = true
		return nil
	}
	v := r.b[:n:n]
	r.b = r.b[n:]
	return v
}

func (r *reader) u8() uint8 {
	if v := r.take(1); v != nil {
		return v[0]
	}
	return 0
}

func (r *reader) u32() uint32 {
	if v := r.take(4); v != nil {
		return binary.LittleEndian.Uint32(v)
	}
	return 0
}

func (r *reader) u64() uint64 {
	if v := r.take(8); v != nil {
		return binary.LittleEndian.Uint64(v)
	}
	return 0
}

func (r *reader) str() []byte {
	n := r.u32()
	if uint64(n) > uint64(len(r.b)) {
		r.bad = true
		return nil
	}
	return r.take(int(n))
}

// count reads a u32 element count and checks that at least min bytes per element
// remain, so that a hostile count cannot make the caller allocate.
func (r *reader) count(min int) int {
	n := r.u32()
	if uint64(n)*uint64(min) > uint64(len(r.b)) {
		r.bad = true
		return 0
	}
	return int(n)
}

func (r *reader) done() error {
	if r.bad || len(r.b) != 0 {
		return ErrMalformed
	}
	return nil
}
