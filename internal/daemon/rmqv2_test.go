package daemon

import (
	"context"
	"encoding/base64"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/net/http2"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"

	pb "github.com/producerd/producerd/api/rmqv2"
	"github.com/producerd/producerd/devbroker"
)

// TestRocketMQGRPCIngress sends through the apache.rocketmq.v2 listener of a daemon on the
// dev broker: the message is stored with the client's id, and the daemon's metrics count
// it under api="rocketmq_grpc".
func TestRocketMQGRPCIngress(t *testing.T) {
	c := startCluster(t)
	text := strings.Replace(configText(c.NameServerAddr(), "rmqv2", "rr", 100), `http = "127.0.0.1:0"`,
		`http = "127.0.0.1:0"`+"\nrocketmq_grpc_listen = \"127.0.0.1:0\"", 1)
	h := startText(t, c, text)
	d := h.d
	if d.RocketMQGRPCAddr() == "" {
		t.Fatal("rocketmq_grpc_listen set but no listener")
	}
	client, cctx := rmqv2Client(t, d, "daemon-test@1")
	cctx = metadata.AppendToOutgoingContext(cctx, "x-mq-language", "GO")

	// A telemetry stream stays open across the shutdown below, which must end it.
	stream, err := client.Telemetry(cctx)
	if err != nil {
		t.Fatal(err)
	}
	pt := pb.ClientType_PRODUCER
	if err := stream.Send(&pb.TelemetryCommand{Command: &pb.TelemetryCommand_Settings{Settings: &pb.Settings{ClientType: &pt,
		PubSub: &pb.Settings_Publishing{Publishing: &pb.Publishing{Topics: []*pb.Resource{{Name: testTopic}}}}}}}); err != nil {
		t.Fatal(err)
	}
	if _, err := stream.Recv(); err != nil {
		t.Fatal(err)
	}

	resp, err := client.SendMessage(cctx, &pb.SendMessageRequest{Messages: []*pb.Message{{
		Topic: &pb.Resource{Name: testTopic}, Body: []byte("via v2"),
		SystemProperties: &pb.SystemProperties{MessageId: "01DAEMONTEST0000000000000000000001", MessageType: pb.MessageType_NORMAL},
	}}})
	if err != nil || resp.GetStatus().GetCode() != pb.Code_OK {
		t.Fatalf("SendMessage: %v %v", resp, err)
	}
	if _, ok := stored(c, testTopic)["01DAEMONTEST0000000000000000000001"]; !ok {
		t.Fatal("the message is not stored under the client's message id")
	}
	resp, err = client.SendMessage(cctx, &pb.SendMessageRequest{})
	if err != nil || resp.GetStatus().GetCode() != pb.Code_MESSAGE_CORRUPTED {
		t.Fatalf("empty SendMessage: %v %v", resp, err)
	}
	_, _, admin := d.Addrs()
	hr, err := http.Get("http://" + admin + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(hr.Body)
	hr.Body.Close()
	for _, want := range []string{`producerd_request_duration_seconds_count{api="rocketmq_grpc",outcome="ok"} 1`,
		`producerd_rejected_total{api="rocketmq_grpc",reason="invalid"} 1`} {
		if !strings.Contains(string(body), want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}

	h.stopped = true
	if err := d.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	if _, err := stream.Recv(); err == nil {
		t.Error("the telemetry stream outlived the shutdown")
	}
}

// startRMQv2 starts a daemon on c whose ingress is the v2 listener alone (no HTTP),
// with max_inflight_messages maxInflight and extra appended to the configuration.
func startRMQv2(t *testing.T, c *devbroker.Cluster, instance string, maxInflight int, extra string) *Daemon {
	t.Helper()
	text := strings.Replace(configText(c.NameServerAddr(), instance, "rr", maxInflight), `http = "127.0.0.1:0"`,
		`http = ""`+"\nrocketmq_grpc_listen = \"127.0.0.1:0\"", 1)
	return startText(t, c, text+extra).d
}

// rmqv2Client dials d's v2 listener for the test; calls with the returned context carry
// clientID.
func rmqv2Client(t *testing.T, d *Daemon, clientID string) (pb.MessagingServiceClient, context.Context) {
	t.Helper()
	cc, err := grpc.NewClient(d.RocketMQGRPCAddr(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cc.Close() })
	return pb.NewMessagingServiceClient(cc), metadata.AppendToOutgoingContext(callCtx(t), "x-mq-client-id", clientID)
}

// v2Send sends one message with a one-byte body and props.
func v2Send(ctx context.Context, client pb.MessagingServiceClient, id string, props map[string]string) (*pb.SendMessageResponse, error) {
	return client.SendMessage(ctx, &pb.SendMessageRequest{Messages: []*pb.Message{{
		Topic: &pb.Resource{Name: testTopic}, Body: []byte("x"), UserProperties: props,
		SystemProperties: &pb.SystemProperties{MessageId: id}}}})
}

// holdOneSend warms the route, hangs c's brokers and leaves one v2 send in flight in d;
// the returned function lets the brokers answer again and waits for that send.
func holdOneSend(ctx context.Context, t *testing.T, c *devbroker.Cluster, d *Daemon, client pb.MessagingServiceClient) (release func()) {
	t.Helper()
	if resp, err := v2Send(ctx, client, "warm", nil); err != nil || resp.GetStatus().GetCode() != pb.Code_OK {
		t.Fatalf("warm-up send: %v %v", resp, err)
	}
	for _, b := range c.Brokers() {
		if err := b.SetFault(devbroker.Fault{Hang: true}); err != nil {
			t.Fatal(err)
		}
	}
	held := make(chan struct{})
	go func() { defer close(held); _, _ = v2Send(ctx, client, "held", nil) }()
	waitFor(t, "the held send to take its slot", func() bool { n, _ := d.limit.load(); return n == 1 })
	return func() {
		for _, b := range c.Brokers() {
			_ = b.SetFault(devbroker.Fault{})
		}
		<-held
	}
}

// TestRocketMQGRPCIngressBusy: over the daemon's in-flight bound a v2 send is answered
// TOO_MANY_REQUESTS, which the SDKs retry after their backoff, and counted as rejected.
func TestRocketMQGRPCIngressBusy(t *testing.T) {
	c := startCluster(t)
	d := startRMQv2(t, c, "rmqv2busy", 1, "")
	client, cctx := rmqv2Client(t, d, "busy-test@1")
	release := holdOneSend(cctx, t, c, d, client)
	resp, err := v2Send(cctx, client, "refused", nil)
	if err != nil || resp.GetStatus().GetCode() != pb.Code_TOO_MANY_REQUESTS {
		t.Errorf("send over the bound: %v %v, want TOO_MANY_REQUESTS", resp, err)
	}
	release()
	if got := testutilCount(t, d, `producerd_rejected_total{api="rocketmq_grpc",reason="resource_exhausted"}`); got != "1" {
		t.Errorf("rejected resource_exhausted = %q, want 1", got)
	}
}

// testutilCount returns the value of one metric series from the admin /metrics page.
func testutilCount(t *testing.T, d *Daemon, series string) string {
	t.Helper()
	_, _, admin := d.Addrs()
	hr, err := http.Get("http://" + admin + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer hr.Body.Close()
	body, _ := io.ReadAll(hr.Body)
	for _, line := range strings.Split(string(body), "\n") {
		if v, ok := strings.CutPrefix(line, series+" "); ok {
			return v
		}
	}
	return ""
}

// TestRocketMQGRPCRecallIsAdmitted: RecallMessage names any topic; like a send it counts
// against limits.max_topics (each topic costs core a route it keeps refreshing), so a
// client cannot make the daemon track topics without bound with forged recall handles.
func TestRocketMQGRPCRecallIsAdmitted(t *testing.T) {
	c := startCluster(t)
	d := startRMQv2(t, c, "rmqv2recall", 100, "\n[limits]\nmax_topics = 1\n")
	client, cctx := rmqv2Client(t, d, "recall-test@1")
	if resp, err := v2Send(cctx, client, "recall-admit", nil); err != nil || resp.GetStatus().GetCode() != pb.Code_OK {
		t.Fatalf("send: %v %v", resp, err)
	}
	for i := range 3 {
		other := "RecallTopic" + strconv.Itoa(i)
		handle := base64.URLEncoding.EncodeToString([]byte("v1 " + other + " broker-a 1 01AA"))
		r, err := client.RecallMessage(cctx, &pb.RecallMessageRequest{Topic: &pb.Resource{Name: other}, RecallHandle: handle})
		if err != nil || r.GetStatus().GetCode() != pb.Code_TOO_MANY_REQUESTS {
			t.Errorf("recall on a topic past max_topics: %v %v, want TOO_MANY_REQUESTS", r.GetStatus(), err)
		}
	}
}

// TestRocketMQGRPCChargesWholeMessage: a v2 message is charged its whole size (body,
// topic, tags, keys, properties) against max_inflight_bytes, as the daemon's own APIs
// charge theirs: a one-byte body with 12 KiB of properties does not fit next to a send in
// flight under an 8 KiB bound.
func TestRocketMQGRPCChargesWholeMessage(t *testing.T) {
	c := startCluster(t)
	d := startRMQv2(t, c, "rmqv2bytes", 100, "")
	d.limit.setBounds(100, 8<<10) // max_inflight_bytes = "8KiB", as a reload sets it
	client, cctx := rmqv2Client(t, d, "bytes-test@1")
	release := holdOneSend(cctx, t, c, d, client)
	if _, b := d.limit.load(); b <= 1 {
		t.Errorf("a send in flight charges %d bytes, want its whole message (> its 1-byte body)", b)
	}
	// Before: charged its 1-byte body, it passed and hung with the other.
	short, cancel := context.WithTimeout(cctx, 5*time.Second)
	defer cancel()
	resp, err := v2Send(short, client, "large-props", map[string]string{"big": strings.Repeat("p", 12<<10)})
	if err != nil || resp.GetStatus().GetCode() != pb.Code_TOO_MANY_REQUESTS {
		t.Errorf("send with 12 KiB of properties over an 8 KiB bound: %v %v, want TOO_MANY_REQUESTS", resp.GetStatus(), err)
	}
	release()
	if n, b := d.limit.load(); n != 0 || b != 0 {
		t.Errorf("in flight after the sends: %d messages, %d bytes; want 0, 0", n, b)
	}
}

// TestRocketMQGRPCStreamLimitAnnounced: the daemon gives its v2 listener the stream
// bound of its own ingress (min(256, max_inflight_messages) calls + 4 Telemetry
// streams), which a client reads in the server's SETTINGS.
func TestRocketMQGRPCStreamLimitAnnounced(t *testing.T) {
	c := startCluster(t)
	d := startRMQv2(t, c, "rmqv2-streams", 7, "")
	nc, err := net.DialTimeout("tcp", d.RocketMQGRPCAddr(), 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	_ = nc.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.WriteString(nc, http2.ClientPreface); err != nil {
		t.Fatal(err)
	}
	fr := http2.NewFramer(nc, nc)
	if err := fr.WriteSettings(); err != nil {
		t.Fatal(err)
	}
	for {
		f, err := fr.ReadFrame()
		if err != nil {
			t.Fatalf("no SETTINGS from the server: %v", err)
		}
		if sf, ok := f.(*http2.SettingsFrame); ok && !sf.IsAck() {
			got, ok := sf.Value(http2.SettingMaxConcurrentStreams)
			if !ok || got != 7+4 {
				t.Fatalf("MAX_CONCURRENT_STREAMS %d (set: %v), want 11 (max_inflight_messages 7 + 4)", got, ok)
			}
			return
		}
	}
}
