package main

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/producerd/producerd/internal/testwait"
)

// TestPluginGetsNoSecrets runs `producerd run` with an admin token in its config and
// secrets in its environment, and a built-in strategy out of process: the plugin
// process's environment (/proc/PID/environ) holds none of them, only the variable the
// strategy's env allowlist names, and the plugin holds none of the daemon's files
// open.
func TestPluginGetsNoSecrets(t *testing.T) {
	dev := linuxDaemonTest(t)
	bin := buildBinary(t)
	dir := t.TempDir()
	const token = "admin-token-3c1f9e7d"
	secrets := []string{token, "aws-secret-9d0e11", "db-password-77aa"}
	grpcAddr, adminAddr := freeAddr(t), freeAddr(t)
	cfgPath := filepath.Join(dir, "producer.toml")
	cfg := fmt.Sprintf(`[ingress]
grpc = %q
http = ""
[admin]
listen = %q
token = %q
[client]
name_servers = [%q]
[strategy.lf]
plugin = "builtin:latencyfault"
env = ["PRODUCERD_TEST_REGION"]
[[producer]]
group = "env"
strategy = "lf"
`, grpcAddr, adminAddr, token, dev.NameServerAddr())
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	run := exec.Command(bin, "run", "-c", cfgPath)
	run.Env = append(os.Environ(), "PRODUCERD_ADMIN_TOKEN="+token, "AWS_SECRET_ACCESS_KEY="+secrets[1],
		"DB_PASSWORD="+secrets[2], "PRODUCERD_TEST_REGION=eu-test-1")
	startRun(t, run)
	pidRE := regexp.MustCompile(`(?m)^lf +(\d+) +\d+ `) // a row of the PLUGIN table
	var pid int
	var out []byte
	if !testwait.Until(60*time.Second, func() bool {
		st := exec.Command(bin, "status", "-admin", adminAddr)
		st.Env = append(os.Environ(), "PRODUCERD_ADMIN_TOKEN="+token)
		out, _ = st.CombinedOutput()
		if m := pidRE.FindSubmatch(out); m != nil {
			pid, _ = strconv.Atoi(string(m[1]))
		}
		return pid != 0
	}) {
		t.Fatalf("no plugin process in status:\n%s", out)
	}
	environ, err := os.ReadFile(fmt.Sprintf("/proc/%d/environ", pid))
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range secrets {
		if strings.Contains(string(environ), s) {
			t.Errorf("the plugin's environment holds the secret %q", s)
		}
	}
	for _, kv := range strings.Split(string(environ), "\x00") {
		k, _, _ := strings.Cut(kv, "=")
		switch {
		case k == "" || k == "PRODUCERD_TEST_REGION" || k == "TMPDIR" || k == "PRODUCERD_PLUGIN_LOG_LEVEL":
		case strings.HasPrefix(k, "PLUGIN_") || k == "PRODUCERD_STRATEGY_PLUGIN": // go-plugin's handshake
		default:
			t.Errorf("unexpected variable in the plugin's environment: %s", k)
		}
	}
	if !strings.Contains(string(environ), "PRODUCERD_TEST_REGION=eu-test-1") {
		t.Errorf("the allowlisted variable is missing: %q", environ)
	}
	fds, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
	if err != nil {
		t.Fatal(err)
	}
	for _, fd := range fds {
		target, _ := os.Readlink(fmt.Sprintf("/proc/%d/fd/%s", pid, fd.Name()))
		if strings.HasPrefix(target, dir) || strings.HasSuffix(target, "producer.toml") {
			t.Errorf("the plugin holds the daemon's file %s open (fd %s)", target, fd.Name())
		}
	}
}
