package rmqv2_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/producerd/producerd/internal/rmqtest"
	"github.com/producerd/producerd/internal/rmqtest/readback"
	"github.com/producerd/producerd/internal/testwait"
)

// benchResult is the RESULT line of testinfra/rmqv2-java's Bench.
type benchResult struct {
	OK     int64     `json:"ok"`
	Failed int64     `json:"failed"`
	Secs   float64   `json:"secs"`
	P50    float64   `json:"p50_ms"`
	P99    float64   `json:"p99_ms"`
	Max    float64   `json:"max_ms"`
	Slow   [][]int64 `json:"slow"` // start epoch ms, latency ms, 1 = ok
}

// target is one apache.rocketmq.v2 endpoint under comparison and its process.
type target struct {
	name, endpoint string
	pid            int
	stop           func()
}

// TestCompareWithProxy runs the official Java SDK's load against producerd's
// apache.rocketmq.v2 endpoint and against the Apache RocketMQ Proxy 5.3.3 (cluster mode),
// same brokers, 1 KiB bodies: sync with 1 and 64 senders, async with 1024 in flight, and
// sync with 16 senders while broker-b is SIGSTOPped for 10 s. It prints a markdown table
// (msgs/s, p50/p99, CPU per message and peak RSS of each server process, failed sends,
// time to avoid broker-b). It takes about 4 minutes and the cluster exclusively, so it runs
// only with PRODUCERD_RMQV2_COMPARE=1; PRODUCERD_RMQV2_RESULTS=FILE also writes the table
// there.
func TestCompareWithProxy(t *testing.T) {
	if os.Getenv("PRODUCERD_RMQV2_COMPARE") == "" {
		t.Skip("set PRODUCERD_RMQV2_COMPARE=1 (or a comma list of sync-1,sync-64,async-1024,failover) to compare producerd with the Apache RocketMQ Proxy (about 4 minutes)")
	}
	c := rmqtest.RequireExclusive(t)
	cp := javaClasspath(t)
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Minute)
	defer cancel()
	rc := readback.Client(t)
	createTopic(t, ctx, c, rc, itTopic)
	px := startProxy(t, ctx, c.NameServer)

	type row struct {
		scenario, target string
		r                benchResult
		cpuPerMsg        float64 // µs, server
		clientCPU        float64 // µs, the SDK's process
		avoid            string
	}
	var rows []row
	run := func(scenario, mode string, conc, secs int, tg *target, during func()) benchResult {
		cmd := exec.CommandContext(ctx, "java", "-Xms256m", "-Xmx512m", "-cp", cp, "io.producerd.rmqv2.Bench",
			tg.endpoint, itTopic, mode, strconv.Itoa(conc), strconv.Itoa(secs), "1024", "3")
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		stdout, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		duringDone := make(chan struct{})
		go func() {
			defer close(duringDone)
			if during != nil {
				during()
			}
		}()
		var (
			r                    benchResult
			start, end           int64
			clientStart, clientE int64
		)
		for sc := bufio.NewScanner(stdout); sc.Scan(); {
			switch line := sc.Text(); {
			case line == "MARK start":
				start, clientStart = cpuTicks(tg.pid), statTicks(cmd.Process.Pid)
			case line == "MARK end":
				end, clientE = cpuTicks(tg.pid), statTicks(cmd.Process.Pid)
			case strings.HasPrefix(line, "RESULT "):
				if err := json.Unmarshal([]byte(strings.TrimPrefix(line, "RESULT ")), &r); err != nil {
					t.Error(err)
				}
			}
		}
		werr := cmd.Wait()
		<-duringDone
		if werr != nil {
			t.Fatalf("%s against %s: %v\n%s", scenario, tg.name, werr, stderr.Bytes())
		}
		rows = append(rows, row{scenario: scenario, target: tg.name, r: r,
			cpuPerMsg: float64(end-start) * 1e4 / float64(max(1, r.OK)),
			clientCPU: float64(clientE-clientStart) * 1e4 / float64(max(1, r.OK))})
		return r
	}
	brokerB := c.Broker(t, "broker-b")
	t.Cleanup(func() { _ = syscall.Kill(brokerB.PID, syscall.SIGCONT) })
	failover := func(tg *target) {
		var stopAt, contAt time.Time
		var sigErr error
		r := run("sync-16, broker-b SIGSTOP 10 s", "sync", 16, 20, tg, func() {
			testwait.Pause(6 * time.Second) // JVM start and warm-up, then 3 s of steady load
			stopAt = time.Now()
			sigErr = syscall.Kill(brokerB.PID, syscall.SIGSTOP)
			testwait.Pause(10 * time.Second)
			if err := syscall.Kill(brokerB.PID, syscall.SIGCONT); sigErr == nil {
				sigErr = err
			}
			contAt = time.Now()
		})
		if sigErr != nil {
			t.Fatalf("SIGSTOP/SIGCONT broker-b (pid %d): %v", brokerB.PID, sigErr)
		}
		// Time to avoid broker-b: from the stop to the start of the last send that began
		// while broker-b was stopped and was slow (> 500 ms) or failed.
		var last time.Duration
		for _, s := range r.Slow {
			at := time.UnixMilli(s[0])
			if at.After(stopAt) && at.Before(contAt) && at.Sub(stopAt) > last {
				last = at.Sub(stopAt)
			}
		}
		rows[len(rows)-1].avoid = fmt.Sprintf("%.1f s", last.Seconds())
	}

	// producerd as the bench harness runs it: round-robin for throughput, latency-fault
	// (preset rocketmq5) for the failover; the Proxy at its defaults (round-robin).
	pd := startProducerd(t, ctx, c.NameServer, "rr")
	targets := []*target{pd, px}
	for _, sc := range []struct {
		name, mode string
		conc       int
	}{{"sync-1", "sync", 1}, {"sync-64", "sync", 64}, {"async-1024", "async", 1024}} {
		if !selected(sc.name) {
			continue
		}
		for _, tg := range targets {
			run(sc.name, sc.mode, sc.conc, 10, tg, nil)
		}
	}
	rss := map[string]int64{pd.name + " (round-robin)": peakRSS(pd.pid)}
	pd.stop()
	if selected("failover") {
		pdl := startProducerd(t, ctx, c.NameServer, "latency")
		pdl.name += " (latency-fault)"
		for _, tg := range []*target{pdl, px} {
			failover(tg)
		}
		rss[pdl.name] = peakRSS(pdl.pid)
	}
	rss[px.name] = peakRSS(px.pid)

	var tb strings.Builder
	tb.WriteString("| scenario | server | msgs/s | p50 ms | p99 ms | max ms | failed | server CPU µs/msg | SDK client CPU µs/msg | time to avoid broker-b |\n")
	tb.WriteString("|---|---|---:|---:|---:|---:|---:|---:|---:|---|\n")
	for _, r := range rows {
		fmt.Fprintf(&tb, "| %s | %s | %.0f | %.2f | %.2f | %.0f | %d | %.1f | %.1f | %s |\n", r.scenario, r.target,
			float64(r.r.OK)/r.r.Secs, r.r.P50, r.r.P99, r.r.Max, r.r.Failed, r.cpuPerMsg, r.clientCPU, r.avoid)
	}
	for name, kib := range rss {
		fmt.Fprintf(&tb, "\npeak RSS %s: %d MiB", name, kib>>10)
	}
	t.Logf("producerd vs Apache RocketMQ Proxy 5.3.3, Java SDK 5.0.8, 1 KiB bodies:\n%s", tb.String())
	if path := os.Getenv("PRODUCERD_RMQV2_RESULTS"); path != "" {
		load, _ := os.ReadFile("/proc/loadavg")
		head := fmt.Sprintf("Run %s UTC by `TestCompareWithProxy` (internal/rmqv2), load average at the end %s\n\n",
			time.Now().UTC().Format("2006-01-02 15:04"), strings.Join(strings.Fields(string(load))[:3], " "))
		if err := os.WriteFile(path, []byte(head+tb.String()+"\n"), 0o644); err != nil {
			t.Error(err)
		}
	}
}

