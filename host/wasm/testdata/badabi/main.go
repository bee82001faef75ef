// Command badabi is a WebAssembly module whose exports do not match the producerd
// ABI: producerd_select has the wrong signature and producerd_alloc, producerd_describe
// and producerd_last_error are missing. host/wasm must refuse it at Load.
//
// Build: GOOS=wasip1 GOARCH=wasm go build -buildmode=c-shared -o badabi.wasm .
package main

import "github.com/producerd/producerd/plugins/sdk/wasmguest/wasmabi"

func main() {}

//go:wasmexport producerd_abi_version
func abiVersion() int32 { return wasmabi.Version }

//go:wasmexport producerd_select
func selectQueue(topic int32) int64 { return 0 }
