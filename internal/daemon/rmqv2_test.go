package daemon

import (
	"context"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"

	pb "github.com/producerd/producerd/api/rmqv2"
	"github.com/producerd/producerd/internal/config"
)

// TestRocketMQGRPCIngress sends through the apache.rocketmq.v2 listener of a daemon on the
// dev broker: the message is stored with the client's id, and the daemon's metrics count
// it under api="rocketmq_grpc".
func TestRocketMQGRPCIngress(t *testing.T) {
	c := startCluster(t)
	text := strings.Replace(configText(c.NameServerAddr(), "rmqv2", "rr", 100), `http = "127.0.0.1:0"`,
		`http = "127.0.0.1:0"`+"\nrocketmq_grpc_listen = \"127.0.0.1:0\"", 1)
	path := filepath.Join(t.TempDir(), "producer.toml")
	if err := os.WriteFile(path, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	d, err := New(Options{Config: cfg, Logger: hclog.NewNullLogger(), PluginCommand: []string{os.Args[0], "plugin"}})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := d.Start(ctx); err != nil {
		t.Fatal(err)
	}
	stopped := false
	t.Cleanup(func() {
		if !stopped {
			_ = d.Shutdown(context.Background())
		}
	})
	if d.RocketMQGRPCAddr() == "" {
		t.Fatal("rocketmq_grpc_listen set but no listener")
	}
	cc, err := grpc.NewClient(d.RocketMQGRPCAddr(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer cc.Close()
	client := pb.NewMessagingServiceClient(cc)
	cctx := metadata.AppendToOutgoingContext(ctx, "x-mq-client-id", "daemon-test@1", "x-mq-language", "GO")

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

	stopped = true
	if err := d.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	if _, err := stream.Recv(); err == nil {
		t.Error("the telemetry stream outlived the shutdown")
	}
}
