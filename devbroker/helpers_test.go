package devbroker_test

import (
	"context"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/producerd/producerd/core"
	"github.com/producerd/producerd/devbroker"
	"github.com/producerd/producerd/remoting"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// start runs a cluster for the test and closes it afterwards.
func start(t *testing.T, cfg devbroker.Config) *devbroker.Cluster {
	t.Helper()
	c, err := devbroker.Start(context.Background(), cfg)
	if err != nil {
		t.Fatalf("Start: %v", err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

var groupSeq atomic.Int64

// newProducer starts a core producer against c; mod may adjust the config.
func newProducer(t *testing.T, c *devbroker.Cluster, mod func(*core.ProducerConfig)) *core.Producer {
	t.Helper()
	cfg := core.ProducerConfig{
		Group:  fmt.Sprintf("g_%s_%d", groupSafe(t.Name()), groupSeq.Add(1)),
		Client: core.ClientConfig{NameServers: []string{c.NameServerAddr()}},
	}
	if mod != nil {
		mod(&cfg)
	}
	p, err := core.NewProducer(cfg)
	if err != nil {
		t.Fatalf("NewProducer: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := p.Close(ctx); err != nil {
			t.Errorf("producer Close: %v", err)
		}
	})
	return p
}

// groupSafe maps a test name onto the group charset.
func groupSafe(name string) string {
	return strings.Map(func(r rune) rune {
		if r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_' {
			return r
		}
		return '_'
	}, name)
}

// newClient returns a remoting client for raw requests.
func newClient(t *testing.T, cfg remoting.Config) *remoting.Client {
	t.Helper()
	rc, err := remoting.NewClient(cfg)
	if err != nil {
		t.Fatalf("remoting.NewClient: %v", err)
	}
	t.Cleanup(func() { rc.Close() })
	return rc
}

// invoke sends one raw request and fails the test on a transport error.
func invoke(t *testing.T, rc *remoting.Client, addr string, req *remoting.Command) *remoting.Command {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	resp, err := rc.InvokeSync(ctx, addr, req)
	if err != nil {
		t.Fatalf("%v to %s: %v", remoting.RequestCode(req.Code), addr, err)
	}
	return resp
}

// waitFor polls cond until it holds or 10 s pass.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// sendV2 is a raw SEND_MESSAGE_V2 request.
func sendV2(topic string, queueID int, body string) *remoting.Command {
	return remoting.NewRequest(remoting.SendMessageV2, map[string]string{
		"a": "raw_group", "b": topic, "c": "TBW102", "d": "4", "e": fmt.Sprint(queueID), "f": "0",
		"g": fmt.Sprint(time.Now().UnixMilli()), "h": "0", "i": "WAIT\x01true\x02", "j": "0", "k": "false", "m": "false",
	}, []byte(body))
}

func ctxT(t *testing.T) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	t.Cleanup(cancel)
	return ctx
}
