package main

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/producerd/producerd/plugins/sdk/pick"
)

// TestThirdPartySettingsAtTheirLines: a bad setting of a third-party strategy, as a
// plugin process and as a .wasm module, is reported by validate, and by the daemon at
// start, as FILE:LINE: key strategy.NAME.settings.KEY: problem, the problem being the
// strategy's own parser's.
func TestThirdPartySettingsAtTheirLines(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary, a plugin and a module")
	}
	bin := buildBinary(t)
	dir := t.TempDir()
	plugin, module := buildStrategy(t, dir)
	cfgPath := filepath.Join(dir, "producer.toml")
	cfg := fmt.Sprintf(`[client]
name_servers = ["127.0.0.1:9876"]

[strategy.ll]
plugin = %q

[strategy.ll.settings]
band = 0.5
best_weight = 0

[strategy.llwasm]
plugin = %q
settings = { alpha = 2, failure_latency = "soon" }

[[producer]]
group = "g"
strategy = "ll"
`, plugin, module)
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	want := []string{
		cfgPath + ":8: key strategy.ll.settings.band: 0.5 is not ≥ 1",
		cfgPath + fmt.Sprintf(":9: key strategy.ll.settings.best_weight: 0 is not in 1..%d", pick.MaxWeight),
		cfgPath + ":13: key strategy.llwasm.settings.alpha: 2 is not in (0, 1]",
		cfgPath + `:13: key strategy.llwasm.settings.failure_latency: invalid duration "soon"`,
	}
	out, err := exec.Command(bin, "validate", "-c", cfgPath).CombinedOutput()
	if code := exitCode(err); code != 1 {
		t.Fatalf("validate: exit %d, want 1\n%s", code, out)
	}
	for _, w := range want {
		if !strings.Contains(string(out), w+"\n") {
			t.Errorf("validate output lacks %q:\n%s", w, out)
		}
	}

	// At start the daemon builds the group's strategy (the plugin) and reports the same.
	out, err = exec.Command(bin, "dev", "-free-ports", "-c", cfgPath).CombinedOutput()
	if code := exitCode(err); code == 0 {
		t.Fatalf("dev with bad settings: exit 0\n%s", out)
	}
	for _, w := range want[:2] {
		if !strings.Contains(string(out), w) {
			t.Errorf("dev output lacks %q:\n%s", w, out)
		}
	}
}

func exitCode(err error) int {
	if err == nil {
		return 0
	}
	if ee, ok := err.(*exec.ExitError); ok {
		return ee.ExitCode()
	}
	return -1
}
