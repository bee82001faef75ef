// Command sdkbadguest is a strategy built with the Go SDK (plugins/sdk/wasmguest) that
// misbehaves on request, for the tests that no guest can hold the daemon. Select's
// behaviour depends on the topic:
//
//	recurse  walks a binary call tree of depth 60 (no loop in the tree itself)
//	loop     never returns
//	trap     reads outside linear memory (a WebAssembly trap)
//	grow     allocates without bound (the Go runtime dies: out of memory)
//	other    returns queue 0
//
// Build: GOOS=wasip1 GOARCH=wasm go build -buildmode=c-shared -o sdkbadguest.wasm .
package main

import (
	"context"
	"unsafe"

	"github.com/producerd/producerd/plugins/sdk"
	"github.com/producerd/producerd/plugins/sdk/wasmguest"
)

type selector struct{}

var (
	sink  [][]byte
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

func (selector) Select(_ context.Context, sel *sdk.Selection) (int, error) {
	switch sel.Topic {
	case "recurse":
		tree(60)
	case "loop":
		for {
		}
	case "trap":
		p := (*byte)(unsafe.Pointer(uintptr(0xFFFF_FFF0)))
		sinkB = *p
	case "grow":
		for {
			sink = append(sink, make([]byte, 1<<20))
		}
	}
	return 0, nil
}

func (selector) Describe() sdk.Descriptor { return sdk.Descriptor{Name: "sdkbadguest"} }

func init() { wasmguest.Register(sdk.NoSettings(func() sdk.Selector { return selector{} })) }

func main() {}
