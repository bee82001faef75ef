package main

import (
	"context"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"google.golang.org/grpc"

	"github.com/producerd/producerd/api/producerdpb"
)

// fakeIngress answers every Send with a fixed result and records the topic.
type fakeIngress struct {
	producerdpb.UnimplementedIngressServer
	topics chan string
}

func (f *fakeIngress) Send(_ context.Context, req *producerdpb.SendRequest) (*producerdpb.SendResponse, error) {
	f.topics <- req.GetMessage().GetTopic()
	return &producerdpb.SendResponse{Result: &producerdpb.SendResult{MsgId: "M1", Status: producerdpb.SendStatus_SEND_STATUS_SEND_OK}}, nil
}

// The CLI reaches a daemon's ingress.unix socket with -addr unix:///path, and with -c
// when the config names one.
func TestSendOverUnixSocket(t *testing.T) {
	t.Parallel()
	dir, err := os.MkdirTemp("", "pd")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	sock := filepath.Join(dir, "in.sock")
	ln, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	srv := grpc.NewServer()
	f := &fakeIngress{topics: make(chan string, 4)}
	producerdpb.RegisterIngressServer(srv, f)
	go srv.Serve(ln)
	t.Cleanup(srv.Stop)

	cfg := filepath.Join(dir, "p.toml")
	text := "[ingress]\ngrpc = \"127.0.0.1:1\"\nunix = \"" + sock + "\"\nunix_mode = 0o660\n\n[admin]\nmetrics_per_topic = true\n\n[client]\nname_servers = [\"127.0.0.1:9876\"]\n\n[[producer]]\ngroup = \"g\"\n"
	if err := os.WriteFile(cfg, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, args := range [][]string{
		{"send", "-addr", "unix://" + sock, "TopicA", "hello"},
		{"send", "-c", cfg, "TopicB", "hello"},
	} {
		code, out, errOut := runCLI(args...)
		if code != 0 || !strings.HasPrefix(out, "SEND_OK msgId=M1") {
			t.Fatalf("producerd %v: %d %s %s", args, code, out, errOut)
		}
	}
	if a, b := <-f.topics, <-f.topics; a != "TopicA" || b != "TopicB" {
		t.Fatalf("the server saw %s, %s", a, b)
	}
}
