package simulate

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestRunWasm: a scenario with a WebAssembly strategy (the least-latency example, no
// executable bit) passes the check and runs: its decisions are made by the module.
func TestRunWasm(t *testing.T) {
	if testing.Short() {
		t.Skip("builds a module and runs 3 s of real-time simulation")
	}
	if raceEnabled {
		t.Skip("wazero compiles a module ~25x slower under -race")
	}
	dir := t.TempDir()
	mod := filepath.Join(dir, "leastlatency.wasm")
	cmd := exec.Command("go", "build", "-buildmode=c-shared", "-o", mod, "../../plugins/examples/leastlatency/wasm")
	cmd.Env = append(os.Environ(), "GOOS=wasip1", "GOARCH=wasm")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	if err := os.Chmod(mod, 0o600); err != nil { // no executable bit: a module is read
		t.Fatal(err)
	}
	scenario := shortScenario
	scenario = scenario[:strings.Index(scenario, "[[strategy]]")] + `[[strategy]]
name = "least-latency wasm"
plugin = "leastlatency.wasm"
settings = { band = 1.5 }
`
	sc, err := Parse(filepath.Join(dir, "wasm.toml"), []byte(scenario), dir)
	if err != nil {
		t.Fatalf("the check refused a wasm strategy: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	rep, err := Run(ctx, sc, Options{})
	if err != nil {
		t.Fatal(err)
	}
	r := rep.Results[0]
	if r.Where != "wasm" || r.Sent == 0 || r.OK == 0 {
		t.Fatalf("result %+v", r)
	}
}
