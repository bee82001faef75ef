package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/producerd/producerd/api/producerdpb"
	"github.com/producerd/producerd/devbroker"
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
	if code, _, errOut := runCLI("nope"); code != 2 || !strings.Contains(errOut, "unknown command") || strings.Count(errOut, "\n") != 1 {
		t.Errorf("unknown command: %d %s", code, errOut)
	}
	for _, c := range commands() {
		code, out, errOut := runCLI(c.name, "-h")
		if code != 0 || !strings.Contains(out, "Usage:\n  producerd "+c.name) || errOut != "" {
			t.Errorf("%s -h: %d\nstdout:\n%s\nstderr:\n%s", c.name, code, out, errOut)
		}
		if !c.hidden && !strings.Contains(out, "Examples:\n  producerd "+c.name) {
			t.Errorf("%s -h has no examples:\n%s", c.name, out)
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
	// -free-ports: every listener on a free port, printed (the defaults may be taken here).
	dev := exec.Command(bin, "dev", "-free-ports", "-log-level", "warn", "-log-format", "json")
	addrs, exited := startDev(t, dev)
	grpcAddr, httpAddr, adminAddr, ns := addrs["ingress gRPC"], addrs["ingress HTTP"], addrs["admin"], addrs["dev NameServer"]
	if grpcAddr == "" || httpAddr == "" || adminAddr == "" || ns == "" {
		t.Fatalf("addresses: %v", addrs)
	}
	for _, a := range []string{grpcAddr, httpAddr, adminAddr, ns} {
		if strings.HasSuffix(a, ":7380") || strings.HasSuffix(a, ":7381") || strings.HasSuffix(a, ":7390") || strings.HasSuffix(a, ":9876") {
			t.Errorf("-free-ports listens on a default port: %v", addrs)
		}
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
	if out := cli("", "status", "-admin", adminAddr); !regexp.MustCompile(`\nproducerd +latency +builtin:latencyfault +1 `).MatchString(out) || !regexp.MustCompile(`\nTopicTest +\d+ +broker-a:4 broker-b:4\n`).MatchString(out) {
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

// TestUsageErrors: a wrong command line exits 2 with one line on stderr that names the
// problem and points to -h, and nothing on stdout.
func TestUsageErrors(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"send"}, "missing TOPIC"},
		{[]string{"send", "T", "a", "b"}, "TOPIC [BODY] expected"},
		{[]string{"send", "-nope", "T"}, "flag provided but not defined: -nope"},
		{[]string{"bench"}, "missing TOPIC"},
		{[]string{"bench", "-mode", "x", "T"}, `-mode "x"`},
		{[]string{"strategy"}, "missing list or swap"},
		{[]string{"strategy", "swap"}, "swap takes one strategy NAME"},
		{[]string{"strategy", "drop"}, `unknown subcommand "drop"`},
		{[]string{"topic", "create"}, "missing TOPIC"},
		{[]string{"simulate"}, "missing -scenario FILE"},
		{[]string{"validate", "a.toml", "b.toml"}, "one config FILE expected"},
		{[]string{"run", "-log-format", "xml"}, `-log-format "xml"`},
		{[]string{"completion", "fish"}, `unknown shell "fish"`},
		{[]string{"status", "-timeout", "soon"}, "invalid value"},
	} {
		code, out, errOut := runCLI(tc.args...)
		name := strings.Join(tc.args, " ")
		cmd := tc.args[0]
		if code != 2 || out != "" || strings.Count(errOut, "\n") != 1 ||
			!strings.Contains(errOut, tc.want) || !strings.HasSuffix(errOut, "(run 'producerd "+cmd+" -h' for usage)\n") {
			t.Errorf("%s: exit %d\nstdout: %q\nstderr: %q\nwant exit 2 and one line with %q", name, code, out, errOut, tc.want)
		}
	}
}

func TestBenchCount(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		args      []string
		limitless bool
	}{
		{nil, false},
		{[]string{"-d", "10s"}, true},
		{[]string{"-d", "10s", "-n", "5"}, false},
		{[]string{"-n", "5"}, false},
	} {
		fs := newFlags(&env{stdout: io.Discard, stderr: io.Discard}, "bench", "", "", "")
		n := fs.Int("n", 100000, "")
		fs.Duration("d", 30*time.Second, "")
		if _, _, ok := parse(fs, tc.args); !ok {
			t.Fatal(tc.args)
		}
		if got := benchCount(fs, *n); (got > 1<<40) != tc.limitless {
			t.Errorf("%v: budget %d, want limitless=%v", tc.args, got, tc.limitless)
		}
	}
}

