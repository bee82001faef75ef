package core_test

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/producerd/producerd/core"
	"github.com/producerd/producerd/devbroker"
	"github.com/producerd/producerd/remoting"
)

// Finding 6: a broker that appears later (here: the topic gets queues on broker-b) learns
// the producer group when the producer first connects to it, not at the next heartbeat
// round (an hour away in this test).
func TestHeartbeatOnConnect(t *testing.T) {
	t.Parallel()
	dev := startDev(t, devbroker.Config{Topics: map[string]int{}})
	if err := devCreateOn(dev.Broker("broker-a"), "HB"); err != nil {
		t.Fatal(err)
	}
	p := devProducer(t, dev, func(c *core.ProducerConfig) {
		c.Client.Heartbeat = time.Hour
		c.Client.RouteRefresh = 20 * time.Millisecond
	})
	ctx := context.Background()
	if _, err := p.Send(ctx, &core.Message{Topic: "HB", Body: []byte("x")}); err != nil {
		t.Fatal(err)
	}
	a, b := dev.Broker("broker-a"), dev.Broker("broker-b")
	// The first scheduled round (1s after start) has run once broker-a got two heartbeats:
	// the one on connect and the round's. The next round is an hour away.
	waitFor(t, "the first heartbeat round", func() bool { return a.Stats().ByCode[remoting.HeartBeat] >= 2 })
	if err := devCreateOn(b, "HB"); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "a send stored on broker-b", func() bool {
		res, err := p.Send(ctx, &core.Message{Topic: "HB", Body: []byte("x")})
		return err == nil && res.Queue.Broker == "broker-b"
	})
	waitFor(t, "broker-b to know the group", func() bool {
		return slices.Contains(b.Producers()[p.Group()], p.Client().ID())
	})
}
