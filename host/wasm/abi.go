package wasm

import (
	"fmt"
	"strings"

	"github.com/producerd/producerd/host/wasm/internal/wasmbin"
	"github.com/producerd/producerd/plugins/sdk/wasmguest/wasmabi"
)

// interruptExport is the name under which wasmbin.Instrument exports the interrupt
// global. A module may not export it itself.
const interruptExport = "producerd.interrupt"

// wasiModule is the only import module the host provides.
const wasiModule = "wasi_snapshot_preview1"

var (
	i32 = wasmbin.I32
	i64 = wasmbin.I64
	sig = func(params []wasmbin.ValType, results ...wasmbin.ValType) wasmbin.FuncType {
		return wasmbin.FuncType{Params: params, Results: results}
	}
	none   []wasmbin.ValType
	ptrLen = []wasmbin.ValType{i32, i32}
)

// abiExports are the functions of the ABI, their signatures, and the describe flag
// that requires an optional one (0: required).
var abiExports = []struct {
	name string
	sig  wasmbin.FuncType
	flag uint32
}{
	{wasmabi.ExportABIVersion, sig(none, i32), 0},
	{wasmabi.ExportAlloc, sig([]wasmbin.ValType{i32}, i32), 0},
	{wasmabi.ExportDescribe, sig(none, i64), 0},
	{wasmabi.ExportSelect, sig(ptrLen, i32), 0},
	{wasmabi.ExportLastError, sig(none, i64), 0},
	{wasmabi.ExportConfigure, sig(ptrLen, i32), wasmabi.FlagConfigurable},
	{wasmabi.ExportObserve, sig(ptrLen, i32), wasmabi.FlagObserver},
	{wasmabi.ExportHealth, sig(ptrLen, i64), wasmabi.FlagHealthReporter},
	{wasmabi.ExportSeed, sig(ptrLen, i32), wasmabi.FlagHealthSeeder},
	{wasmabi.ExportInitialize, sig(none), ^uint32(0)}, // optional, never required
}

// checkABI lists every way m's imports and exports differ from the ABI.
func checkABI(m *wasmbin.Module) error {
	var problems []string
	add := func(format string, args ...any) { problems = append(problems, fmt.Sprintf(format, args...)) }
	if e, ok := m.Export(wasmabi.Memory); !ok || e.Kind != wasmbin.KindMemory {
		add("no memory exported as %q", wasmabi.Memory)
	}
	for _, want := range abiExports {
		e, ok := m.Export(want.name)
		switch {
		case !ok:
			if want.flag == 0 {
				add("missing export %s %v", want.name, want.sig)
			}
			continue
		case e.Kind != wasmbin.KindFunc:
			add("export %s is a %s, want func %v", want.name, wasmbin.KindName(e.Kind), want.sig)
			continue
		}
		if got, ok := m.FuncType(e.Index); !ok {
			add("export %s names function %d, which does not exist", want.name, e.Index)
		} else if !got.Equal(want.sig) {
			add("export %s has signature %v, want %v", want.name, got, want.sig)
		}
	}
	if _, ok := m.Export("_start"); ok {
		add("the module is a WASI command (it exports _start); build a reactor: GOOS=wasip1 GOARCH=wasm go build -buildmode=c-shared")
	}
	if m.HasStart {
		add("the module has a start function, which would run unbounded while instantiating")
	}
	if _, ok := m.Export(interruptExport); ok {
		add("the module exports %q, which the host reserves", interruptExport)
	}
	for _, im := range m.Imports {
		if im.Module != wasiModule || im.Kind != wasmbin.KindFunc {
			add("imports %s %s.%s; the host provides only functions of %s", wasmbin.KindName(im.Kind), im.Module, im.Name, wasiModule)
		}
	}
	if len(problems) > 0 {
		return fmt.Errorf("%w: %s", ErrABI, strings.Join(problems, "; "))
	}
	return nil
}

// checkFlags checks that the exports a module's describe flags declare exist.
func checkFlags(m *wasmbin.Module, flags uint32) error {
	var problems []string
	for _, want := range abiExports {
		if want.flag != 0 && want.flag != ^uint32(0) && flags&want.flag != 0 {
			if _, ok := m.Export(want.name); !ok {
				problems = append(problems, fmt.Sprintf("describe declares %s but the module does not export it", want.name))
			}
		}
	}
	if len(problems) > 0 {
		return fmt.Errorf("%w: %s", ErrABI, strings.Join(problems, "; "))
	}
	return nil
}
