package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	"github.com/producerd/producerd/api/producerdpb"
	"github.com/producerd/producerd/devbroker"
	"github.com/producerd/producerd/internal/testwait"
	"github.com/producerd/producerd/remoting"
)

// The memory attacks of issue 12 against the daemon binary, with its peak RSS (VmHWM)
// checked against a bound: max_inflight_bytes times attackFactor plus attackSlack over
// the RSS after start-up. CI runs them at reduced size; PRODUCERD_ATTACK_FULL=1 runs the
// issue's sizes (1M streamed messages, 16 × 31 MiB posts), PRODUCERD_ATTACK_BIN=PATH
// measures another binary (e.g. one built before the fix) and then only logs the figures.
const (
	attackInflightBytes = 16 << 20
	attackFactor        = 3
	attackSlack         = 64 << 20
)

type attackDaemon struct {
	t                 *testing.T
	pid               int
	grpc, http, admin string
	stderr            *lockedBuffer
	baseline          int64
	assert            bool
}

// startAttackDaemon runs `producerd run` against the NameServer ns.
func startAttackDaemon(t *testing.T, ns string) *attackDaemon {
	t.Helper()
	return startAttackDaemonLimited(t, ns, 0)
}

// startAttackDaemonLimited runs the daemon with a descriptor limit (ulimit -n) when
// nofile > 0.
func startAttackDaemonLimited(t *testing.T, ns string, nofile int) *attackDaemon {
	t.Helper()
	bin := os.Getenv("PRODUCERD_ATTACK_BIN")
	a := &attackDaemon{t: t, assert: bin == "", grpc: freeAddr(t), http: freeAddr(t), admin: freeAddr(t), stderr: &lockedBuffer{}}
	if bin == "" {
		bin = buildBinary(t)
	}
	cfg := filepath.Join(t.TempDir(), "producer.toml")
	text := fmt.Sprintf(`[daemon]
log_level = "warn"
max_inflight_bytes = %d
shutdown_timeout = "2s"
[ingress]
grpc = %q
http = %q
[admin]
listen = %q
token = "attack-token"
[client]
name_servers = [%q]
[[producer]]
group = "attack"
strategy = "roundrobin"
`, attackInflightBytes, a.grpc, a.http, a.admin, ns)
	if err := os.WriteFile(cfg, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "run", "-c", cfg)
	if nofile > 0 {
		cmd = exec.Command("bash", "-c", fmt.Sprintf("ulimit -n %d && exec \"$0\" run -c \"$1\"", nofile), bin, cfg)
	}
	cmd.Stderr = a.stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	a.pid = cmd.Process.Pid
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() {
		_ = syscall.Kill(a.pid, syscall.SIGKILL)
		<-exited
		if t.Failed() {
			t.Logf("daemon stderr:\n%s", a.stderr.String())
		}
	})
	var dialErr error
	if !testwait.Until(30*time.Second, func() bool {
		c, err := net.Dial("tcp", a.http)
		if err != nil {
			dialErr = err
			return false
		}
		c.Close()
		return true
	}) {
		t.Fatalf("the daemon did not listen: %v\n%s", dialErr, a.stderr.String())
	}
	a.baseline = a.rss("VmRSS")
	return a
}

// rss reads a /proc/PID/status field in bytes (VmRSS now, VmHWM the peak).
func (a *attackDaemon) rss(field string) int64 {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", a.pid))
	if err != nil {
		a.t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), field+":"); ok {
			kb, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			return kb << 10
		}
	}
	a.t.Fatalf("no %s in /proc/%d/status", field, a.pid)
	return 0
}

// check logs the peak RSS and fails over the bound (unless another binary is measured).
func (a *attackDaemon) check(what string) {
	peak := a.rss("VmHWM")
	bound := a.baseline + attackFactor*attackInflightBytes + attackSlack
	a.t.Logf("%s: peak RSS %d MiB (after start-up %d MiB; bound %d MiB)", what, peak>>20, a.baseline>>20, bound>>20)
	if a.assert && peak > bound {
		a.t.Errorf("%s: peak RSS %d MiB over the bound %d MiB", what, peak>>20, bound>>20)
	}
}

