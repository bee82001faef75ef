package core_test

import (
	"context"
	"errors"
	"net"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/producerd/producerd/core"
	"github.com/producerd/producerd/remoting"
)

// countingDialer fails every dial and counts the attempts.
func countingDialer(n *atomic.Int64) func(context.Context, string, string) (net.Conn, error) {
	return func(context.Context, string, string) (net.Conn, error) {
		n.Add(1)
		return nil, errors.New("dial refused by test")
	}
}

func TestInvalidMessagesFailBeforeIO(t *testing.T) {
	t.Parallel()
	var dials atomic.Int64
	p, err := core.NewProducer(core.ProducerConfig{Group: "g_invalid", Client: core.ClientConfig{
		NameServers: []string{"127.0.0.1:1"}, Remoting: remoting.Config{Dialer: countingDialer(&dials)}}})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close(context.Background())
	tests := []struct {
		name string
		msg  *core.Message
		rule string
	}{
		{"empty body", &core.Message{Topic: "T", Body: []byte{}}, "body.empty"},
		{"4 MiB + 1", &core.Message{Topic: "T", Body: make([]byte, 4<<20+1)}, "body.size"},
		{"topic with a space", &core.Message{Topic: "my topic", Body: []byte("x")}, "topic.charset"},
		{"128-character topic", &core.Message{Topic: strings.Repeat("t", 128), Body: []byte("x")}, "topic.length"},
		{"reserved property", &core.Message{Topic: "T", Body: []byte("x"), Properties: map[string]string{"DELAY": "1"}}, "property.reserved"},
	}
	ctx := context.Background()
	for _, tt := range tests {
		sends := map[string]func() error{
			"sync":   func() error { _, err := p.Send(ctx, tt.msg); return err },
			"async":  func() error { return p.SendAsync(ctx, tt.msg, func(*core.SendResult, error) {}) },
			"oneway": func() error { return p.SendOneway(ctx, tt.msg) },
			"batch":  func() error { _, err := p.SendBatch(ctx, []*core.Message{tt.msg}); return err },
		}
		for mode, send := range sends {
			err := send()
			var ve *core.ValidationError
			if !errors.As(err, &ve) || ve.Rule != tt.rule {
				t.Errorf("%s %s: got %v, want rule %s", tt.name, mode, err, tt.rule)
			}
		}
	}
	if n := dials.Load(); n != 0 {
		t.Fatalf("invalid messages caused %d dials", n)
	}
}

func TestClientInstanceSharing(t *testing.T) {
	t.Parallel()
	cc := core.ClientConfig{NameServers: []string{"127.0.0.1:1"}, InstanceName: "shared-" + t.Name()}
	a, err := core.NewProducer(core.ProducerConfig{Group: "g_a", Client: cc})
	if err != nil {
		t.Fatal(err)
	}
	b, err := core.NewProducer(core.ProducerConfig{Group: "g_b", Client: cc})
	if err != nil {
		t.Fatal(err)
	}
	if a.Client() != b.Client() {
		t.Fatal("producers with one client id got different client instances")
	}
	if !strings.HasSuffix(a.Client().ID(), "@shared-"+t.Name()) {
		t.Fatalf("client id %q", a.Client().ID())
	}
	if got := strings.Join(a.Client().Groups(), ","); got != "g_a,g_b" {
		t.Fatalf("groups = %s", got)
	}
	_, err = core.NewProducer(core.ProducerConfig{Group: "g_a", Client: cc})
	if !errors.Is(err, core.ErrGroupExists) || !strings.Contains(err.Error(), `"g_a"`) {
		t.Fatalf("duplicate group: %v", err)
	}
	ctx := context.Background()
	a.Close(ctx)
	b.Close(ctx)
	// The instance stopped with its last group; a new producer gets a fresh one.
	c, err := core.NewProducer(core.ProducerConfig{Group: "g_a", Client: cc})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close(ctx)
	if c.Client() == a.Client() {
		t.Fatal("a closed client instance was reused")
	}

	// DEFAULT instance names become PID#nanos: one instance per producer.
	d1, _ := core.NewProducer(core.ProducerConfig{Group: "g_d", Client: core.ClientConfig{NameServers: []string{"127.0.0.1:1"}}})
	d2, _ := core.NewProducer(core.ProducerConfig{Group: "g_d", Client: core.ClientConfig{NameServers: []string{"127.0.0.1:1"}}})
	defer d1.Close(ctx)
	defer d2.Close(ctx)
	if d1.Client() == d2.Client() || !strings.Contains(d1.Client().ID(), "#") {
		t.Fatalf("default instance names: %s and %s", d1.Client().ID(), d2.Client().ID())
	}
}

func TestProducerConfigErrors(t *testing.T) {
	t.Parallel()
	_, err := core.NewProducer(core.ProducerConfig{Group: "DEFAULT_PRODUCER", SendTimeout: -1, CompressLevel: 12})
	if !errors.Is(err, core.ErrInvalidConfig) {
		t.Fatalf("got %v", err)
	}
	for _, want := range []string{"Group", "SendTimeout", "CompressLevel"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("joined error does not mention %s: %v", want, err)
		}
	}
	_, err = core.NewProducer(core.ProducerConfig{Group: "g"})
	if !errors.Is(err, core.ErrNoNameServer) {
		t.Fatalf("missing name servers: %v", err)
	}
}
