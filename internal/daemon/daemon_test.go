package daemon

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/producerd/producerd/api/producerdpb"
	"github.com/producerd/producerd/devbroker"
	"github.com/producerd/producerd/internal/builtin"
	"github.com/producerd/producerd/internal/config"
	"github.com/producerd/producerd/internal/testwait"
)

// TestMain lets the test binary serve the built-in strategies as plugins: the daemon
// under test starts "<test binary> plugin NAME", as it starts "producerd plugin NAME".
func TestMain(m *testing.M) {
	if len(os.Args) >= 3 && os.Args[1] == "plugin" {
		if err := builtin.Serve(os.Args[2]); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

const testTopic = "TopicTest"

const testToken = "s3cret-token"

// configText is a daemon config against the dev broker at ns, every listener on a free
// port.
func configText(ns, instance, strategy string, maxInflight int) string {
	return fmt.Sprintf(`
[daemon]
log_level = "debug"
shutdown_timeout = "10s"
max_inflight_messages = %d

[ingress]
grpc = "127.0.0.1:0"
http = "127.0.0.1:0"

[admin]
listen = "127.0.0.1:0"
token = %q

[client]
name_servers = [%q]
instance_name = %q
heartbeat = "100ms"

[strategy.latency]
plugin = "builtin:latencyfault"
settings = { preset = "rocketmq5" }

[strategy.rr]
plugin = "builtin:roundrobin"

[[producer]]
group = "g1"
strategy = %q
`, maxInflight, testToken, ns, instance, strategy)
}

// syncBuffer collects the daemon's log; it is printed when a test fails.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

type harness struct {
	t       *testing.T
	cluster *devbroker.Cluster
	d       *Daemon
	cfgPath string
	log     *syncBuffer

	grpcAddr, httpAddr, adminAddr string
	ingress                       producerdpb.IngressClient
	admin                         producerdpb.AdminClient
	health                        healthpb.HealthClient
	stopped                       bool
}

func startCluster(t *testing.T) *devbroker.Cluster {
	t.Helper()
	c, err := devbroker.Start(context.Background(), devbroker.Config{
		Brokers: []string{"broker-a", "broker-b"}, Topics: map[string]int{testTopic: 4}, AutoCreate: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// start runs a daemon with the config text written to a file (for reloads).
func start(t *testing.T, c *devbroker.Cluster, strategy string, maxInflight int) *harness {
	t.Helper()
	return startText(t, c, configText(c.NameServerAddr(), instanceName(t), strategy, maxInflight))
}

func instanceName(t *testing.T) string {
	return strings.NewReplacer("/", "-", " ", "-").Replace(t.Name())
}

// startText runs a daemon in front of the dev cluster c with the config text.
func startText(t *testing.T, c *devbroker.Cluster, text string) *harness {
	t.Helper()
	h := startDaemon(t, text, hclog.Debug)
	h.cluster = c
	return h
}

// startDaemon runs a daemon with the config text, written to a file (for reloads), whose
// [client] names the NameServer: the dev cluster's or the real one's. It logs at level
// into h.log, printed when the test fails, and is shut down at the end of the test
// unless the test did (h.stopped). Each with adjusts the daemon's options.
func startDaemon(t *testing.T, text string, level hclog.Level, with ...func(*Options)) *harness {
	t.Helper()
	h := &harness{t: t, log: &syncBuffer{}}
	h.cfgPath = filepath.Join(t.TempDir(), "producer.toml")
	h.write(text)
	cfg, err := config.Load(h.cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	logger := hclog.New(&hclog.LoggerOptions{Level: level, Output: h.log})
	opts := Options{Config: cfg, Logger: logger, PluginCommand: []string{os.Args[0], "plugin"}}
	for _, w := range with {
		w(&opts)
	}
	d, err := New(opts)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if err := d.Start(ctx); err != nil {
		t.Fatal(err)
	}
	h.d = d
	t.Cleanup(func() {
		if !h.stopped {
			_ = d.Shutdown(context.Background())
		}
		if t.Failed() {
			lines := strings.Split(h.log.String(), "\n")
			if len(lines) > 200 {
				lines = lines[len(lines)-200:]
			}
			t.Logf("daemon log (last lines):\n%s", strings.Join(lines, "\n"))
		}
	})
	h.grpcAddr, h.httpAddr, h.adminAddr = d.Addrs()
	h.ingress = producerdpb.NewIngressClient(h.dial(h.grpcAddr))
	ac := h.dial(h.adminAddr)
	h.admin = producerdpb.NewAdminClient(ac)
	h.health = healthpb.NewHealthClient(ac)
	return h
}

func (h *harness) write(text string) {
	h.t.Helper()
	if err := os.WriteFile(h.cfgPath, []byte(text), 0o600); err != nil {
		h.t.Fatal(err)
	}
}

func (h *harness) dial(addr string) *grpc.ClientConn {
	h.t.Helper()
	cc, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		h.t.Fatal(err)
	}
	h.t.Cleanup(func() { cc.Close() })
	return cc
}

func adminCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+testToken)
}

func callCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// stored returns the stored messages of topic on every broker by UNIQ_KEY.
func stored(c *devbroker.Cluster, topic string) map[string]devbroker.Message {
	out := map[string]devbroker.Message{}
	for _, b := range c.Brokers() {
		for _, m := range b.Messages(topic) {
			out[m.UniqKey()] = m
		}
	}
	return out
}

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	testwait.For(t, 20*time.Second, what, cond)
}

// pluginChildren lists the child processes of this test process (the plugins).
func pluginChildren() []int {
	entries, _ := os.ReadDir("/proc")
	me := os.Getpid()
	var out []int
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile(filepath.Join("/proc", e.Name(), "stat"))
		if err != nil {
			continue
		}
		// pid (comm) state ppid ...
		s := string(b)
		i := strings.LastIndexByte(s, ')')
		if i < 0 {
			continue
		}
		f := strings.Fields(s[i+1:])
		if len(f) >= 2 && f[1] == strconv.Itoa(me) && f[0] != "Z" {
			out = append(out, pid)
		}
	}
	return out
}

func TestSendAPIs(t *testing.T) {
	c := startCluster(t)
	h := start(t, c, "latency", 1000)
	ctx := callCtx(t)

	// Health.
	hr, err := h.health.Check(ctx, &healthpb.HealthCheckRequest{Service: "producerd.v1.Ingress"})
	if err != nil || hr.GetStatus() != healthpb.HealthCheckResponse_SERVING {
		t.Fatalf("health = %v, %v", hr, err)
	}

	t.Run("unary", func(t *testing.T) {
		resp, err := h.ingress.Send(ctx, &producerdpb.SendRequest{Message: &producerdpb.Message{
			Topic: testTopic, Body: []byte("hello"), Tags: "t1", Keys: []string{"k1", "k2"}, Properties: map[string]string{"a": "b"}}})
		if err != nil {
			t.Fatal(err)
		}
		r := resp.GetResult()
		if r.GetMsgId() == "" || r.GetOffsetMsgId() == "" || r.GetBroker() == "" || r.GetStatus() != producerdpb.SendStatus_SEND_STATUS_SEND_OK {
			t.Fatalf("result = %v", r)
		}
		m, ok := stored(c, testTopic)[r.GetMsgId()]
		if !ok || string(m.Body) != "hello" || m.Tags() != "t1" || m.Properties["KEYS"] != "k1 k2" || m.Properties["a"] != "b" || m.QueueID != r.GetQueueId() {
			t.Fatalf("stored message = %+v (ok %v)", m, ok)
		}
	})
	t.Run("unary errors", func(t *testing.T) {
		for _, tc := range []struct {
			msg    *producerdpb.Message
			code   codes.Code
			reason string
		}{
			{&producerdpb.Message{Topic: "bad topic", Body: []byte("x")}, codes.InvalidArgument, "INVALID_MESSAGE"},
			{&producerdpb.Message{Topic: testTopic}, codes.InvalidArgument, "INVALID_MESSAGE"},
			{&producerdpb.Message{ProducerGroup: "nope", Topic: testTopic, Body: []byte("x")}, codes.InvalidArgument, "UNKNOWN_GROUP"},
		} {
			_, err := h.ingress.Send(ctx, &producerdpb.SendRequest{Message: tc.msg})
			st := status.Convert(err)
			if st.Code() != tc.code {
				t.Errorf("%v: code %v, want %v (%v)", tc.msg, st.Code(), tc.code, err)
				continue
			}
			var detail *producerdpb.Error
			for _, d := range st.Details() {
				detail, _ = d.(*producerdpb.Error)
			}
			if detail.GetReason() != tc.reason {
				t.Errorf("%v: detail %v, want reason %s", tc.msg, detail, tc.reason)
			}
		}
	})
	t.Run("oneway", func(t *testing.T) {
		resp, err := h.ingress.Send(ctx, &producerdpb.SendRequest{Message: &producerdpb.Message{
			Topic: testTopic, Body: []byte("oneway"), Mode: producerdpb.SendMode_SEND_MODE_ONEWAY}})
		if err != nil || resp.GetResult() != nil {
			t.Fatalf("oneway = %v, %v", resp, err)
		}
		waitFor(t, "the oneway message to be stored", func() bool {
			for _, m := range stored(c, testTopic) {
				if string(m.Body) == "oneway" {
					return true
				}
			}
			return false
		})
	})
	t.Run("stream", func(t *testing.T) {
		st, err := h.ingress.SendStream(ctx)
		if err != nil {
			t.Fatal(err)
		}
		const n = 300
		go func() {
			for i := range n {
				m := &producerdpb.Message{Topic: testTopic, Body: []byte("s" + strconv.Itoa(i))}
				if i == 7 {
					m.Topic = "bad topic" // acknowledged with an error, the stream goes on
				}
				if err := st.Send(&producerdpb.StreamRequest{Id: "id-" + strconv.Itoa(i), Message: m}); err != nil {
					return
				}
			}
			_ = st.CloseSend()
		}()
		acks := map[string]*producerdpb.StreamAck{}
		for {
			ack, err := st.Recv()
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				t.Fatal(err)
			}
			if _, dup := acks[ack.GetId()]; dup {
				t.Fatalf("two acks for %s", ack.GetId())
			}
			acks[ack.GetId()] = ack
		}
		if len(acks) != n {
			t.Fatalf("%d acks, want %d", len(acks), n)
		}
		store := stored(c, testTopic)
		for id, ack := range acks {
			if id == "id-7" {
				if ack.GetError().GetReason() != "INVALID_MESSAGE" {
					t.Errorf("ack of the bad message = %v", ack)
				}
				continue
			}
			r := ack.GetResult()
			if r == nil {
				t.Fatalf("ack %s = %v", id, ack)
			}
			m, ok := store[r.GetMsgId()]
			if !ok || "id-"+strings.TrimPrefix(string(m.Body), "s") != id {
				t.Fatalf("ack %s: stored %+v (%v)", id, m, ok)
			}
		}
	})
	t.Run("batch", func(t *testing.T) {
		resp, err := h.ingress.SendBatch(ctx, &producerdpb.SendBatchRequest{Topic: testTopic, Messages: []*producerdpb.Message{
			{Body: []byte("b0")}, {Body: []byte("b1"), Keys: []string{"bk"}}, {Body: []byte("b2")}}})
		if err != nil {
			t.Fatal(err)
		}
		if len(resp.GetResults()) != 3 {
			t.Fatalf("results = %v", resp.GetResults())
		}
		store := stored(c, testTopic)
		for i, r := range resp.GetResults() {
			m, ok := store[r.GetMsgId()]
			if !ok || string(m.Body) != "b"+strconv.Itoa(i) || m.QueueOffset != r.GetQueueOffset() {
				t.Errorf("batch message %d: result %v, stored %+v (%v)", i, r, m, ok)
			}
		}
	})
	t.Run("http", func(t *testing.T) {
		post := func(body string) (int, HTTPResponse) {
			resp, err := http.Post("http://"+h.httpAddr+"/v1/messages", "application/json", strings.NewReader(body))
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			var out HTTPResponse
			if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
				t.Fatal(err)
			}
			return resp.StatusCode, out
		}
		code, out := post(`{"topic":"TopicTest","body":"from curl","keys":["hk"],"properties":{"p":"v"}}`)
		if code != 200 || out.Result == nil {
			t.Fatalf("POST = %d %+v", code, out)
		}
		if m := stored(c, testTopic)[out.Result.MsgID]; string(m.Body) != "from curl" || m.Properties["p"] != "v" {
			t.Fatalf("stored %+v", m)
		}
		code, out = post(`{"topic":"TopicTest","body_base64":"AAEC/w=="}`)
		if code != 200 || !bytes.Equal(stored(c, testTopic)[out.Result.MsgID].Body, []byte{0, 1, 2, 255}) {
			t.Fatalf("base64 POST = %d %+v", code, out)
		}
		code, out = post(`{"topic":"TopicTest","messages":[{"body":"h0"},{"body":"h1"}]}`)
		if code != 200 || len(out.Results) != 2 {
			t.Fatalf("batch POST = %d %+v", code, out)
		}
		for _, tc := range []struct {
			body string
			code int
		}{
			{`{"topic":"bad topic","body":"x"}`, 400},
			{`{"topic":"TopicTest","body":"x","unknown":1}`, 400},
			{`{"topic":"TopicTest","body":"x","body_base64":"eA=="}`, 400},
			{`{"topic":"TopicTest","body":"x","producer_group":"nope"}`, 400},
		} {
			if code, out := post(tc.body); code != tc.code || out.Error == nil {
				t.Errorf("POST %s = %d %+v, want %d", tc.body, code, out, tc.code)
			}
		}
	})
	t.Run("admin", func(t *testing.T) {
		actx := adminCtx(t)
		if _, err := h.admin.Status(ctx, &producerdpb.StatusRequest{}); status.Code(err) != codes.Unauthenticated {
			t.Fatalf("status without token: %v", err)
		}
		st, err := h.admin.Status(actx, &producerdpb.StatusRequest{})
		if err != nil {
			t.Fatal(err)
		}
		if len(st.GetGroups()) != 1 || st.GetGroups()[0].GetStrategy().GetName() != "latency" || len(st.GetClients()) != 1 {
			t.Fatalf("status = %v", st)
		}
		cs := st.GetClients()[0]
		if len(cs.GetBrokers()) != 2 || len(cs.GetRoutes()) == 0 || cs.GetRoutes()[0].GetVersion() == 0 || len(cs.GetConnections()) == 0 {
			t.Fatalf("client status = %v", cs)
		}
		gs := st.GetGroups()[0].GetStrategy()
		if len(gs.GetPlugins()) != 1 || gs.GetPlugins()[0].GetPid() == 0 || gs.GetGeneration() == 0 {
			t.Fatalf("strategy status = %v", gs)
		}
		list, err := h.admin.ListStrategies(actx, &producerdpb.ListStrategiesRequest{})
		if err != nil || len(list.GetStrategies()) < 2 {
			t.Fatalf("list = %v, %v", list, err)
		}
		sw, err := h.admin.SwapStrategy(actx, &producerdpb.SwapStrategyRequest{Name: "rr"})
		if err != nil || len(sw.GetSwapped()) != 1 || sw.GetSwapped()[0].GetTo() != "rr" || sw.GetSwapped()[0].GetGeneration() <= gs.GetGeneration() {
			t.Fatalf("swap = %v, %v", sw, err)
		}
		if _, err := h.admin.SwapStrategy(actx, &producerdpb.SwapStrategyRequest{Name: "nope"}); status.Code(err) != codes.InvalidArgument {
			t.Fatalf("swap to an unknown strategy: %v", err)
		}
		if _, err := h.ingress.Send(ctx, &producerdpb.SendRequest{Message: &producerdpb.Message{Topic: testTopic, Body: []byte("after swap")}}); err != nil {
			t.Fatalf("send after swap: %v", err)
		}
		st, _ = h.admin.Status(actx, &producerdpb.StatusRequest{})
		if got := st.GetGroups()[0].GetStrategy(); got.GetName() != "rr" || got.GetPlugin() != "builtin:roundrobin" {
			t.Fatalf("strategy after swap = %v", got)
		}
		// HTTP admin and metrics.
		get := func(path, token string) (int, string) {
			req, _ := http.NewRequest(http.MethodGet, "http://"+h.adminAddr+path, nil)
			if token != "" {
				req.Header.Set("Authorization", "Bearer "+token)
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			b, _ := io.ReadAll(resp.Body)
			return resp.StatusCode, string(b)
		}
		if code, _ := get("/v1/admin/status", ""); code != 401 {
			t.Errorf("HTTP status without token: %d", code)
		}
		if code, _ := get("/v1/admin/status", "wrong"); code != 401 {
			t.Errorf("HTTP status with a wrong token: %d", code)
		}
		if code, body := get("/v1/admin/status", testToken); code != 200 || !strings.Contains(body, `"fault_table"`) {
			t.Errorf("HTTP status: %d %s", code, body)
		}
		code, body := get("/metrics", "")
		for _, want := range []string{"producerd_send_attempts_total{", "producerd_send_attempt_duration_seconds_bucket{broker=",
			"producerd_strategy_decisions_total{", "producerd_strategy_swaps_total{", "producerd_connections_open",
			"producerd_route_queries_total{", "producerd_inflight_messages", "producerd_isolated_brokers{", "producerd_plugin_restarts_total{"} {
			if code != 200 || !strings.Contains(body, want) {
				t.Errorf("/metrics lacks %s", want)
			}
		}
		if strings.Contains(h.log.String(), testToken) || strings.Contains(h.log.String(), "from curl") {
			t.Errorf("the log shows the token or a message body")
		}
	})
	t.Run("create topic", func(t *testing.T) {
		resp, err := h.admin.CreateTopic(adminCtx(t), &producerdpb.CreateTopicRequest{Topic: "NewTopic", ReadQueues: 2, WriteQueues: 2})
		if err != nil || len(resp.GetBrokers()) != 2 {
			t.Fatalf("create topic = %v, %v", resp, err)
		}
		for _, b := range c.Brokers() {
			if !strings.Contains(strings.Join(b.Topics(), ","), "NewTopic") {
				t.Errorf("%s lacks NewTopic: %v", b.Name(), b.Topics())
			}
		}
	})
}

