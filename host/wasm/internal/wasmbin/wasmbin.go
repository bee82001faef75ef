// Package wasmbin reads the parts of a WebAssembly binary that host/wasm checks before
// compiling it (function types, imports, exports), and rewrites a binary so that a
// running call can be interrupted cheaply.
//
// # Interruption
//
// wazero stops a running call only when the runtime is built WithCloseOnContextDone,
// and then every call starts a goroutine that watches the context: measured at 1.4 to
// 6.5 µs per call on this project's machines, against about 30 ns without. Instrument
// gets the same effect at almost no cost on the call path. It appends two mutable i32
// globals: interrupt (0, exported under a name of the host's choosing, written only by
// the host) and a countdown (CheckInterval), and inserts before every branch to a loop
// (br, br_if or br_table with a loop among its targets: the only ways a loop iterates)
//
//	countdown = countdown - 1
//	if countdown == 0 {
//	    countdown = CheckInterval
//	    drop(memory.grow(0))   ;; exits to Go
//	    if interrupt { unreachable }
//	}
//
// so a host that sets interrupt to 1 from another goroutine makes the running call
// trap within CheckInterval loop iterations. The memory.grow(0) matters as much as the
// flag: Go cannot preempt a goroutine running wazero's compiled code, so a guest
// looping without ever returning to Go would block every garbage collection's
// stop-the-world, and with it the goroutine that should set the flag; the whole
// process would hang. memory.grow always goes through Go in wazero (and grows
// nothing by 0), which gives the runtime its preemption point. The hot path costs a
// decrement and a branch per iteration.
//
// Loops are not the only way to run for ever: a call tree without a single loop (a
// function that calls itself twice, 60 levels deep, makes 2^60 calls and never
// overflows the stack) never takes a back-edge. So the same check also runs at the
// entry of every function that contains a call instruction (call, call_indirect,
// return_call, return_call_indirect). That is enough: a body without back-edges runs
// each of its instructions at most once per entry, so an execution that never ends
// either takes back-edges or enters calling functions without end. Leaf functions
// (no calls, the small hot helpers) stay unchecked. A call-depth bound would not do:
// the call tree above is only 60 deep.
//
// A Go function body is one loop (the resume-point dispatch), entered on every call;
// Go functions all call (at least the stack-growth check), so a Go guest pays one
// decrement and branch per call as well as per loop iteration.
//
// The rewrite keeps every index (the globals are appended after the existing ones; no
// function is added), so branch depths, calls, element segments and the name section
// stay valid. DWARF custom sections (".debug_*") are dropped: their code offsets would
// be wrong. The module must have a memory (memory.grow names memory 0).
//
// Instructions are decoded for the WebAssembly 2.0 core plus the extensions wazero
// implements (tail calls, threads, exception handling, relaxed SIMD); a binary with an
// unknown opcode is refused.
package wasmbin

import (
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"strings"
)

// ErrMalformed is wrapped by every error about a binary that cannot be parsed or
// rewritten.
var ErrMalformed = errors.New("wasmbin: malformed WebAssembly binary")

// ValType is a WebAssembly value type.
type ValType byte

// Value types.
const (
	I32       ValType = 0x7F
	I64       ValType = 0x7E
	F32       ValType = 0x7D
	F64       ValType = 0x7C
	V128      ValType = 0x7B
	FuncRef   ValType = 0x70
	ExternRef ValType = 0x6F
)

// String returns the text format name, e.g. "i32".
func (v ValType) String() string {
	switch v {
	case I32:
		return "i32"
	case I64:
		return "i64"
	case F32:
		return "f32"
	case F64:
		return "f64"
	case V128:
		return "v128"
	case FuncRef:
		return "funcref"
	case ExternRef:
		return "externref"
	}
	return fmt.Sprintf("type(0x%02x)", byte(v))
}

// FuncType is a function signature.
type FuncType struct {
	Params, Results []ValType
}

// String returns the signature as "(i32, i32) -> (i64)".
func (t FuncType) String() string {
	list := func(vs []ValType) string {
		s := make([]string, len(vs))
		for i, v := range vs {
			s[i] = v.String()
		}
		return "(" + strings.Join(s, ", ") + ")"
	}
	return list(t.Params) + " -> " + list(t.Results)
}

