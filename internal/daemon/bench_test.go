package daemon

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/hashicorp/go-hclog"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/producerd/producerd/api/producerdpb"
	"github.com/producerd/producerd/devbroker"
	"github.com/producerd/producerd/internal/config"
)

// BenchmarkUnarySend measures one sender's unary gRPC Send through the daemon to the
// in-process dev broker, over TCP and over the Unix socket (the broker's work is in the
// numbers too; compare the two, and profiles, rather than absolute values):
//
//	go test -run '^$' -bench UnarySend -benchmem -cpuprofile cpu.out ./internal/daemon/
func BenchmarkUnarySend(b *testing.B) {
	c, err := devbroker.Start(context.Background(), devbroker.Config{
		Brokers: []string{"broker-a", "broker-b"}, Topics: map[string]int{testTopic: 4}})
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	dir, err := os.MkdirTemp("", "pdb")
	if err != nil {
		b.Fatal(err)
	}
	defer os.RemoveAll(dir)
	sock := filepath.Join(dir, "in.sock")
	text := strings.Replace(configText(c.NameServerAddr(), "bench", "rr", 10000),
		"[ingress]\n", "[ingress]\nunix = \""+sock+"\"\n", 1)
	text = strings.Replace(text, `log_level = "debug"`, `log_level = "error"`, 1)
	file := filepath.Join(dir, "p.toml")
	if err := os.WriteFile(file, []byte(text), 0o600); err != nil {
		b.Fatal(err)
	}
	cfg, err := config.Load(file)
	if err != nil {
		b.Fatal(err)
	}
	d, err := New(Options{Config: cfg, Logger: hclog.NewNullLogger(), PluginCommand: []string{os.Args[0], "plugin"}})
	if err != nil {
		b.Fatal(err)
	}
	if err := d.Start(context.Background()); err != nil {
		b.Fatal(err)
	}
	defer d.Shutdown(context.Background())
	grpcAddr, _, _ := d.Addrs()
	body := make([]byte, 1024)
	for _, target := range []struct{ name, addr string }{{"tcp", grpcAddr}, {"unix", "unix://" + sock}} {
		b.Run(target.name, func(b *testing.B) {
			cc, err := grpc.NewClient(target.addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
			if err != nil {
				b.Fatal(err)
			}
			defer cc.Close()
			ing := producerdpb.NewIngressClient(cc)
			req := &producerdpb.SendRequest{Message: &producerdpb.Message{Topic: testTopic, Body: body}}
			ctx := context.Background()
			for range 10 { // warm the route, connections and the strategy
				if _, err := ing.Send(ctx, req); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportAllocs()
			for b.Loop() {
				if _, err := ing.Send(ctx, req); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
