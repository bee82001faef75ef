// Command wasm is the round-robin strategy (package roundrobin) as a WebAssembly
// module for host/wasm. Build it with
//
//	GOOS=wasip1 GOARCH=wasm go build -buildmode=c-shared -o roundrobin.wasm ./plugins/roundrobin/wasm
//
// It takes no settings.
package main

import (
	"github.com/producerd/producerd/plugins/roundrobin"
	"github.com/producerd/producerd/plugins/sdk/wasmguest"
)

func init() { wasmguest.Register(roundrobin.Build) }

func main() {}
