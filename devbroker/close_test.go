package devbroker_test

import (
	"context"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/producerd/producerd/devbroker"
	"github.com/producerd/producerd/remoting"
)

// TestCloseStopsEverything closes a cluster while a timeline event is pending, a hung
// broker holds a request and a slow broker holds a delayed answer. Not parallel: it
// checks that no goroutine survives.
func TestCloseStopsEverything(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	c, err := devbroker.Start(context.Background(), devbroker.Config{
		Brokers: []string{"broker-a", "broker-b"}, Topics: map[string]int{"TopicTest": 1},
		Timeline: devbroker.Timeline{{At: time.Hour, Broker: "broker-a", Fault: devbroker.Fault{Down: true}}},
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Broker("broker-a").SetFault(devbroker.Fault{Hang: true}); err != nil {
		t.Fatal(err)
	}
	if err := c.Broker("broker-b").SetFault(devbroker.Fault{Latency: devbroker.Latency{Fixed: time.Hour}}); err != nil {
		t.Fatal(err)
	}
	rc, err := remoting.NewClient(remoting.Config{})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	for _, b := range c.Brokers() {
		go func() {
			defer func() { done <- struct{}{} }()
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			rc.InvokeSync(ctx, b.Addr(), sendV2("TopicTest", 0, "pending"))
		}()
	}
	waitFor(t, "both requests to reach their brokers", func() bool {
		return c.Broker("broker-a").Stats().Connections == 1 && c.Broker("broker-b").Stats().Messages == 1
	})
	c.Close()
	<-done // closing the connections fails both pending requests at once
	<-done
	rc.Close()
	c.Close() // idempotent
}