func attackFull() bool { return os.Getenv("PRODUCERD_ATTACK_FULL") == "1" }

func attackCluster(t *testing.T) *devbroker.Cluster {
	t.Helper()
	c, err := devbroker.Start(context.Background(), devbroker.Config{Brokers: []string{"broker-a"}, Topics: map[string]int{"TopicTest": 4}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// waitStalled waits until counter stops moving (the daemon stopped taking what the
// attacker sends) or reaches n.
func waitStalled(counter *atomic.Int64, n int64) {
	last := int64(-1)
	for still := 0; still < 4; {
		testwait.Pause(250 * time.Millisecond) // a window of real time: did the counter move in it?
		cur := counter.Load()
		if cur >= n {
			return
		}
		if cur == last {
			still++
		} else {
			still = 0
		}
		last = cur
	}
}

// TestAttackNeverReadingStream: a client streams messages and never reads an ack.
func TestAttackNeverReadingStream(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary")
	}
	c := attackCluster(t)
	a := startAttackDaemon(t, c.NameServerAddr())
	n := int64(100_000)
	if attackFull() {
		n = 1_000_000
	}
	cc, err := grpc.NewClient(a.grpc, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer cc.Close()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	st, err := producerdpb.NewIngressClient(cc).SendStream(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var sent atomic.Int64
	body := []byte(strings.Repeat("x", 1024))
	go func() {
		for i := range n {
			if st.Send(&producerdpb.StreamRequest{Id: strconv.FormatInt(i, 10), Message: &producerdpb.Message{Topic: "TopicTest", Body: body}}) != nil {
				return
			}
			sent.Add(1)
		}
	}()
	waitStalled(&sent, n)
	t.Logf("%d of %d messages taken by the daemon before it stopped reading", sent.Load(), n)
	a.check(fmt.Sprintf("never-reading stream (%d messages of 1 KiB)", n))
}

// repeatReader yields n bytes of a JSON message with a huge body.
func hugeBody(n int64) io.Reader {
	head := `{"topic":"TopicTest","body":"`
	return io.MultiReader(strings.NewReader(head), io.LimitReader(repeatByte('x'), n-int64(len(head))-2), strings.NewReader(`"}`))
}

type repeatByte byte

func (r repeatByte) Read(p []byte) (int, error) {
	for i := range p {
		p[i] = byte(r)
	}
	return len(p), nil
}

// TestAttackHugePosts: 16 parallel 31 MiB HTTP posts, with and without Content-Length.
func TestAttackHugePosts(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary")
	}
	c := attackCluster(t)
	a := startAttackDaemon(t, c.NameServerAddr())
	const size = 31 << 20
	parallel := 16
	for _, chunked := range []bool{false, true} {
		var wg sync.WaitGroup
		codes := make(chan int, parallel)
		for range parallel {
			wg.Go(func() {
				req, _ := http.NewRequest("POST", "http://"+a.http+"/v1/messages", hugeBody(size))
				// A JSON post, so that the body is really read (without the type it is
				// refused with 415 before any byte of it).
				req.Header.Set("Content-Type", "application/json")
				if !chunked {
					req.ContentLength = size
				}
				resp, err := http.DefaultClient.Do(req)
				if err != nil {
					codes <- -1
					return
				}
				resp.Body.Close()
				codes <- resp.StatusCode
			})
		}
		wg.Wait()
		close(codes)
		var got []int
		for c := range codes {
			got = append(got, c)
		}
		t.Logf("chunked=%v: answers %v; peak RSS so far %d MiB", chunked, got, a.rss("VmHWM")>>20)
		for _, code := range got {
			if code != http.StatusRequestEntityTooLarge && code != http.StatusTooManyRequests && code != -1 {
				t.Errorf("chunked=%v: answer %d to a 31 MiB post, want 413, 429 (budget spent) or the connection closed", chunked, code)
			}
		}
	}
	a.check(fmt.Sprintf("%d parallel 31 MiB posts, with and without Content-Length", parallel))
}

// TestAttackHugeGRPC: 8 parallel 31 MiB gRPC sends, refused at the frame's length
// prefix (limits.max_request_size) before the daemon buffers them.
func TestAttackHugeGRPC(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary")
	}
	c := attackCluster(t)
	a := startAttackDaemon(t, c.NameServerAddr())
	const size = 31 << 20
	cc, err := grpc.NewClient(a.grpc, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer cc.Close()
	ic := producerdpb.NewIngressClient(cc)
	big := make([]byte, size)
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for range 8 {
		wg.Go(func() {
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			_, err := ic.Send(ctx, &producerdpb.SendRequest{Message: &producerdpb.Message{Topic: "TopicTest", Body: big}})
			errs <- err
		})
	}
	wg.Wait()
	close(errs)
	var got []string
	for err := range errs {
		got = append(got, status.Code(err).String())
	}
	t.Logf("gRPC: answers %v", got)
	a.check("8 parallel 31 MiB gRPC sends")
}

// TestAttackFloodingNameServer: the NameServer the daemon connects to floods it with
// requests and never reads the replies.
func TestAttackFloodingNameServer(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary")
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	frame, err := remoting.AppendFrame(nil, &remoting.Command{Code: int32(remoting.NotifyConsumerIDsChanged), Remark: strings.Repeat("r", 64)}, remoting.JSON)
	if err != nil {
		t.Fatal(err)
	}
	batch := make([]byte, 0, 1024*len(frame))
	for range 1024 {
		batch = append(batch, frame...)
	}
	limit := int64(256 << 20) // bytes of requests per connection at most
	var written atomic.Int64
	var wg sync.WaitGroup
	stop := make(chan struct{})
	defer func() {
		close(stop)
		ln.Close()
		wg.Wait()
	}()
	wg.Go(func() {
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			wg.Go(func() {
				defer conn.Close()
				go func() { <-stop; conn.Close() }()
				for n := int64(0); n < limit; n += int64(len(batch)) {
					if _, err := conn.Write(batch); err != nil {
						return
					}
					written.Add(int64(len(batch)))
				}
			})
		}
	})
	a := startAttackDaemon(t, ln.Addr().String())
	// A send makes the daemon ask the NameServer for a route (it also probes at start).
	go func() {
		cl := &http.Client{Timeout: 5 * time.Second}
		if resp, err := cl.Post("http://"+a.http+"/v1/messages", "application/json", strings.NewReader(`{"topic":"TopicTest","body":"x"}`)); err == nil {
			resp.Body.Close()
		}
	}()
	waitStalled(&written, 4*limit)
	t.Logf("%d MiB of requests written before the daemon stopped taking them", written.Load()>>20)
	a.check("a NameServer flooding requests without reading")
}

// TestAttackSlowConnections: with a 256-descriptor limit, 300 clients that open an HTTP
// connection and send half a request header must not stop other clients' sends
// (finding 5).
func TestAttackSlowConnections(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary")
	}
	c := attackCluster(t)
	a := startAttackDaemonLimited(t, c.NameServerAddr(), 256)
	var conns []net.Conn
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	for range 300 {
		conn, err := net.Dial("tcp", a.http)
		if err != nil {
			t.Fatal(err)
		}
		conns = append(conns, conn)
		_, _ = conn.Write([]byte("POST /v1/messages HTTP/1.1\r\nHost: x\r\n"))
	}
	cc, err := grpc.NewClient(a.grpc, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer cc.Close()
	ic := producerdpb.NewIngressClient(cc)
	for i := range 20 {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		_, err := ic.Send(ctx, &producerdpb.SendRequest{Message: &producerdpb.Message{Topic: "TopicTest", Body: []byte(fmt.Sprint("m", i))}})
		cancel()
		if err != nil {
			t.Fatalf("send %d with 300 stalled HTTP connections: %v", i, err)
		}
	}
}