// Equal reports whether t and u are the same signature.
func (t FuncType) Equal(u FuncType) bool {
	eq := func(a, b []ValType) bool {
		if len(a) != len(b) {
			return false
		}
		for i := range a {
			if a[i] != b[i] {
				return false
			}
		}
		return true
	}
	return eq(t.Params, u.Params) && eq(t.Results, u.Results)
}

// External kinds of imports and exports.
const (
	KindFunc   byte = 0
	KindTable  byte = 1
	KindMemory byte = 2
	KindGlobal byte = 3
	KindTag    byte = 4
)

// KindName returns "func", "table", "memory", "global" or "tag".
func KindName(k byte) string {
	switch k {
	case KindFunc:
		return "func"
	case KindTable:
		return "table"
	case KindMemory:
		return "memory"
	case KindGlobal:
		return "global"
	case KindTag:
		return "tag"
	}
	return fmt.Sprintf("kind(%d)", k)
}

// Import is one import of a module. Type is the type index of a function import.
type Import struct {
	Module, Name string
	Kind         byte
	Type         uint32
}

// Export is one export of a module.
type Export struct {
	Name  string
	Kind  byte
	Index uint32
}

// Module is what Parse learns about a binary.
type Module struct {
	Types   []FuncType
	Imports []Import
	Exports []Export
	// HasStart reports a start section: a function the runtime runs while
	// instantiating, before the host can bound it.
	HasStart bool
	// HasMemory reports a memory, defined or imported.
	HasMemory bool

	funcTypes       []uint32 // type index of every function, imported ones first
	importedGlobals int
	globals         int // defined globals
	sections        []section
}

type section struct {
	id         byte
	start, end int // payload
}

// Section ids.
const (
	secCustom    = 0
	secType      = 1
	secImport    = 2
	secFunction  = 3
	secMemory    = 5
	secGlobal    = 6
	secExport    = 7
	secStart     = 8
	secElement   = 9
	secCode      = 10
	secData      = 11
	secDataCount = 12
	secTag       = 13
)

// Export returns the export named name.
func (m *Module) Export(name string) (Export, bool) {
	for _, e := range m.Exports {
		if e.Name == name {
			return e, true
		}
	}
	return Export{}, false
}

// FuncType returns the signature of function index i (imports first).
func (m *Module) FuncType(i uint32) (FuncType, bool) {
	if uint64(i) >= uint64(len(m.funcTypes)) {
		return FuncType{}, false
	}
	t := m.funcTypes[i]
	if uint64(t) >= uint64(len(m.Types)) {
		return FuncType{}, false
	}
	return m.Types[t], true
}

var header = []byte{0x00, 'a', 's', 'm', 0x01, 0x00, 0x00, 0x00}

// Parse reads the sections of bin and decodes its types, imports, function
// declarations, globals count and exports. It does not validate code.
func Parse(bin []byte) (*Module, error) {
	if len(bin) < len(header) || string(bin[:len(header)]) != string(header) {
		return nil, fmt.Errorf("%w: not a WebAssembly 1.0 binary (bad magic or version)", ErrMalformed)
	}
	m := &Module{}
	r := &rd{b: bin, i: len(header)}
	for r.i < len(bin) {
		id := r.byte()
		size := r.u32()
		start := r.i
		if r.err != nil || uint64(size) > uint64(len(bin)-start) {
			return nil, fmt.Errorf("%w: section %d overruns the binary", ErrMalformed, id)
		}
		r.i += int(size)
		if id > secTag {
			return nil, fmt.Errorf("%w: unknown section id %d", ErrMalformed, id)
		}
		m.sections = append(m.sections, section{id: id, start: start, end: r.i})
		sr := &rd{b: bin[:r.i], i: start}
		decoded := true
		switch id {
		case secType:
			m.parseTypes(sr)
		case secImport:
			m.parseImports(sr)
		case secFunction:
			for n := sr.u32(); n > 0 && sr.err == nil; n-- {
				m.funcTypes = append(m.funcTypes, sr.u32())
			}
		case secGlobal:
			m.globals = int(sr.u32())
			decoded = false
		case secStart:
			m.HasStart = true
			decoded = false
		case secMemory:
			m.HasMemory = m.HasMemory || sr.u32() > 0
			decoded = false
		case secExport:
			for n := sr.u32(); n > 0 && sr.err == nil; n-- {
				m.Exports = append(m.Exports, Export{Name: sr.name(), Kind: sr.byte(), Index: sr.u32()})
			}
		default:
			decoded = false
		}
		if sr.err == nil && decoded && sr.i != r.i {
			sr.fail("%d trailing bytes", r.i-sr.i)
		}
		if sr.err != nil {
			return nil, fmt.Errorf("%w: section %d: %w", ErrMalformed, id, sr.err)
		}
	}
	return m, nil
}

