package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"
)

// buildStrategy builds the least-latency example as a plugin binary and as a .wasm
// module (without an executable bit) into dir and returns their paths.
func buildStrategy(t *testing.T, dir string) (plugin, module string) {
	t.Helper()
	plugin, module = filepath.Join(dir, "leastlatency-plugin"), filepath.Join(dir, "leastlatency.wasm")
	for _, b := range []struct {
		out, pkg string
		env      []string
	}{
		{plugin, "../../plugins/examples/leastlatency/cmd/leastlatency-plugin", nil},
		{module, "../../plugins/examples/leastlatency/wasm", []string{"GOOS=wasip1", "GOARCH=wasm"}},
	} {
		args := []string{"build", "-o", b.out}
		if b.env != nil {
			args = append(args, "-buildmode=c-shared")
		}
		cmd := exec.Command("go", append(args, b.pkg)...)
		cmd.Env = append(os.Environ(), b.env...)
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("go build %s: %v\n%s", b.pkg, err, out)
		}
	}
	if err := os.Chmod(module, 0o644); err != nil {
		t.Fatal(err)
	}
	return plugin, module
}

func sum(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

// TestDevWithUserStrategies: a third-party strategy as a plugin and as a .wasm module
// (no executable bit), both pinned by sha256, passes validate; `producerd dev -c FILE`
// runs it against the dev broker; a swap to the module answers after its probation;
// status and the metrics name the strategy deciding, with no fallback.
func TestDevWithUserStrategies(t *testing.T) {
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
sha256 = %q
settings = { band = 1.5 }

[strategy.llwasm]
plugin = %q
sha256 = %q

[[producer]]
group = "g"
strategy = "ll"
`, plugin, sum(t, plugin), module, sum(t, module))
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	if code, out, errOut := runCLI("validate", "-c", cfgPath); code != 0 {
		t.Fatalf("validate: %d %s %s", code, out, errOut)
	}
	bad := strings.Replace(cfg, "band = 1.5", "band = 0.5", 1)
	badPath := filepath.Join(dir, "bad.toml")
	if err := os.WriteFile(badPath, []byte(bad), 0o600); err != nil {
		t.Fatal(err)
	}
	if code, _, errOut := runCLI("validate", "-c", badPath); code != 1 || !strings.Contains(errOut, badPath+":7: key strategy.ll.settings.band: 0.5 is not ≥ 1") {
		t.Fatalf("validate with a bad setting: %d %s", code, errOut)
	}

	dev := exec.Command(bin, "dev", "-c", cfgPath, "-grpc", "127.0.0.1:0", "-http", "127.0.0.1:0", "-admin", "127.0.0.1:0", "-namesrv", "127.0.0.1:0", "-log-level", "warn")
	addrs, _ := startDev(t, dev)
	grpcAddr, adminAddr := addrs["ingress gRPC"], addrs["admin"]
	cli := func(args ...string) string {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		defer cancel()
		out, err := exec.CommandContext(ctx, bin, args...).CombinedOutput()
		if err != nil {
			t.Fatalf("producerd %v: %v\n%s", args, err, out)
		}
		return string(out)
	}
	if out := cli("bench", "-addr", grpcAddr, "-n", "300", "-d", "60s", "TopicTest"); !strings.Contains(out, "summary: 300 ok, 0 errors") {
		t.Fatalf("bench: %s", out)
	}
	if out := cli("status", "-admin", adminAddr); !groupRow("ll").MatchString(out) {
		t.Fatalf("status: %s", out)
	}
	if out := cli("strategy", "swap", "llwasm", "-admin", adminAddr); !strings.Contains(out, "group g: ll -> llwasm") {
		t.Fatalf("strategy swap: %s", out)
	}
	if out := cli("bench", "-addr", grpcAddr, "-n", "300", "-d", "60s", "TopicTest"); !strings.Contains(out, "summary: 300 ok, 0 errors") {
		t.Fatalf("bench after the swap: %s", out)
	}
	if out := cli("status", "-admin", adminAddr); !groupRow("llwasm").MatchString(out) {
		t.Fatalf("status after the swap: %s", out)
	}
	resp, err := http.Get("http://" + adminAddr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	metrics, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !strings.Contains(string(metrics), `producerd_strategy_decisions_total{group="g"} 600`+"\n") ||
		!strings.Contains(string(metrics), `producerd_strategy_generation{group="g",strategy="llwasm"} 2`) ||
		regexp.MustCompile(`producerd_strategy_fallbacks_total\{[^}]*\} [1-9]`).MatchString(string(metrics)) {
		t.Fatalf("metrics: want 600 decisions and no fallback:\n%s", grepLines(string(metrics), "producerd_strategy_"))
	}

	// A reload whose new settings the plugin rejects names the key's line, and keeps
	// the running strategy.
	if err := os.WriteFile(cfgPath, []byte(bad), 0o600); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(bin, "reload", "-admin", adminAddr).CombinedOutput()
	if err == nil || !strings.Contains(string(out), cfgPath+":7: key strategy.ll.settings.band: 0.5 is not ≥ 1") {
		t.Fatalf("reload with a bad setting: %v\n%s", err, out)
	}
	if out := cli("status", "-admin", adminAddr); !groupRow("llwasm").MatchString(out) {
		t.Fatalf("status after the refused reload: %s", out)
	}
}

func grepLines(s, sub string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, sub) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

// startDev starts a `producerd dev` command and waits for its addresses. exited yields
// its exit once (put it back after reading it); when the test ends a dev still running
// is killed.
func startDev(t *testing.T, dev *exec.Cmd) (addrs map[string]string, exited chan error) {
	t.Helper()
	stdout, err := dev.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var devErr bytes.Buffer
	dev.Stderr = &devErr
	if err := dev.Start(); err != nil {
		t.Fatal(err)
	}
	exited = make(chan error, 1)
	t.Cleanup(func() {
		select {
		case <-exited:
		default:
			_ = syscall.Kill(dev.Process.Pid, syscall.SIGKILL)
			<-exited
		}
		if t.Failed() {
			t.Logf("dev stderr:\n%s", devErr.String())
		}
	})
	addrs = map[string]string{}
	ready := make(chan struct{})
	go func() {
		sc := bufio.NewScanner(stdout)
		closed := false
		for sc.Scan() {
			line := sc.Text()
			if k, v, ok := strings.Cut(line, ":"); ok && strings.HasPrefix(line, "  ") && !closed {
				addrs[strings.TrimSpace(k)] = strings.TrimSpace(v)
			}
			if strings.HasPrefix(line, "Stop with") && !closed {
				closed = true
				close(ready)
			}
		}
		exited <- dev.Wait()
	}()
	select {
	case <-ready:
	case err := <-exited:
		exited <- err
		t.Fatalf("dev exited: %v", err)
	case <-time.After(60 * time.Second):
		t.Fatal("dev did not print its addresses")
	}
	return addrs, exited
}

// TestSwapRolledBack: a swap to a strategy that passes its trial decision and then
// fails is rolled back during its probation; the swap command fails with the reason,
// and status and the metrics name the strategy deciding again.
func TestSwapRolledBack(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary and two plugins")
	}
	bin := buildBinary(t)
	dir := t.TempDir()
	plugin, _ := buildStrategy(t, dir)
	bad := filepath.Join(dir, "failafter")
	if out, err := exec.Command("go", "build", "-o", bad, "./testdata/failafter").CombinedOutput(); err != nil {
		t.Fatalf("go build failafter: %v\n%s", err, out)
	}
	cfgPath := filepath.Join(dir, "producer.toml")
	cfg := fmt.Sprintf(`[client]
name_servers = ["127.0.0.1:9876"]

[strategy.ll]
plugin = %q

[strategy.bad]
plugin = %q

[[producer]]
group = "g"
strategy = "ll"
`, plugin, bad)
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	dev := exec.Command(bin, "dev", "-c", cfgPath, "-grpc", "127.0.0.1:0", "-http", "127.0.0.1:0", "-admin", "127.0.0.1:0", "-namesrv", "127.0.0.1:0", "-log-level", "warn")
	addrs, _ := startDev(t, dev)
	grpcAddr, adminAddr := addrs["ingress gRPC"], addrs["admin"]
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	load := exec.CommandContext(ctx, bin, "bench", "-addr", grpcAddr, "-n", "1000000", "-d", "20s", "TopicTest")
	if err := load.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = load.Process.Kill(); _ = load.Wait() }()
	out, err := exec.CommandContext(ctx, bin, "strategy", "swap", "bad", "-admin", adminAddr).CombinedOutput()
	if err == nil || !strings.Contains(string(out), "rolled back") {
		t.Fatalf("swap to a failing strategy: %v\n%s", err, out)
	}
	st, err := exec.CommandContext(ctx, bin, "status", "-admin", adminAddr).CombinedOutput()
	if err != nil || !groupRow("ll").MatchString(string(st)) {
		t.Fatalf("status after the rollback: %v\n%s", err, st)
	}
	resp, err := http.Get("http://" + adminAddr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	metrics, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !strings.Contains(string(metrics), `producerd_strategy_swaps_total{group="g",result="rolled_back"} 1`) ||
		!regexp.MustCompile(`producerd_strategy_generation\{group="g",strategy="ll"\} \d`).Match(metrics) {
		t.Fatalf("metrics after the rollback:\n%s", grepLines(string(metrics), "producerd_strategy_"))
	}
}

// groupRow matches the row of group g in status's GROUP table with strategy name.
func groupRow(strategy string) *regexp.Regexp {
	return regexp.MustCompile(`(?m)^g +` + regexp.QuoteMeta(strategy) + ` `)
}

// TestDevUserConfigListeners: `dev -c` keeps the user's groups and strategies but
// listens only where dev does: the user's Unix socket and RocketMQ 5 gRPC listener (and
// its credential) are not bound by the dev daemon.
func TestDevUserConfigListeners(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "producer.toml")
	text := `
[ingress]
grpc = "127.0.0.1:7380"
unix = "` + filepath.Join(dir, "user.sock") + `"
rocketmq_grpc_listen = "127.0.0.1:8081"

[ingress.rocketmq_grpc_auth]
access_key = "ak"
secret_key = "sk"

[client]
name_servers = ["127.0.0.1:9876"]

[[producer]]
group = "user_group"
`
	if err := os.WriteFile(path, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := devUserConfig(path, "info", "127.0.0.1:1", "127.0.0.1:2", "127.0.0.1:3", "127.0.0.1:4")()
	if err != nil {
		t.Fatal(err)
	}
	in := cfg.Ingress
	if in.GRPC != "127.0.0.1:1" || in.HTTP != "127.0.0.1:2" || in.Unix != "" || in.RocketMQGRPC != "" || in.RocketMQGRPCAuth != nil {
		t.Errorf("dev ingress: grpc %q http %q unix %q rocketmq grpc %q auth %v; want only dev's listeners", in.GRPC, in.HTTP, in.Unix, in.RocketMQGRPC, in.RocketMQGRPCAuth != nil)
	}
	if cfg.Producers[0].Group != "user_group" || cfg.Client.NameServers[0] != "127.0.0.1:4" {
		t.Errorf("group %q, name servers %v", cfg.Producers[0].Group, cfg.Client.NameServers)
	}
}
