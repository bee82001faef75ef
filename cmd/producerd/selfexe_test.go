package main

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/producerd/producerd/internal/testwait"
)

// TestBuiltinPluginRestartRunsOwnImage runs `producerd run` with a built-in strategy
// out of process, replaces the daemon's binary with a script (as anyone who can write
// its directory could), then SIGKILLs the plugin: the restarted plugin is the image the
// daemon runs (/proc/self/exe), the script never runs (review defect 6).
func TestBuiltinPluginRestartRunsOwnImage(t *testing.T) {
	dev := linuxDaemonTest(t)
	cli := buildBinary(t) // stays in place: the CLI reads the status with it
	dir := t.TempDir()
	bin := filepath.Join(dir, "producerd")
	data, err := os.ReadFile(cli)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(bin, data, 0o755); err != nil {
		t.Fatal(err)
	}
	const token = "admin-token-5e1a0c"
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
[strategy.rr]
plugin = "builtin:roundrobin"
[[producer]]
group = "selfexe"
strategy = "rr"
`, grpcAddr, adminAddr, token, dev.NameServerAddr())
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	run := exec.Command(bin, "run", "-c", cfgPath)
	startRun(t, run)
	pidRE := regexp.MustCompile(`(?m)^rr +(\d+) +\d+ `) // a row of the PLUGIN table
	pluginPID := func(not int, marker string) int {
		t.Helper()
		var pid int
		var out []byte
		if !testwait.Until(60*time.Second, func() bool {
			if marker != "" {
				if _, err := os.Stat(marker); err == nil {
					t.Fatal("the plugin restart ran the file now at the daemon's path, not the daemon's image")
				}
			}
			st := exec.Command(cli, "status", "-admin", adminAddr)
			st.Env = append(os.Environ(), "PRODUCERD_ADMIN_TOKEN="+token)
			out, _ = st.CombinedOutput()
			if m := pidRE.FindSubmatch(out); m != nil {
				if p, _ := strconv.Atoi(string(m[1])); p != 0 && p != not {
					pid = p
					return true
				}
			}
			return false
		}) {
			t.Fatalf("no new running plugin process in status:\n%s", out)
		}
		return pid
	}
	first := pluginPID(0, "")

	// Replace the binary the way an attacker with write access to its directory would.
	marker := filepath.Join(dir, "replaced-binary-ran")
	script := filepath.Join(dir, "evil")
	if err := os.WriteFile(script, []byte("#!/bin/sh\ntouch "+marker+"\nexit 1\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(script, bin); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Kill(first, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	second := pluginPID(first, marker)
	if _, err := os.Stat(marker); err == nil {
		t.Fatal("the plugin restart ran the replaced binary")
	}
	// The new plugin runs the daemon's own image: the same file as the daemon's exe.
	var daemonExe, pluginExe syscall.Stat_t
	if err := syscall.Stat(fmt.Sprintf("/proc/%d/exe", run.Process.Pid), &daemonExe); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Stat(fmt.Sprintf("/proc/%d/exe", second), &pluginExe); err != nil {
		t.Fatal(err)
	}
	if daemonExe.Ino != pluginExe.Ino || daemonExe.Dev != pluginExe.Dev {
		t.Errorf("plugin image %d:%d, daemon image %d:%d", pluginExe.Dev, pluginExe.Ino, daemonExe.Dev, daemonExe.Ino)
	}
}