func (m *Module) parseTypes(r *rd) {
	for n := r.u32(); n > 0 && r.err == nil; n-- {
		if form := r.byte(); form != 0x60 {
			r.fail("type form 0x%02x is not a function type", form)
			return
		}
		var t FuncType
		for k := r.u32(); k > 0 && r.err == nil; k-- {
			t.Params = append(t.Params, ValType(r.byte()))
		}
		for k := r.u32(); k > 0 && r.err == nil; k-- {
			t.Results = append(t.Results, ValType(r.byte()))
		}
		m.Types = append(m.Types, t)
	}
}

func (m *Module) parseImports(r *rd) {
	for n := r.u32(); n > 0 && r.err == nil; n-- {
		im := Import{Module: r.name(), Name: r.name(), Kind: r.byte()}
		switch im.Kind {
		case KindFunc:
			im.Type = r.u32()
			m.funcTypes = append(m.funcTypes, im.Type)
		case KindTable:
			r.byte() // reftype
			r.limits()
		case KindMemory:
			r.limits()
			m.HasMemory = true
		case KindGlobal:
			r.byte() // valtype
			r.byte() // mutability
			m.importedGlobals++
		case KindTag:
			r.byte() // attribute
			r.u32()
		default:
			r.fail("import kind %d", im.Kind)
		}
		m.Imports = append(m.Imports, im)
	}
}

// Instrument returns a copy of bin with the interrupt global (see the package
// documentation) exported as exportName, a check before every branch to a loop and at
// the entry of every function that calls, and no DWARF sections. bin must parse and must not already export exportName.
func Instrument(bin []byte, exportName string) ([]byte, error) {
	m, err := Parse(bin)
	if err != nil {
		return nil, err
	}
	if _, ok := m.Export(exportName); ok {
		return nil, fmt.Errorf("%w: the module already exports %q", ErrMalformed, exportName)
	}
	if !m.HasMemory {
		return nil, fmt.Errorf("%w: the module has no memory", ErrMalformed)
	}
	interrupt := uint32(m.importedGlobals + m.globals)
	check := loopCheck(interrupt, interrupt+1)

	out := make([]byte, 0, len(bin)+len(bin)/16)
	out = append(out, header...)
	addedGlobal, addedExport := false, false
	// mutable i32 = 0 (interrupt), mutable i32 = CheckInterval (countdown)
	newGlobals := []byte{byte(I32), 0x01, 0x41, 0x00, 0x0B, byte(I32), 0x01, 0x41}
	newGlobals = appendSleb(newGlobals, CheckInterval)
	newGlobals = append(newGlobals, 0x0B)
	for _, s := range m.sections {
		payload := bin[s.start:s.end]
		if !addedGlobal && s.id != secCustom && afterGlobal(s.id) {
			out = appendSection(out, secGlobal, append([]byte{2}, newGlobals...))
			addedGlobal = true
		}
		switch s.id {
		case secCustom:
			r := &rd{b: payload}
			if name := r.name(); r.err == nil && strings.HasPrefix(name, ".debug_") {
				continue
			}
			out = appendSection(out, s.id, payload)
		case secGlobal:
			r := &rd{b: payload}
			n := r.u32()
			if r.err != nil {
				return nil, fmt.Errorf("%w: global section: %w", ErrMalformed, r.err)
			}
			p := binary.AppendUvarint(nil, uint64(n)+2)
			p = append(p, payload[r.i:]...)
			out = appendSection(out, s.id, append(p, newGlobals...))
			addedGlobal = true
		case secExport:
			r := &rd{b: payload}
			n := r.u32()
			if r.err != nil {
				return nil, fmt.Errorf("%w: export section: %w", ErrMalformed, r.err)
			}
			p := binary.AppendUvarint(nil, uint64(n)+1)
			p = append(p, payload[r.i:]...)
			p = binary.AppendUvarint(p, uint64(len(exportName)))
			p = append(p, exportName...)
			p = append(p, KindGlobal)
			p = binary.AppendUvarint(p, uint64(interrupt))
			out = appendSection(out, s.id, p)
			addedExport = true
		case secCode:
			p, err := instrumentCode(payload, check)
			if err != nil {
				return nil, err
			}
			out = appendSection(out, s.id, p)
		default:
			out = appendSection(out, s.id, payload)
		}
	}
	if !addedExport {
		return nil, fmt.Errorf("%w: the module has no export section", ErrMalformed)
	}
	if !addedGlobal {
		return nil, fmt.Errorf("%w: no place for the global section", ErrMalformed)
	}
	return out, nil
}

