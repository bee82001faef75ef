package main

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/producerd/producerd/devbroker"
	"github.com/producerd/producerd/internal/testwait"
)

// lockedBuffer collects a child's stderr while the test reads it.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// TestRunSIGHUP runs `producerd run` and reloads it with real SIGHUPs: a broken config
// leaves the running one serving; a changed strategy is swapped in. SIGTERM then exits 0.
func TestRunSIGHUP(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary")
	}
	dev, err := devbroker.Start(context.Background(), devbroker.Config{
		Brokers: []string{"broker-a", "broker-b"}, Topics: map[string]int{"TopicTest": 4}})
	if err != nil {
		t.Fatal(err)
	}
	defer dev.Close()
	bin := buildBinary(t)
	grpcAddr, adminAddr := freeAddr(t), freeAddr(t)
	cfgPath := filepath.Join(t.TempDir(), "producer.toml")
	config := func(strategy, extra string) string {
		return fmt.Sprintf(`[ingress]
grpc = %q
http = ""
[admin]
listen = %q
[client]
name_servers = [%q]
%s
[strategy.rr]
plugin = "builtin:roundrobin"
[strategy.latency]
plugin = "builtin:latencyfault"
[[producer]]
group = "sighup"
strategy = %q
`, grpcAddr, adminAddr, dev.NameServerAddr(), extra, strategy)
	}
	write := func(text string) {
		if err := os.WriteFile(cfgPath, []byte(text), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write(config("rr", ""))

	run := exec.Command(bin, "run", "-c", cfgPath)
	stderr, exited := startRun(t, run)
	cli := func(args ...string) (string, error) {
		out, err := exec.Command(bin, args...).CombinedOutput()
		return string(out), err
	}
	status := func() string {
		out, _ := cli("status", "-admin", adminAddr)
		return out
	}
	waitFor := func(what string, cond func() bool) {
		t.Helper()
		if !testwait.Until(30*time.Second, cond) {
			t.Fatalf("timed out waiting for %s; status:\n%s", what, status())
		}
	}
	send := func() {
		t.Helper()
		if out, err := cli("send", "-addr", grpcAddr, "TopicTest", "hello"); err != nil || !strings.Contains(out, "SEND_OK") {
			t.Fatalf("send: %v\n%s", err, out)
		}
	}
	// The GROUP table row of the group: name, strategy, plugin, generation, state.
	strategyRow := regexp.MustCompile(`(?m)^sighup +rr +`)
	waitFor("the daemon", func() bool { return strategyRow.MatchString(status()) })
	send()

	write(config("rr", "bogus_key = 1"))
	if err := syscall.Kill(run.Process.Pid, syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	waitFor("the refused reload in the log", func() bool { return strings.Contains(stderr.String(), "bogus_key") })
	send()
	if st := status(); !strategyRow.MatchString(st) {
		t.Fatalf("a broken config changed the running daemon:\n%s", st)
	}

	write(config("latency", ""))
	if err := syscall.Kill(run.Process.Pid, syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	waitFor("the swap to latency", func() bool { return regexp.MustCompile(`(?m)^sighup +latency +`).MatchString(status()) })
	send()

	if err := syscall.Kill(run.Process.Pid, syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-exited:
		exited <- err
		if err != nil {
			t.Fatalf("producerd run exited with %v after SIGTERM", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("producerd run did not exit after SIGTERM")
	}
}
