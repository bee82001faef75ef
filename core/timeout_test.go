package core_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/producerd/producerd/core"
	"github.com/producerd/producerd/devbroker"
	"github.com/producerd/producerd/plugins/sdk"
	"github.com/producerd/producerd/remoting"
)

// storedCopies counts, over every broker of dev, the messages of topic stored with each
// UNIQ_KEY.
func storedCopies(dev *devbroker.Cluster, topic string) map[string]int {
	n := make(map[string]int)
	for _, b := range dev.Brokers() {
		for _, m := range b.Messages(topic) {
			n[m.UniqKey()]++
		}
	}
	return n
}

// Finding 1: a slow but healthy cluster (every broker answers sends after 1.3s or 2.5s,
// inside the 3s budget) is not abandoned by the attempt cap: each send succeeds after one
// attempt and is stored exactly once.
func TestSlowClusterSucceedsOnce(t *testing.T) {
	t.Parallel()
	for _, latency := range []time.Duration{1300 * time.Millisecond, 2500 * time.Millisecond} {
		for _, mode := range []string{"sync", "async", "batch"} {
			t.Run(fmt.Sprintf("%dms/%s", latency.Milliseconds(), mode), func(t *testing.T) {
				t.Parallel()
				dev := startDev(t, devbroker.Config{})
				for _, b := range dev.Brokers() {
					setFault(t, b, devbroker.Fault{Latency: devbroker.Latency{Fixed: latency}})
				}
				rec := &recorder{}
				p := devProducer(t, dev, func(c *core.ProducerConfig) { c.Strategy = rec })
				ctx := context.Background()
				var res *core.SendResult
				var err error
				want := 1
				switch mode {
				case "sync":
					res, err = p.Send(ctx, &core.Message{Topic: "T", Body: []byte("x")})
				case "async":
					res, err = p.SendFuture(ctx, &core.Message{Topic: "T", Body: []byte("x")}).Wait(ctx)
				case "batch":
					want = 3
					res, err = p.SendBatch(ctx, []*core.Message{
						{Topic: "T", Body: []byte("a")}, {Topic: "T", Body: []byte("b")}, {Topic: "T", Body: []byte("c")}})
				}
				if err != nil {
					t.Fatalf("send with every broker answering in %v: %v", latency, err)
				}
				if res.Attempts != 1 {
					t.Fatalf("%d attempts, want 1", res.Attempts)
				}
				// A late duplicate would be stored by an abandoned attempt: let every
				// answer of the budget be processed before counting.
				copies := storedCopies(dev, "T")
				if len(copies) != want {
					t.Fatalf("%d distinct messages stored, want %d: %v", len(copies), want, copies)
				}
				for k, n := range copies {
					if n != 1 {
						t.Fatalf("message %s stored %d times", k, n)
					}
				}
				_, outs := rec.snapshot()
				if len(outs) != 1 || outs[0].Kind != sdk.OutcomeOK {
					t.Fatalf("outcomes %+v, want one OK", outs)
				}
			})
		}
	}
}

// Finding 1: a hung broker (no answer at all, heartbeat probe included) is still
// abandoned after about the cap, sync and async, and the send stores once on the other.
func TestHungBrokerFailsOverWithinCap(t *testing.T) {
	t.Parallel()
	for _, mode := range []string{"sync", "async"} {
		t.Run(mode, func(t *testing.T) {
			t.Parallel()
			dev := startDev(t, devbroker.Config{})
			rec := &recorder{index: func(s *sdk.Selection) (int, error) {
				for i, q := range s.Queues { // broker-a first, then anything else
					if (s.Attempt == 0) == (q.Broker == "broker-a") {
						return i, nil
					}
				}
				return 0, nil
			}}
			p := devProducer(t, dev, func(c *core.ProducerConfig) { c.Strategy = rec })
			// Healed before the producer's Close unregisters (cleanups run last first).
			setFault(t, dev.Broker("broker-a"), devbroker.Fault{Hang: true})
			t.Cleanup(func() { dev.Broker("broker-a").SetFault(devbroker.Fault{}) })
			ctx := context.Background()
			var res *core.SendResult
			var err error
			if mode == "sync" {
				res, err = p.Send(ctx, &core.Message{Topic: "T", Body: []byte("x")})
			} else {
				res, err = p.SendFuture(ctx, &core.Message{Topic: "T", Body: []byte("x")}).Wait(ctx)
			}
			if err != nil {
				t.Fatalf("send with broker-a hung: %v", err)
			}
			if res.Queue.Broker != "broker-b" || res.Attempts != 2 {
				t.Fatalf("result %+v, want broker-b on the second attempt", res)
			}
			_, outs := rec.snapshot()
			if len(outs) != 2 || outs[0].Broker != "broker-a" || outs[0].Kind != sdk.OutcomeTimeout || !outs[0].Isolation {
				t.Fatalf("outcomes %+v, want an isolating timeout on broker-a first", outs)
			}
			// Abandoned before the budget ended (the second attempt succeeded inside it);
			// how soon is measured, not asserted (timings are not unit-test assertions).
			t.Logf("hung broker abandoned after %v", outs[0].Latency)
		})
	}
}

