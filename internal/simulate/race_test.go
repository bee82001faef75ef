//go:build race

package simulate

// raceEnabled: wazero compiles ~25x slower under -race; the wasm test skips then (make
// test runs it again without -race).
const raceEnabled = true