// CheckInterval is how many check-ins (loop iterations and entries of calling
// functions) run between two exits to Go (and checks of the interrupt flag).
const CheckInterval = 1024

// loopCheck returns the code inserted before every back-edge and at the entry of
// every calling function.
func loopCheck(interrupt, countdown uint32) []byte {
	g := func(b []byte, op byte, idx uint32) []byte {
		return binary.AppendUvarint(append(b, op), uint64(idx))
	}
	const (
		globalGet  = 0x23
		globalSet  = 0x24
		i32Const   = 0x41
		i32Sub     = 0x6B
		i32Eqz     = 0x45
		opIf       = 0x04
		emptyBlock = 0x40
		opEnd      = 0x0B
		memGrow    = 0x40
		drop       = 0x1A
		trap       = 0x00
	)
	b := g(nil, globalGet, countdown)
	b = append(b, i32Const, 1, i32Sub)
	b = g(b, globalSet, countdown)
	b = g(b, globalGet, countdown)
	b = append(b, i32Eqz, opIf, emptyBlock, i32Const)
	b = appendSleb(b, CheckInterval)
	b = g(b, globalSet, countdown)
	b = append(b, i32Const, 0, memGrow, 0x00, drop)
	b = g(b, globalGet, interrupt)
	b = append(b, opIf, emptyBlock, trap, opEnd)
	return append(b, opEnd)
}

// appendSleb appends v as a signed LEB128.
func appendSleb(b []byte, v int64) []byte {
	for {
		c := byte(v & 0x7F)
		v >>= 7
		if v == 0 && c&0x40 == 0 || v == -1 && c&0x40 != 0 {
			return append(b, c)
		}
		b = append(b, c|0x80)
	}
}

// afterGlobal reports whether a section with this id comes after the global section.
func afterGlobal(id byte) bool {
	switch id {
	case secExport, secStart, secElement, secDataCount, secCode, secData:
		return true
	}
	return false
}

func appendSection(out []byte, id byte, payload []byte) []byte {
	out = append(out, id)
	out = binary.AppendUvarint(out, uint64(len(payload)))
	return append(out, payload...)
}

// instrumentCode rewrites the code section payload, inserting check before every
// back-edge.
func instrumentCode(payload, check []byte) ([]byte, error) {
	r := &rd{b: payload}
	n := r.u32()
	out := binary.AppendUvarint(make([]byte, 0, len(payload)+len(payload)/16), uint64(n))
	var body []byte
	for f := uint32(0); f < n && r.err == nil; f++ {
		size := r.u32()
		if r.err != nil || uint64(size) > uint64(len(payload)-r.i) {
			return nil, fmt.Errorf("%w: function body %d overruns the code section", ErrMalformed, f)
		}
		src := payload[r.i : r.i+int(size)]
		r.i += int(size)
		var err error
		body, err = instrumentBody(body[:0], src, check)
		if err != nil {
			return nil, fmt.Errorf("%w: function body %d: %w", ErrMalformed, f, err)
		}
		out = binary.AppendUvarint(out, uint64(len(body)))
		out = append(out, body...)
	}
	if r.err != nil {
		return nil, fmt.Errorf("%w: code section: %w", ErrMalformed, r.err)
	}
	if r.i != len(payload) {
		return nil, fmt.Errorf("%w: code section has %d trailing bytes", ErrMalformed, len(payload)-r.i)
	}
	return out, nil
}

