package main

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/producerd/producerd/internal/procs"
	"github.com/producerd/producerd/internal/testwait"
)

// TestRunSteadySysmon runs `producerd run` with each daemon.sysmon and a few GODEBUG
// values: "steady" re-executes the daemon in place (same PID) with schedtrace added to
// GODEBUG, keeping what GODEBUG held; "runtime" (the default), a GODEBUG that sets
// schedtrace already, or a config that is not a regular file (read from a pipe, which
// the new process could not read again) leave the environment alone. Each daemon then
// stores a message.
func TestRunSteadySysmon(t *testing.T) {
	dev := linuxDaemonTest(t)
	bin := buildBinary(t)
	for _, tt := range []struct {
		name, sysmon, godebug string
		pipe                  bool   // the config comes from stdin
		want                  string // GODEBUG of the running daemon, "" for none
	}{
		{"default", "", "", false, ""},
		{"steady", `sysmon = "steady"`, "", false, procs.SteadySysmon},
		{"steady keeps GODEBUG", `sysmon = "steady"`, "gctrace=0", false, "gctrace=0," + procs.SteadySysmon},
		{"runtime", `sysmon = "runtime"`, "", false, ""},
		{"GODEBUG wins", `sysmon = "steady"`, "schedtrace=2147483646", false, "schedtrace=2147483646"},
		{"config from a pipe", `sysmon = "steady"`, "", true, ""},
	} {
		t.Run(tt.name, func(t *testing.T) {
			grpcAddr := freeAddr(t)
			cfgPath := filepath.Join(t.TempDir(), "producer.toml")
			cfg := fmt.Sprintf("[daemon]\n%s\n[ingress]\ngrpc = %q\nhttp = \"\"\n[client]\nname_servers = [%q]\n[[producer]]\ngroup = \"sysmon\"\n",
				tt.sysmon, grpcAddr, dev.NameServerAddr())
			if err := os.WriteFile(cfgPath, []byte(cfg), 0o600); err != nil {
				t.Fatal(err)
			}
			run := exec.Command(bin, "run", "-c", cfgPath)
			if tt.pipe {
				run = exec.Command(bin, "run", "-c", "/dev/stdin")
				run.Stdin = strings.NewReader(cfg)
			}
			run.Env = slices.DeleteFunc(os.Environ(), func(kv string) bool { return strings.HasPrefix(kv, "GODEBUG=") })
			if tt.godebug != "" {
				run.Env = append(run.Env, "GODEBUG="+tt.godebug)
			}
			startRun(t, run)
			var out []byte
			var err error
			if !testwait.Until(30*time.Second, func() bool {
				out, err = exec.Command(bin, "send", "-addr", grpcAddr, "TopicTest", "hello").CombinedOutput()
				return err == nil && strings.Contains(string(out), "SEND_OK")
			}) {
				t.Fatalf("the daemon stored nothing: %v\n%s", err, out)
			}
			// The process that answers is the one started (a re-exec keeps the PID).
			environ, err := os.ReadFile(fmt.Sprintf("/proc/%d/environ", run.Process.Pid))
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for kv := range strings.SplitSeq(string(environ), "\x00") {
				if v, ok := strings.CutPrefix(kv, "GODEBUG="); ok {
					got = append(got, v)
				}
			}
			switch {
			case tt.want == "" && len(got) != 0:
				t.Fatalf("GODEBUG %q, want none", got)
			case tt.want != "" && (len(got) != 1 || got[0] != tt.want):
				t.Fatalf("GODEBUG %q, want %q", got, tt.want)
			}
		})
	}
}