func TestBackpressure(t *testing.T) {
	c := startCluster(t)
	h := start(t, c, "rr", 1)
	ctx := callCtx(t)
	// Learn the route first, then hang the brokers so that one send stays in flight.
	if _, err := h.ingress.Send(ctx, &producerdpb.SendRequest{Message: &producerdpb.Message{Topic: testTopic, Body: []byte("x")}}); err != nil {
		t.Fatal(err)
	}
	for _, b := range c.Brokers() {
		if err := b.SetFault(devbroker.Fault{Hang: true}); err != nil {
			t.Fatal(err)
		}
	}
	done := make(chan error, 1)
	go func() {
		_, err := h.ingress.Send(ctx, &producerdpb.SendRequest{Message: &producerdpb.Message{Topic: testTopic, Body: []byte("held")}})
		done <- err
	}()
	waitFor(t, "one message in flight", func() bool { n, _ := h.d.limit.load(); return n == 1 })

	_, err := h.ingress.Send(ctx, &producerdpb.SendRequest{Message: &producerdpb.Message{Topic: testTopic, Body: []byte("over")}})
	if status.Code(err) != codes.ResourceExhausted {
		t.Fatalf("gRPC over the bound: %v", err)
	}
	resp, err := http.Post("http://"+h.httpAddr+"/v1/messages", "application/json", strings.NewReader(`{"topic":"TopicTest","body":"over"}`))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusTooManyRequests {
		t.Fatalf("HTTP over the bound: %d", resp.StatusCode)
	}
	st, err := h.ingress.SendStream(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := st.Send(&producerdpb.StreamRequest{Id: "x", Message: &producerdpb.Message{Topic: testTopic, Body: []byte("over")}}); err != nil {
		t.Fatal(err)
	}
	// A stream waits for room instead of refusing: its message is answered once the
	// held send ends.
	_ = st.CloseSend()
	for _, b := range c.Brokers() {
		if err := b.SetFault(devbroker.Fault{}); err != nil {
			t.Fatal(err)
		}
	}
	<-done // the held send ends, one way or the other
	ack, err := st.Recv()
	if err != nil || ack.GetId() != "x" || ack.GetResult() == nil {
		t.Fatalf("stream over the bound: %v, %v (want a result once room appeared)", ack, err)
	}
	if _, err := st.Recv(); !errors.Is(err, io.EOF) {
		t.Fatalf("stream end: %v", err)
	}
	waitFor(t, "nothing in flight", func() bool { n, _ := h.d.limit.load(); return n == 0 })
	if _, err := h.ingress.Send(ctx, &producerdpb.SendRequest{Message: &producerdpb.Message{Topic: testTopic, Body: []byte("after")}}); err != nil {
		t.Fatalf("send after the bound cleared: %v", err)
	}
}

func TestReload(t *testing.T) {
	c := startCluster(t)
	h := start(t, c, "latency", 1000)
	ctx := callCtx(t)
	actx := adminCtx(t)
	good := configText(c.NameServerAddr(), strings.NewReplacer("/", "-").Replace(t.Name()), "latency", 1000)

	// A broken config: the running one stays, traffic goes on.
	h.write(good + "\n[daemon2]\nx = 1\n")
	if _, err := h.admin.Reload(actx, &producerdpb.ReloadRequest{}); status.Code(err) != codes.InvalidArgument || !strings.Contains(err.Error(), "producer.toml:") {
		t.Fatalf("reload of a broken config: %v", err)
	}
	if _, _, err := h.d.Reload(ctx); err == nil { // what SIGHUP calls
		t.Fatal("Reload accepted a broken config")
	}
	if _, err := h.ingress.Send(ctx, &producerdpb.SendRequest{Message: &producerdpb.Message{Topic: testTopic, Body: []byte("x")}}); err != nil {
		t.Fatalf("send after a failed reload: %v", err)
	}
	if g := h.d.cfgGen.Load(); g != 0 {
		t.Fatalf("config generation %d after a failed reload", g)
	}

	// An unchanged config changes nothing.
	h.write(good)
	changes, restart, err := h.d.Reload(ctx)
	if err != nil || len(changes) != 0 || len(restart) != 0 {
		t.Fatalf("reload of the same config: %v %v %v", changes, restart, err)
	}

	// A changed strategy swaps; a changed log level applies; a changed listener waits.
	changed := strings.Replace(good, `strategy = "latency"`, `strategy = "rr"`, 1)
	changed = strings.Replace(changed, `log_level = "debug"`, `log_level = "info"`, 1)
	changed = strings.Replace(changed, `http = "127.0.0.1:0"`, `http = "127.0.0.1:1"`, 1)
	// The runtime's settings are read at start too.
	changed = strings.Replace(changed, `log_level = "info"`, "log_level = \"info\"\nsysmon = \"steady\"", 1)
	h.write(changed)
	resp, err := h.admin.Reload(actx, &producerdpb.ReloadRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if restart := strings.Join(resp.GetRestartNeeded(), ";"); !strings.Contains(strings.Join(resp.GetChanges(), ";"), "strategy latency -> rr") ||
		!strings.Contains(restart, "[ingress]") || !strings.Contains(restart, "daemon.sysmon") {
		t.Fatalf("reload = %v", resp)
	}
	st, err := h.admin.Status(actx, &producerdpb.StatusRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if s := st.GetGroups()[0].GetStrategy(); s.GetName() != "rr" || st.GetConfigGeneration() != 2 {
		t.Fatalf("after reload: strategy %v, generation %d", s, st.GetConfigGeneration())
	}
	if _, err := h.ingress.Send(ctx, &producerdpb.SendRequest{Message: &producerdpb.Message{Topic: testTopic, Body: []byte("y")}}); err != nil {
		t.Fatalf("send after reload: %v", err)
	}

	// A strategy whose plugin does not start fails its health check: the reload fails
	// and rr stays.
	truePath, err := exec.LookPath("true")
	if err != nil {
		t.Skip("no true(1) to act as a broken plugin")
	}
	broken := strings.Replace(changed, `strategy = "rr"`, `strategy = "broken"`, 1) +
		fmt.Sprintf("\n[strategy.broken]\nplugin = %q\n", truePath)
	h.write(broken)
	if _, _, err := h.d.Reload(ctx); err == nil {
		t.Fatal("reload to a plugin that does not start succeeded")
	}
	if name := h.d.groupMap()["g1"].strategyName(); name != "rr" {
		t.Fatalf("strategy after the failed reload: %s", name)
	}
	if _, err := h.ingress.Send(ctx, &producerdpb.SendRequest{Message: &producerdpb.Message{Topic: testTopic, Body: []byte("z")}}); err != nil {
		t.Fatalf("send after the failed reload: %v", err)
	}
}

func TestShutdownUnderLoad(t *testing.T) {
	c := startCluster(t)
	h := start(t, c, "latency", 10000)
	ctx := callCtx(t)
	waitFor(t, "plugin processes", func() bool { return len(pluginChildren()) > 0 })
	// Wait until the group is registered on the brokers (heartbeat) so unregistration
	// can be checked.
	if _, err := h.ingress.Send(ctx, &producerdpb.SendRequest{Message: &producerdpb.Message{Topic: testTopic, Body: []byte("warm")}}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the heartbeat", func() bool {
		for _, b := range c.Brokers() {
			if len(b.Producers()["g1"]) == 0 {
				return false
			}
		}
		return true
	})

	type streamResult struct {
		sent    map[string]bool
		ok      map[string]string // id -> msgId
		errored map[string]bool
		end     error
	}
	const streams = 3
	const window = 200 // messages a client keeps in flight, as a real one would
	sctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	results := make([]*streamResult, streams)
	var acked sync.WaitGroup
	acked.Add(streams)
	var wg sync.WaitGroup
	for s := range streams {
		r := &streamResult{sent: map[string]bool{}, ok: map[string]string{}, errored: map[string]bool{}}
		results[s] = r
		st, err := h.ingress.SendStream(sctx)
		if err != nil {
			t.Fatal(err)
		}
		var mu sync.Mutex
		slots := make(chan struct{}, window)
		recvDone := make(chan struct{})
		wg.Go(func() {
			for i := 0; ; i++ {
				select {
				case slots <- struct{}{}:
				case <-recvDone:
					return
				}
				id := fmt.Sprintf("s%d-%d", s, i)
				mu.Lock()
				r.sent[id] = true
				mu.Unlock()
				if err := st.Send(&producerdpb.StreamRequest{Id: id, Message: &producerdpb.Message{Topic: testTopic, Body: []byte(id)}}); err != nil {
					return
				}
			}
		})
		wg.Go(func() {
			defer close(recvDone)
			signalled := false
			for {
				ack, err := st.Recv()
				if err != nil {
					r.end = err
					if !signalled {
						acked.Done()
					}
					return
				}
				mu.Lock()
				if r.ok[ack.GetId()] != "" || r.errored[ack.GetId()] {
					t.Errorf("stream %d: a second ack for %s", s, ack.GetId())
				}
				if res := ack.GetResult(); res != nil {
					r.ok[ack.GetId()] = res.GetMsgId()
				} else {
					r.errored[ack.GetId()] = true
				}
				n := len(r.ok)
				mu.Unlock()
				<-slots
				if n >= 100 && !signalled {
					signalled = true
					acked.Done()
				}
			}
		})
	}
	acked.Wait() // every stream has messages acknowledged: shut down under load
	if err := h.d.Shutdown(context.Background()); err != nil {
		t.Errorf("shutdown: %v", err)
	}
	h.stopped = true
	wg.Wait()

	store := stored(c, testTopic)
	var total, unacked int
	for s, r := range results {
		for id, msgID := range r.ok {
			m, ok := store[msgID]
			if !ok || string(m.Body) != id {
				t.Fatalf("stream %d: %s acknowledged as %s but not stored", s, id, msgID)
			}
		}
		total += len(r.ok)
		byBody := map[string]bool{}
		for _, m := range store {
			byBody[string(m.Body)] = true
		}
		for id := range r.sent {
			if r.ok[id] == "" && !r.errored[id] {
				unacked++
				// The stream's rule: a message without an ack was never sent.
				if byBody[id] {
					t.Errorf("stream %d: %s got no ack but is stored", s, id)
				}
			}
		}
		// Messages without an ack got the stream's terminal error.
		if r.end == nil || errors.Is(r.end, io.EOF) {
			t.Errorf("stream %d ended without an error: %v", s, r.end)
		} else if st := status.Convert(r.end); st.Code() != codes.Unavailable {
			t.Errorf("stream %d ended with %v, want UNAVAILABLE", s, r.end)
		}
	}
	t.Logf("%d messages acknowledged and stored, %d unacknowledged (answered by the stream's UNAVAILABLE)", total, unacked)

	waitFor(t, "the plugin processes to exit", func() bool { return len(pluginChildren()) == 0 })
	for _, b := range c.Brokers() {
		if ids := b.Producers()["g1"]; len(ids) != 0 {
			t.Errorf("%s still has group g1 registered: %v", b.Name(), ids)
		}
	}
	if _, err := h.ingress.Send(ctx, &producerdpb.SendRequest{Message: &producerdpb.Message{Topic: testTopic, Body: []byte("late")}}); err == nil {
		t.Error("a send after shutdown succeeded")
	}
}

func TestDrainResume(t *testing.T) {
	c := startCluster(t)
	h := start(t, c, "rr", 100)
	ctx := callCtx(t)
	actx := adminCtx(t)
	if _, err := h.admin.Drain(actx, &producerdpb.DrainRequest{}); err != nil {
		t.Fatal(err)
	}
	_, err := h.ingress.Send(ctx, &producerdpb.SendRequest{Message: &producerdpb.Message{Topic: testTopic, Body: []byte("x")}})
	if status.Code(err) != codes.Unavailable {
		t.Fatalf("send while drained: %v", err)
	}
	hr, _ := h.health.Check(ctx, &healthpb.HealthCheckRequest{})
	if hr.GetStatus() != healthpb.HealthCheckResponse_NOT_SERVING {
		t.Fatalf("health while drained: %v", hr)
	}
	// A stream gets one UNAVAILABLE ack per message while drained, and stays open.
	st, err := h.ingress.SendStream(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		if err := st.Send(&producerdpb.StreamRequest{Id: fmt.Sprint(i), Message: &producerdpb.Message{Topic: testTopic, Body: []byte("x")}}); err != nil {
			t.Fatal(err)
		}
		ack, err := st.Recv()
		if err != nil || ack.GetId() != fmt.Sprint(i) || ack.GetError().GetGrpcCode() != int32(codes.Unavailable) {
			t.Fatalf("stream while drained: %v %v", ack, err)
		}
	}
	_ = st.CloseSend()
	if _, err := st.Recv(); !errors.Is(err, io.EOF) {
		t.Fatalf("stream end while drained: %v", err)
	}
	if _, err := h.admin.Resume(actx, &producerdpb.ResumeRequest{}); err != nil {
		t.Fatal(err)
	}
	if _, err := h.ingress.Send(ctx, &producerdpb.SendRequest{Message: &producerdpb.Message{Topic: testTopic, Body: []byte("x")}}); err != nil {
		t.Fatalf("send after resume: %v", err)
	}
}