// instrumentBody copies a function body, inserting check before every branch that
// targets a loop (a back-edge: a loop iterates only through one) and, when the body
// contains a call, at its entry (see the package documentation).
func instrumentBody(out, src, check []byte) ([]byte, error) {
	r := &rd{b: src}
	for groups := r.u32(); groups > 0 && r.err == nil; groups-- {
		r.u32()  // count
		r.byte() // valtype
	}
	if r.err != nil {
		return nil, fmt.Errorf("locals: %w", r.err)
	}
	out = append(out, src[:r.i]...)
	entry := len(out) // where the entry check goes if the body calls
	calls := false
	// blocks is the control stack: true for a loop. The function body is a block.
	blocks := []bool{false}
	isLoop := func(depth uint32) bool {
		return uint64(depth) < uint64(len(blocks)) && blocks[len(blocks)-1-int(depth)]
	}
	for r.i < len(src) {
		start := r.i
		op := r.byte()
		backEdge := false
		switch op {
		case 0x02, 0x04, 0x06, 0x1F: // block if try try_table
			blocks = append(blocks, false)
		case 0x03: // loop
			blocks = append(blocks, true)
		case 0x0B: // end
			if len(blocks) == 0 {
				return nil, fmt.Errorf("unbalanced end at offset %d", start)
			}
			blocks = blocks[:len(blocks)-1]
		case 0x0C, 0x0D: // br br_if
			save := r.i
			backEdge = isLoop(r.u32())
			r.i = save
		case 0x0E: // br_table
			save := r.i
			for n := r.u32(); n > 0 && r.err == nil; n-- {
				backEdge = isLoop(r.u32()) || backEdge
			}
			backEdge = isLoop(r.u32()) || backEdge
			r.i = save
		case 0x10, 0x11, 0x12, 0x13: // call call_indirect return_call return_call_indirect
			calls = true
		}
		if err := skipImmediates(r, op); err != nil {
			return nil, fmt.Errorf("instruction 0x%02x at offset %d: %w", op, start, err)
		}
		if backEdge {
			out = append(out, check...)
		}
		out = append(out, src[start:r.i]...)
	}
	if len(blocks) != 0 {
		return nil, errors.New("body does not end its blocks")
	}
	if calls {
		out = slices.Insert(out, entry, check...)
	}
	return out, nil
}

// skipImmediates advances r past the immediates of the instruction op.
func skipImmediates(r *rd, op byte) error {
	switch {
	case op == 0x02 || op == 0x03 || op == 0x04 || op == 0x06: // block loop if try
		r.blockType()
	case op == 0x0C || op == 0x0D || op == 0x10 || op == 0x12 || // br br_if call return_call
		op == 0x07 || op == 0x08 || op == 0x09 || op == 0x18 || // catch throw rethrow delegate
		op >= 0x20 && op <= 0x26 || // local.* global.* table.get table.set
		op == 0x3F || op == 0x40 || op == 0xD2: // memory.size memory.grow ref.func
		r.u32()
	case op == 0x0E: // br_table
		for n := r.u32(); n > 0 && r.err == nil; n-- {
			r.u32()
		}
		r.u32()
	case op == 0x11 || op == 0x13: // call_indirect return_call_indirect
		r.u32()
		r.u32()
	case op == 0x1C: // select t*
		for n := r.u32(); n > 0 && r.err == nil; n-- {
			r.byte()
		}
	case op == 0x1F: // try_table
		r.blockType()
		for n := r.u32(); n > 0 && r.err == nil; n-- {
			switch kind := r.byte(); kind {
			case 0, 1:
				r.u32()
				r.u32()
			case 2, 3:
				r.u32()
			default:
				r.fail("try_table catch kind %d", kind)
			}
		}
	case op >= 0x28 && op <= 0x3E: // loads and stores
		r.memarg()
	case op == 0x41 || op == 0x42: // i32.const i64.const
		r.sleb()
	case op == 0x43:
		r.skip(4)
	case op == 0x44:
		r.skip(8)
	case op == 0xD0: // ref.null heaptype
		r.sleb()
	case op == 0x00 || op == 0x01 || op == 0x05 || op == 0x0A || op == 0x0B ||
		op == 0x0F || op == 0x19 || op == 0x1A || op == 0x1B || op == 0xD1 ||
		op >= 0x45 && op <= 0xC4: // no immediates
	case op == 0xFC:
		skipFC(r)
	case op == 0xFD:
		skipFD(r)
	case op == 0xFE:
		skipFE(r)
	default:
		return errors.New("unknown opcode")
	}
	return r.err
}