// selected reports whether PRODUCERD_RMQV2_COMPARE (1 = everything, else a comma list of
// sync-1, sync-64, async-1024, failover) selects a scenario.
func selected(name string) bool {
	v := os.Getenv("PRODUCERD_RMQV2_COMPARE")
	return v == "1" || strings.Contains(","+v+",", ","+name+",")
}

// startProducerd builds and runs `producerd run` with the v2 endpoint on a free port; its
// admin API (for /debug/pprof) listens on $PRODUCERD_RMQV2_ADMIN if set.
func startProducerd(t *testing.T, ctx context.Context, ns, strategy string) *target {
	t.Helper()
	dir := t.TempDir()
	bin := filepath.Join(dir, "producerd")
	build := exec.CommandContext(ctx, "go", "build", "-o", bin, "github.com/producerd/producerd/cmd/producerd")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	addr := freeAddr(t)
	cfg := filepath.Join(dir, "producer.toml")
	text := fmt.Sprintf(`
[daemon]
log_level = "warn"
max_inflight_messages = 100000

[ingress]
grpc = "127.0.0.1:0"
http = ""
rocketmq_grpc_listen = %q

[admin]
listen = %q

[client]
name_servers = [%q]
instance_name = "compare-rmqv2"

[strategy.rr]
plugin = "builtin:roundrobin"

[strategy.latency]
plugin = "builtin:latencyfault"

[strategy.latency.settings]
preset = "rocketmq5"
max_isolated_share = 0.5

[[producer]]
group = "compare_rmqv2"
strategy = %q
`, addr, os.Getenv("PRODUCERD_RMQV2_ADMIN"), ns, strategy)
	if err := os.WriteFile(cfg, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	return startProcess(t, "producerd", addr, exec.Command(bin, "run", "-c", cfg))
}

// startProxy runs the Apache RocketMQ Proxy 5.3.3 in cluster mode against ns.
func startProxy(t *testing.T, ctx context.Context, ns string) *target {
	t.Helper()
	cp := mavenClasspath(t, filepath.Join(javaDir(), "proxy"))
	home := t.TempDir()
	grpcAddr, remotingAddr := freeAddr(t), freeAddr(t)
	_, gport, _ := net.SplitHostPort(grpcAddr)
	_, rport, _ := net.SplitHostPort(remotingAddr)
	conf := filepath.Join(home, "rmq-proxy.json")
	text := fmt.Sprintf(`{"rocketMQClusterName":"ItCluster","namesrvAddr":%q,"proxyMode":"cluster","grpcServerPort":%s,"remotingListenPort":%s}`,
		ns, gport, rport)
	if err := os.WriteFile(conf, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("java", "-Xms256m", "-Xmx512m", "-Drocketmq.home.dir="+home, "-Duser.home="+home, "-cp", cp,
		"org.apache.rocketmq.proxy.ProxyStartup", "-pc", conf, "-pm", "cluster")
	return startProcess(t, "Apache RocketMQ Proxy 5.3.3", grpcAddr, cmd)
}

// startProcess starts cmd, stops it (by its pid) at the end of the test and waits until
// addr accepts connections.
func startProcess(t *testing.T, name, addr string, cmd *exec.Cmd) *target {
	t.Helper()
	var log bytes.Buffer
	cmd.Stdout, cmd.Stderr = &log, &log
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	stop := sync.OnceFunc(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-done:
		case <-time.After(20 * time.Second):
			_ = cmd.Process.Kill()
			<-done
		}
	})
	t.Cleanup(stop)
	if !testwait.Until(90*time.Second, func() bool {
		if conn, err := net.DialTimeout("tcp", addr, time.Second); err == nil {
			conn.Close()
			return true
		}
		select {
		case <-done:
			t.Fatalf("%s exited:\n%s", name, log.String())
		default:
		}
		return false
	}) {
		t.Fatalf("%s does not listen on %s", name, addr)
	}
	return &target{name: name, endpoint: addr, pid: cmd.Process.Pid, stop: stop}
}

func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// cpuTicks is utime+stime of pid and its direct children (producerd's strategy plugin),
// in clock ticks (1/100 s).
func cpuTicks(pid int) int64 {
	total := statTicks(pid)
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		child, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", child))
		if err != nil {
			continue
		}
		f := strings.Fields(string(b[bytes.LastIndexByte(b, ')')+2:]))
		if len(f) > 1 && f[1] == strconv.Itoa(pid) {
			total += statTicks(child)
		}
	}
	return total
}

func statTicks(pid int) int64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	// Fields after "(comm)": state ppid ... utime is the 12th, stime the 13th.
	f := strings.Fields(string(b[bytes.LastIndexByte(b, ')')+2:]))
	u, _ := strconv.ParseInt(f[11], 10, 64)
	s, _ := strconv.ParseInt(f[12], 10, 64)
	return u + s
}

// peakRSS is VmHWM of pid in KiB.
func peakRSS(pid int) int64 {
	b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			n, _ := strconv.ParseInt(strings.Fields(v)[0], 10, 64)
			return n
		}
	}
	return 0
}