// Finding 2: a caller that cancels its send, or whose short deadline passes, says nothing
// about the broker: the strategy sees no outcome and the hooks count none.
func TestCancelledSendLeavesHealthUnchanged(t *testing.T) {
	t.Parallel()
	dev := startDev(t, devbroker.Config{})
	for _, b := range dev.Brokers() {
		setFault(t, b, devbroker.Fault{Latency: devbroker.Latency{Fixed: 2 * time.Second}})
	}
	rec := &recorder{}
	attempts := make(chan sdk.Outcome, 10)
	p := devProducer(t, dev, func(c *core.ProducerConfig) {
		c.Strategy = rec
		c.Hooks.OnAttempt = func(_ string, o sdk.Outcome) { attempts <- o }
	})
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() {
		_, err := p.Send(ctx, &core.Message{Topic: "T", Body: []byte("x")})
		errc <- err
	}()
	waitFor(t, "the send to reach a broker", func() bool {
		n := 0
		for _, b := range dev.Brokers() {
			n += int(b.Stats().Sends)
		}
		return n > 0
	})
	cancel()
	err := <-errc
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled send: %v, want context.Canceled", err)
	}
	if _, outs := rec.snapshot(); len(outs) != 0 {
		t.Fatalf("the strategy saw %+v for a cancelled send", outs)
	}
	if len(attempts) != 0 {
		t.Fatalf("OnAttempt counted %+v for a cancelled send", <-attempts)
	}

	// A caller deadline (200ms) shorter than the attempt check (1s) is the caller's
	// impatience, not evidence against the broker.
	dctx, dcancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer dcancel()
	if _, err := p.Send(dctx, &core.Message{Topic: "T", Body: []byte("x")}); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("send past the caller's deadline: %v", err)
	}
	if _, outs := rec.snapshot(); len(outs) != 0 || len(attempts) != 0 {
		t.Fatalf("the strategy saw %+v for a send the caller gave up on", outs)
	}
}

// Many sends waiting on one hung broker share its liveness probe: one heartbeat per check
// window, not one per send.
func TestHungBrokerProbesShared(t *testing.T) {
	t.Parallel()
	dev := startDev(t, devbroker.Config{})
	aAddr := dev.Broker("broker-a").Addr()
	var heartbeats atomic.Int64
	rec := &recorder{index: func(s *sdk.Selection) (int, error) {
		for i, q := range s.Queues {
			if (s.Attempt == 0) == (q.Broker == "broker-a") {
				return i, nil
			}
		}
		return 0, nil
	}}
	p := devProducer(t, dev, func(c *core.ProducerConfig) {
		c.Strategy = rec
		c.Client.Remoting.Hooks.OnRequest = func(e remoting.RequestEvent) {
			if e.Code == remoting.HeartBeat && e.Addr == aAddr {
				heartbeats.Add(1)
			}
		}
	})
	setFault(t, dev.Broker("broker-a"), devbroker.Fault{Hang: true})
	t.Cleanup(func() { dev.Broker("broker-a").SetFault(devbroker.Fault{}) })
	const sends = 20
	var wg sync.WaitGroup
	for range sends {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if res, err := p.Send(context.Background(), &core.Message{Topic: "T", Body: []byte("x")}); err != nil || res.Queue.Broker != "broker-b" {
				t.Errorf("send with broker-a hung: %+v %v", res, err)
			}
		}()
	}
	wg.Wait()
	// The heartbeat on connect and one probe; before the probes were shared, one per send.
	if n := heartbeats.Load(); n > 3 {
		t.Fatalf("%d heartbeats to the hung broker for %d waiting sends", n, sends)
	}
}
