// Command wasm is the latency-fault strategy (package latencyfault) as a WebAssembly
// module for host/wasm. Build it with
//
//	GOOS=wasip1 GOARCH=wasm go build -buildmode=c-shared -o latencyfault.wasm ./plugins/latencyfault/wasm
//
// Its settings (JSON, unknown keys rejected) are those of the "latencyfault" built-in
// (latencyfault.Settings): preset, latency_max, not_available, isolation_latency,
// never_shorten, max_isolated_share. The module reads the time from each call
// (wasmguest.Now) and has no active probe: it has no network.
package main

import (
	"github.com/producerd/producerd/plugins/latencyfault"
	"github.com/producerd/producerd/plugins/sdk/wasmguest"
)

func init() { wasmguest.Register(latencyfault.Constructor(wasmguest.Now), wasmguest.UsesClock()) }

func main() {}
