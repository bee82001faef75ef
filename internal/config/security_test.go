package config

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// TestSecurityKeysAndWarnings: the plugin trust keys reach the Strategy, and the
// settings that weaken security are allowed but reported by Warnings with file, line
// and key.
func TestSecurityKeysAndWarnings(t *testing.T) {
	dir := t.TempDir()
	plugin := filepath.Join(dir, "my-plugin")
	if err := os.WriteFile(plugin, []byte("#!/bin/sh\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	pin := strings.Repeat("ab", 32)
	src := `
[client]
name_servers = ["127.0.0.1:9876"]
tls = true
tls_server_name = "broker.example"
tls_insecure_skip_verify = true

[strategy.mine]
plugin = "my-plugin"
sha256 = "` + pin + `"
allow_insecure_path = true
env = ["HOME", "MY_PLUGIN_REGION"]

[[producer]]
strategy = "mine"
`
	c, err := Parse("p.toml", []byte(src), dir)
	if err != nil {
		t.Fatal(err)
	}
	s := c.Strategies["mine"]
	if s.SHA256 != pin || !s.AllowInsecurePath || !slices.Equal(s.Env, []string{"HOME", "MY_PLUGIN_REGION"}) {
		t.Fatalf("strategy = %+v", s)
	}
	want := []string{
		"p.toml:6: key client.tls_insecure_skip_verify: TLS certificates of the brokers and NameServers are not verified",
		"p.toml:11: key strategy.mine.allow_insecure_path: plugin " + plugin + " runs even if someone other than its owner could replace it",
	}
	got := c.Warnings()
	if len(got) != len(want) {
		t.Fatalf("Warnings() = %q, want %d", got, len(want))
	}
	for i := range want {
		if !strings.HasPrefix(got[i], want[i]) {
			t.Errorf("warning %d = %q, want it to start with %q", i, got[i], want[i])
		}
	}

	// Without the risky settings there is nothing to warn about.
	c, err = Parse("p.toml", []byte("[client]\nname_servers = [\"127.0.0.1:9876\"]\ntls = true\n[[producer]]\n"), dir)
	if err != nil {
		t.Fatal(err)
	}
	if w := c.Warnings(); len(w) != 0 {
		t.Fatalf("Warnings() = %q, want none", w)
	}
}
