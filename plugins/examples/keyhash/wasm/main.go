// Command wasm is the key-hash example strategy (package keyhash, Java hashing) as a
// WebAssembly module for host/wasm. Build it with
//
//	GOOS=wasip1 GOARCH=wasm go build -buildmode=c-shared -o keyhash.wasm ./plugins/examples/keyhash/wasm
//
// Its settings are keyhash.Settings (hash: "java" or "fnv32a").
package main

import (
	"github.com/producerd/producerd/plugins/examples/keyhash"
	"github.com/producerd/producerd/plugins/sdk/wasmguest"
)

func init() { wasmguest.Register(keyhash.Build) }

func main() {}
