package main

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

func runCLI(args ...string) (code int, stdout, stderr string) {
	var o, e bytes.Buffer
	code = run(&env{stdin: strings.NewReader(""), stdout: &o, stderr: &e}, args)
	return code, o.String(), e.String()
}

func TestHelp(t *testing.T) {
	t.Parallel()
	if code, out, _ := runCLI("help"); code != 0 || !strings.Contains(out, "Commands:") || strings.Contains(out, "plugin") {
		t.Fatalf("help: %d %s", code, out)
	}
	if code, _, _ := runCLI(); code != 2 {
		t.Errorf("no command: %d", code)
	}
	if code, _, errOut := runCLI("nope"); code != 2 || !strings.Contains(errOut, "unknown command") {
		t.Errorf("unknown command: %d %s", code, errOut)
	}
	for _, c := range commands() {
		code, _, errOut := runCLI(c.name, "-h")
		if code != 0 || !strings.Contains(errOut, "Usage:\n  producerd "+c.name) {
			t.Errorf("%s -h: %d\n%s", c.name, code, errOut)
		}
		if !c.hidden && !strings.Contains(errOut, "Examples:\n  producerd "+c.name) {
			t.Errorf("%s -h has no examples:\n%s", c.name, errOut)
		}
	}
	if code, out, _ := runCLI("version"); code != 0 || !strings.HasPrefix(out, "producerd ") {
		t.Errorf("version: %d %s", code, out)
	}
}

func TestValidate(t *testing.T) {
	t.Parallel()
	if code, out, errOut := runCLI("validate", "-c", "../../producer.toml"); code != 0 || !strings.Contains(out, "ok") {
		t.Fatalf("validate producer.toml: %d %s %s", code, out, errOut)
	}
	bad := filepath.Join(t.TempDir(), "bad.toml")
	if err := os.WriteFile(bad, []byte("[client]\nname_servers = [\"127.0.0.1:9876\"]\n\n[[producer]]\ngroup = \"g\"\nretries = \"3\"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	code, _, errOut := runCLI("validate", bad)
	if code != 1 || !strings.Contains(errOut, bad+":6: key producer[0].retries: expected an integer") {
		t.Fatalf("validate bad.toml: %d %s", code, errOut)
	}
}

func TestParseInterspersed(t *testing.T) {
	t.Parallel()
	fs := newFlags(&env{stderr: io.Discard}, "x", "", "", "")
	tags := fs.String("tags", "", "")
	pos, _, ok := parse(fs, []string{"TopicTest", "-tags", "a", "body", "--", "-dash"})
	if !ok || *tags != "a" || strings.Join(pos, "|") != "TopicTest|body|-dash" {
		t.Fatalf("parse = %v %q %v", pos, *tags, ok)
	}
}

// buildBinary builds producerd into a temporary directory.
func buildBinary(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "producerd")
	cmd := exec.Command("go", "build", "-o", bin, ".")
	cmd.Stderr = os.Stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("go build: %v", err)
	}
	return bin
}

// TestDevAndCLI builds the binary, starts `producerd dev` on free ports and drives it
// with the CLI and HTTP, then stops it with SIGTERM.
func TestDevAndCLI(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary")
	}
	bin := buildBinary(t)
	dev := exec.Command(bin, "dev", "-grpc", "127.0.0.1:0", "-http", "127.0.0.1:0", "-admin", "127.0.0.1:0", "-namesrv", "127.0.0.1:0", "-log-level", "warn")
	addrs, exited := startDev(t, dev)
	grpcAddr, httpAddr, adminAddr, ns := addrs["ingress gRPC"], addrs["ingress HTTP"], addrs["admin"], addrs["dev NameServer"]
	if grpcAddr == "" || httpAddr == "" || adminAddr == "" || ns == "" {
		t.Fatalf("addresses: %v", addrs)
	}

	cli := func(stdin string, args ...string) string {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		defer cancel()
		cmd := exec.CommandContext(ctx, bin, args...)
		cmd.Stdin = strings.NewReader(stdin)
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("producerd %v: %v\n%s", args, err, out)
		}
		return string(out)
	}
	if out := cli("", "send", "-addr", grpcAddr, "-tags", "t", "-keys", "a,b", "-p", "k=v", "TopicTest", "hello"); !strings.HasPrefix(out, "SEND_OK msgId=") {
		t.Fatalf("send: %s", out)
	}
	if out := cli("", "send", "-addr", grpcAddr, "-after", "2s", "-sharding-key", "order-1", "TopicTest", "later"); !strings.HasPrefix(out, "SEND_OK msgId=") {
		t.Fatalf("send -after: %s", out)
	}
	if out := cli("from stdin", "send", "-addr", grpcAddr, "-json", "orders"); !strings.Contains(out, `"msg_id"`) {
		t.Fatalf("send from stdin: %s", out)
	}
	resp, err := http.Post("http://"+httpAddr+"/v1/messages", "application/json", strings.NewReader(`{"topic":"TopicTest","body":"hello","keys":["k1"]}`))
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.Contains(string(body), `"status": "SEND_OK"`) {
		t.Fatalf("curl: %d %s", resp.StatusCode, body)
	}
	if out := cli("", "status", "-admin", adminAddr); !strings.Contains(out, "group producerd  strategy latency") || !strings.Contains(out, "route  TopicTest") {
		t.Fatalf("status: %s", out)
	}
	if out := cli("", "strategy", "list", "-admin", adminAddr); !strings.Contains(out, "active in producerd") {
		t.Fatalf("strategy list: %s", out)
	}
	if out := cli("", "strategy", "swap", "rr", "-admin", adminAddr); !strings.Contains(out, "group producerd: latency -> rr") {
		t.Fatalf("strategy swap: %s", out)
	}
	if out := cli("", "bench", "-addr", grpcAddr, "-n", "300", "-d", "60s", "TopicTest"); !strings.Contains(out, "summary: 300 ok, 0 errors") {
		t.Fatalf("bench: %s", out)
	}
	if out := cli("", "bench", "-addr", grpcAddr, "-mode", "unary", "-n", "50", "-d", "60s", "TopicTest"); !strings.Contains(out, "summary: 50 ok, 0 errors") {
		t.Fatalf("bench unary: %s", out)
	}
	if out := cli("", "topic", "create", "-admin", adminAddr, "-queues", "2", "ViaDaemon"); strings.Count(out, "created ViaDaemon on broker-") != 2 {
		t.Fatalf("topic create: %s", out)
	}
	if out := cli("", "topic", "create", "-namesrv", ns, "Direct"); strings.Count(out, "created Direct on broker-") != 2 {
		t.Fatalf("topic create -namesrv: %s", out)
	}
	if out := cli("", "reload", "-admin", adminAddr); !strings.Contains(out, "reloaded") {
		t.Fatalf("reload: %s", out)
	}

	// Graceful stop: SIGTERM, exit status 0.
	if err := syscall.Kill(dev.Process.Pid, syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-exited:
		exited <- err
		if err != nil {
			t.Fatalf("dev exited with %v after SIGTERM", err)
		}
	case <-time.After(60 * time.Second):
		t.Fatal("dev did not exit after SIGTERM")
	}
}
