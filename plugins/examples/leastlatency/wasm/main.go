// Command wasm is the least-latency example strategy (package leastlatency) as a
// WebAssembly module for host/wasm. Build it with
//
//	GOOS=wasip1 GOARCH=wasm go build -buildmode=c-shared -o leastlatency.wasm ./plugins/examples/leastlatency/wasm
package main

import (
	"github.com/producerd/producerd/plugins/examples/leastlatency"
	"github.com/producerd/producerd/plugins/sdk/wasmguest"
)

func init() { wasmguest.Register(leastlatency.New) }

func main() {}
