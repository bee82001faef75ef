package daemon

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/producerd/producerd/api/producerdpb"
	"github.com/producerd/producerd/internal/rmqtest"
	"github.com/producerd/producerd/internal/rmqtest/readback"
)

// TestIntegrationShutdownUnderLoad: a daemon in front of the real Apache RocketMQ is shut
// down (what SIGTERM does) while clients send; every message acknowledged to a client is
// in RocketMQ, every other call got an error, and no plugin process is left.
func TestIntegrationShutdownUnderLoad(t *testing.T) {
	c := rmqtest.Require(t)
	const topic = "IT_Daemon"
	rc := readback.Client(t)
	from := readback.Mark(t, rc, c, topic, 4)

	h := startDaemon(t, configText(c.NameServer, "it-shutdown", "latency", 10000), hclog.Info)
	d, ingress := h.d, h.ingress
	waitFor(t, "plugin processes", func() bool { return len(pluginChildren()) > 0 })

	var (
		mu      sync.Mutex
		acked   []string
		errored int
		wg      sync.WaitGroup
	)
	enough := make(chan struct{})
	var once sync.Once
	for w := range 16 {
		wg.Go(func() {
			for i := 0; i < 100_000; i++ {
				res, err := ingress.Send(context.Background(), &producerdpb.SendRequest{Message: &producerdpb.Message{
					Topic: topic, Body: fmt.Appendf(nil, "w%d-%d", w, i)}})
				mu.Lock()
				if err != nil {
					errored++
					mu.Unlock()
					return // the daemon is going away
				}
				acked = append(acked, res.GetResult().GetMsgId())
				if len(acked) >= 2000 {
					once.Do(func() { close(enough) })
				}
				mu.Unlock()
			}
		})
	}
	select {
	case <-enough:
	case <-time.After(60 * time.Second):
		t.Fatal("the load never reached 2000 acknowledgements")
	}
	h.stopped = true
	if err := d.Shutdown(context.Background()); err != nil {
		t.Errorf("shutdown: %v", err)
	}
	wg.Wait()
	if errored != 16 {
		t.Errorf("%d of 16 clients saw an error after the shutdown", errored)
	}
	if left := pluginChildren(); len(left) > 0 {
		t.Errorf("plugin processes left after shutdown: %v", left)
	}

	if n := readback.Missing(t, rc, topic, from, acked); n > 0 {
		t.Fatalf("%d of %d acknowledged messages are not in RocketMQ", n, len(acked))
	}
	t.Logf("shutdown under load: %d acknowledged and found in RocketMQ, 16 of 16 clients got an error afterwards, no plugin process left", len(acked))
}
