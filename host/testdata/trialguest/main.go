// Command trialguest is a WebAssembly strategy that passes the host's trial decision
// (its synthetic topic) and then misbehaves on every real decision, as its settings
// say: {"mode": "loop"} never returns, "recurse" walks a deep call tree, "trap" reads
// outside linear memory. It lets the breaker tests reach a live module.
//
// Build: GOOS=wasip1 GOARCH=wasm go build -buildmode=c-shared -o trialguest.wasm .
package main

import (
	"context"
	"fmt"
	"unsafe"

	"github.com/producerd/producerd/plugins/sdk"
	"github.com/producerd/producerd/plugins/sdk/wasmguest"
)

type settings struct {
	Mode string `json:"mode"`
}

type selector struct{ mode string }

var (
	sinkB byte
	count int
)

//go:noinline
func tree(n int) {
	if n == 0 {
		count++
		return
	}
	tree(n - 1)
	tree(n - 1)
}

func (s selector) Select(_ context.Context, sel *sdk.Selection) (int, error) {
	if sel.Topic == "__producerd_health_check__" { // the host's trial decision
		return 0, nil
	}
	switch s.mode {
	case "recurse":
		tree(60)
	case "loop":
		for {
		}
	case "trap":
		p := (*byte)(unsafe.Pointer(uintptr(0xFFFF_FFF0)))
		sinkB = *p
	}
	return 0, nil
}

func (selector) Describe() sdk.Descriptor { return sdk.Descriptor{Name: "trialguest"} }

func build(raw []byte) (sdk.Selector, error) {
	var s settings
	if err := sdk.DecodeSettings(raw, &s); err != nil {
		return nil, err
	}
	switch s.Mode {
	case "", "loop", "recurse", "trap":
		return selector{mode: s.Mode}, nil
	}
	return nil, &sdk.SettingError{Key: "mode", Err: fmt.Errorf("unknown mode %q", s.Mode)}
}

func init() { wasmguest.Register(build) }

func main() {}