func skipFC(r *rd) {
	switch sub := r.u32(); {
	case sub <= 7: // saturating truncations
	case sub == 8: // memory.init dataidx memidx
		r.u32()
		r.u32()
	case sub == 9 || sub == 11 || sub == 13 || sub >= 15 && sub <= 17: // data.drop memory.fill elem.drop table.grow/size/fill
		r.u32()
	case sub == 10 || sub == 12 || sub == 14: // memory.copy table.init table.copy
		r.u32()
		r.u32()
	default:
		r.fail("unknown 0xFC sub-opcode %d", sub)
	}
}

func skipFD(r *rd) {
	switch sub := r.u32(); {
	case sub <= 11 || sub == 92 || sub == 93: // loads, stores, load_zero
		r.memarg()
	case sub == 12 || sub == 13: // v128.const, i8x16.shuffle
		r.skip(16)
	case sub >= 21 && sub <= 34: // extract and replace lane
		r.skip(1)
	case sub >= 84 && sub <= 91: // load and store lane
		r.memarg()
		r.skip(1)
	case sub <= 0x113: // arithmetic, comparisons, conversions, relaxed SIMD
	default:
		r.fail("unknown 0xFD sub-opcode %d", sub)
	}
}

func skipFE(r *rd) {
	switch sub := r.u32(); {
	case sub == 3: // atomic.fence
		r.skip(1)
	case sub <= 2 || sub >= 0x10 && sub <= 0x4E:
		r.memarg()
	default:
		r.fail("unknown 0xFE sub-opcode %d", sub)
	}
}

// rd reads LEB128 and bytes; the first error sticks.
type rd struct {
	b   []byte
	i   int
	err error
}

func (r *rd) fail(format string, args ...any) {
	if r.err == nil {
		r.err = fmt.Errorf(format, args...)
	}
}

func (r *rd) byte() byte {
	if r.err != nil {
		return 0
	}
	if r.i >= len(r.b) {
		r.fail("unexpected end")
		return 0
	}
	v := r.b[r.i]
	r.i++
	return v
}

func (r *rd) skip(n int) {
	if r.err != nil {
		return
	}
	if n > len(r.b)-r.i {
		r.fail("unexpected end")
		return
	}
	r.i += n
}

// u32 reads an unsigned LEB128 of at most 5 bytes.
func (r *rd) u32() uint32 {
	var v uint64
	for shift := 0; shift < 35; shift += 7 {
		c := r.byte()
		if r.err != nil {
			return 0
		}
		v |= uint64(c&0x7F) << shift
		if c&0x80 == 0 {
			if v > 0xFFFFFFFF {
				r.fail("u32 overflow")
				return 0
			}
			return uint32(v)
		}
	}
	r.fail("LEB128 too long")
	return 0
}

// sleb skips a signed LEB128 of at most 10 bytes.
func (r *rd) sleb() {
	for k := 0; k < 10; k++ {
		c := r.byte()
		if r.err != nil || c&0x80 == 0 {
			return
		}
	}
	r.fail("LEB128 too long")
}

func (r *rd) name() string {
	n := r.u32()
	if r.err != nil {
		return ""
	}
	if uint64(n) > uint64(len(r.b)-r.i) {
		r.fail("name overruns its section")
		return ""
	}
	s := string(r.b[r.i : r.i+int(n)])
	r.i += int(n)
	return s
}

func (r *rd) limits() {
	flags := r.byte()
	r.u32()
	if flags&1 != 0 {
		r.u32()
	}
}

func (r *rd) memarg() {
	align := r.u32()
	if align&0x40 != 0 { // multi-memory: a memory index follows
		r.u32()
	}
	r.u32() // offset (u32; memory64 would be u64, which wazero does not implement)
}

// blockType skips a block type: 0x40, a value type (both one byte that reads as a
// negative s33) or a type index (a non-negative s33).
func (r *rd) blockType() { r.sleb() }