func TestStatusTable(t *testing.T) {
	t.Parallel()
	st := &producerdpb.StatusResponse{Version: "v1.2.3", Pid: 42, Ready: true,
		Inflight: &producerdpb.Inflight{Messages: 3, MaxMessages: 1000, Bytes: 2048, MaxBytes: 64 << 20},
		Clients: []*producerdpb.ClientStatus{{ClientId: "c1", Groups: []string{"g1", "g2"},
			Brokers: []*producerdpb.Broker{{Name: "broker-a", Addr: "127.0.0.1:10911"}},
			Routes: []*producerdpb.Route{{Topic: "TopicTest", Version: 3, Queues: []*producerdpb.Queue{
				{Broker: "broker-b", Id: 0}, {Broker: "broker-a", Id: 0}, {Broker: "broker-a", Id: 1}}}}}},
		Groups: []*producerdpb.GroupStatus{{Group: "g1", Strategy: &producerdpb.StrategyStatus{Name: "rr", Plugin: "roundrobin", Generation: 2, State: "running",
			Plugins: []*producerdpb.PluginProcess{{Name: "roundrobin", Pid: 77, Users: 3, Restarts: 1, State: "running"}}}}}}
	var b strings.Builder
	printStatus(&b, st)
	out := b.String()
	for _, want := range []string{"version    v1.2.3\n", "in flight  3 of 1000 messages, 2.0 KiB of 64.0 MiB",
		"ROUTE      VERSION  QUEUES\nTopicTest  3        broker-a:2 broker-b:1",
		"GROUP  STRATEGY  PLUGIN      GENERATION  STATE\ng1     rr        roundrobin  2           running",
		"PLUGIN      PID  USERS  RESTARTS  STATE\nroundrobin  77   3      1         running"} {
		if !strings.Contains(out, want) {
			t.Errorf("status lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "map[") || strings.Contains(out, "[g1") {
		t.Errorf("Go syntax in the status:\n%s", out)
	}
}

// TestCompletionBash: the bash script completes command names and, through the
// binary's -h, a command's flags.
func TestCompletionBash(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary")
	}
	bashPath, err := exec.LookPath("bash")
	if err != nil {
		t.Skip("no bash")
	}
	bin := buildBinary(t)
	script := `source <("$BIN" completion bash)
COMP_WORDS=("$BIN" st); COMP_CWORD=1; _producerd; echo "${COMPREPLY[*]}"
COMP_WORDS=("$BIN" bench -d); COMP_CWORD=2; _producerd; echo "${COMPREPLY[*]}"
COMP_WORDS=("$BIN" run -log); COMP_CWORD=2; _producerd; echo "${COMPREPLY[*]}"`
	cmd := exec.Command(bashPath, "-c", script)
	cmd.Env = append(os.Environ(), "BIN="+bin)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	if got, want := string(out), "status strategy\n-d\n-log-format -log-level\n"; got != want {
		t.Fatalf("completions:\n%q\nwant\n%q", got, want)
	}
	var zsh bytes.Buffer
	if code := run(&env{stdout: &zsh, stderr: io.Discard}, []string{"completion", "zsh"}); code != 0 || !strings.Contains(zsh.String(), "compadd -- run validate send") {
		t.Fatalf("zsh script: %d\n%s", code, zsh.String())
	}
}

func TestPortHint(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	_, err = net.Listen("tcp", ln.Addr().String())
	if h := portHint(fmt.Errorf("dev: %w", err), "-namesrv"); !strings.Contains(h, "-namesrv ADDR") || !strings.Contains(h, "-free-ports") {
		t.Fatalf("hint for %v: %q", err, h)
	}
	if h := portHint(errors.New("other"), "-namesrv"); h != "" {
		t.Fatalf("hint for another error: %q", h)
	}
}

// TestValidatePrint: validate -print shows each key with its value and source,
// environment overrides included.
func TestValidatePrint(t *testing.T) {
	t.Setenv("PRODUCERD_CLIENT_NAME_SERVERS", "10.0.0.1:9876,10.0.0.2:9876")
	code, out, errOut := runCLI("validate", "-print", "-c", "../../producer.toml")
	if code != 0 {
		t.Fatalf("%d %s", code, errOut)
	}
	for _, re := range []string{
		`(?m)^client\.name_servers = \["10\.0\.0\.1:9876", "10\.0\.0\.2:9876"\] +# env PRODUCERD_CLIENT_NAME_SERVERS$`,
		`(?m)^daemon\.log_format = "text" +# \.\./\.\./producer\.toml:\d+$`,
		`(?m)^limits\.read_timeout = "1m0s" +# default$`,
	} {
		if !regexp.MustCompile(re).MatchString(out) {
			t.Errorf("validate -print lacks %s:\n%s", re, out)
		}
	}
}

// TestPrintProtoDialect: -json output is the HTTP APIs' dialect: numbers for int64,
// short enum names, zero values present; a oneway send prints null.
func TestPrintProtoDialect(t *testing.T) {
	t.Parallel()
	var b bytes.Buffer
	printProto(&b, &producerdpb.StatusResponse{Pid: 14454})
	for _, want := range []string{`"pid": 14454`, `"draining": false`, `"clients": []`} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("status -json lacks %s:\n%s", want, b.String())
		}
	}
	b.Reset()
	printProto(&b, &producerdpb.SendResult{})
	if !strings.Contains(b.String(), `"status": "SEND_OK"`) {
		t.Errorf("send -json: %s", b.String())
	}
	b.Reset()
	printProto(&b, (*producerdpb.SendResult)(nil))
	if b.String() != "null\n" {
		t.Errorf("oneway: %q", b.String())
	}
}

// startRun starts run (a `producerd run` command; the caller sets its Env and Stdin) and
// returns its stderr and a channel that yields its exit status once: a test that
// receives it puts it back, so that the cleanup sees the daemon gone. The cleanup stops
// a daemon still running (SIGTERM, SIGKILL after 30 s) and logs its stderr when the test
// failed.
func startRun(t *testing.T, run *exec.Cmd) (stderr *lockedBuffer, exited chan error) {
	t.Helper()
	stderr = new(lockedBuffer)
	run.Stderr = stderr
	if err := run.Start(); err != nil {
		t.Fatal(err)
	}
	exited = make(chan error, 1)
	go func() { exited <- run.Wait() }()
	t.Cleanup(func() {
		select {
		case <-exited:
		default:
			_ = syscall.Kill(run.Process.Pid, syscall.SIGTERM)
			select {
			case <-exited:
			case <-time.After(30 * time.Second):
				_ = syscall.Kill(run.Process.Pid, syscall.SIGKILL)
				<-exited
			}
		}
		if t.Failed() {
			t.Logf("producerd run stderr:\n%s", stderr.String())
		}
	})
	return stderr, exited
}

// linuxDaemonTest skips a test that builds the binary in -short mode and one that reads
// /proc off Linux, and starts a dev broker (broker-a, TopicTest with 2 queues) that
// closes when the test ends.
func linuxDaemonTest(t *testing.T) *devbroker.Cluster {
	t.Helper()
	if testing.Short() {
		t.Skip("builds the binary")
	}
	if runtime.GOOS != "linux" {
		t.Skip("reads /proc")
	}
	dev, err := devbroker.Start(context.Background(), devbroker.Config{Brokers: []string{"broker-a"}, Topics: map[string]int{"TopicTest": 2}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { dev.Close() })
	return dev
}
