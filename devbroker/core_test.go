package devbroker_test

import (
	"fmt"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/producerd/producerd/core"
	"github.com/producerd/producerd/devbroker"
)

// These tests drive the core producer through faults it must survive; they assert outcomes,
// never timings.

func TestIPv6Hosts(t *testing.T) {
	t.Parallel()
	if ln, err := net.Listen("tcp", "[::1]:0"); err != nil {
		t.Skipf("no IPv6 loopback: %v", err)
	} else {
		ln.Close()
	}
	c := start(t, devbroker.Config{Host: "::1", Topics: map[string]int{"TopicTest": 2}})
	p := newProducer(t, c, nil)
	m := &core.Message{Topic: "TopicTest", Body: []byte("v6")}
	res, err := p.Send(ctxT(t), m)
	if err != nil {
		t.Fatal(err)
	}
	if len(res.OffsetMsgID) != 56 {
		t.Errorf("IPv6 offset msg id %q has %d hex digits, want 56", res.OffsetMsgID, len(res.OffsetMsgID))
	}
	got := checkStored(t, p, m, res.OffsetMsgID, res.MsgID)
	if got.SysFlag&0x30 != 0x30 || got.StoreHost != c.Broker("broker-a").Addr() {
		t.Errorf("sysFlag %#x store host %s", got.SysFlag, got.StoreHost)
	}
}

func TestCoreRetriesAfterReset(t *testing.T) {
	t.Parallel()
	c := start(t, devbroker.Config{Topics: map[string]int{"TopicTest": 2}})
	p := newProducer(t, c, nil)
	warm(t, p)
	b := c.Broker("broker-a")
	if err := b.SetFault(devbroker.Fault{Resets: 1}); err != nil {
		t.Fatal(err)
	}
	res, err := p.Send(ctxT(t), &core.Message{Topic: "TopicTest", Body: []byte("sync")})
	if err != nil || res.Attempts != 2 {
		t.Fatalf("sync send after a reset: %+v, %v", res, err)
	}
	if err := b.SetFault(devbroker.Fault{Resets: 1}); err != nil {
		t.Fatal(err)
	}
	f := p.SendFuture(ctxT(t), &core.Message{Topic: "TopicTest", Body: []byte("async")})
	res, err = f.Wait(ctxT(t))
	if err != nil || res.Attempts != 2 {
		t.Fatalf("async send after a reset: %+v, %v", res, err)
	}
	if s := b.Stats(); s.Resets != 2 || s.Messages != 3 {
		t.Errorf("stats %+v", s)
	}
}

func TestCoreAsyncAvoidsHungBroker(t *testing.T) {
	t.Parallel()
	c := start(t, twoBrokers)
	p := newProducer(t, c, func(pc *core.ProducerConfig) { pc.AttemptTimeout = 300 * time.Millisecond })
	warm(t, p)
	if err := c.Broker("broker-a").SetFault(devbroker.Fault{Hang: true}); err != nil {
		t.Fatal(err)
	}
	// Resume before the producer closes, or its UNREGISTER_CLIENT waits out its timeout.
	t.Cleanup(func() { c.Broker("broker-a").SetFault(devbroker.Fault{}) })
	var wg sync.WaitGroup
	var mu sync.Mutex
	retried := 0
	for i := range 6 {
		wg.Add(1)
		err := p.SendAsync(ctxT(t), &core.Message{Topic: "TopicTest", Body: []byte{byte(i)}}, func(res *core.SendResult, err error) {
			defer wg.Done()
			if err != nil {
				t.Errorf("async send: %v", err)
				return
			}
			mu.Lock()
			defer mu.Unlock()
			if res.Queue.Broker != "broker-b" {
				t.Errorf("async send stored on %s, which hangs", res.Queue.Broker)
			}
			if res.Attempts > 1 {
				retried++
			}
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	wg.Wait()
	if retried == 0 {
		t.Errorf("no async send tried the hung broker first")
	}
}

func TestCoreRouteRefreshFollowsDownAndUp(t *testing.T) {
	t.Parallel()
	c := start(t, twoBrokers)
	p := newProducer(t, c, func(pc *core.ProducerConfig) { pc.Client.RouteRefresh = 20 * time.Millisecond })
	warm(t, p)
	queuesOf := func(broker string) int {
		n := 0
		for _, r := range p.Client().Routes() {
			if r.Topic == "TopicTest" {
				for _, q := range r.Queues {
					if q.Broker == broker {
						n++
					}
				}
			}
		}
		return n
	}
	a := c.Broker("broker-a")
	if err := a.Down(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the route refresh to drop broker-a", func() bool { return queuesOf("broker-a") == 0 })
	for _, res := range sendN(t, p, 4) {
		if res.Attempts != 1 || res.Queue.Broker != "broker-b" {
			t.Errorf("with broker-a out of the route: %d attempts to %s", res.Attempts, res.Queue.Broker)
		}
	}
	if err := a.Up(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the route refresh to bring broker-a back", func() bool { return queuesOf("broker-a") == 4 })
	brokers := map[string]bool{}
	for _, res := range sendN(t, p, 8) {
		brokers[res.Queue.Broker] = true
	}
	if !brokers["broker-a"] {
		t.Errorf("no send reached broker-a after it came back")
	}
}

// TestCoreRouteRefreshBatchesKeepTopicsApart: the scheduled refresh of many topics goes
// to the NameServer in batches (core.RouteRefreshBatch topics at a time), and every
// topic gets its own answer: half of the topics lose broker-a's write permission, and
// exactly those stop listing broker-a's queues.
func TestCoreRouteRefreshBatchesKeepTopicsApart(t *testing.T) {
	t.Parallel()
	const n = 4 * core.RouteRefreshBatch
	cfg := devbroker.Config{Brokers: []string{"broker-a", "broker-b"}, Topics: map[string]int{}}
	name := func(i int) string { return fmt.Sprintf("RB%03d", i) }
	for i := range n {
		cfg.Topics[name(i)] = 2
	}
	c := start(t, cfg)
	// n topics every 100ms: a bunch is the topics of 100ms of the cycle, so full batches.
	p := newProducer(t, c, func(pc *core.ProducerConfig) { pc.Client.RouteRefresh = 100 * time.Millisecond })
	for i := range n {
		if _, err := p.Send(ctxT(t), &core.Message{Topic: name(i), Body: []byte("x")}); err != nil {
			t.Fatal(err)
		}
	}
	for i := 1; i < n; i += 2 {
		if err := c.Broker("broker-a").SetTopicPerm(name(i), 4); err != nil { // read only
			t.Fatal(err)
		}
	}
	wrong := func() []string {
		var out []string
		for _, r := range p.Client().Routes() {
			onA := 0
			for _, q := range r.Queues {
				if q.Broker == "broker-a" {
					onA++
				}
			}
			var i int
			fmt.Sscanf(r.Topic, "RB%03d", &i)
			if want := 2 * ((i + 1) % 2); onA != want {
				out = append(out, fmt.Sprintf("%s: %d queues on broker-a, want %d", r.Topic, onA, want))
			}
		}
		return out
	}
	waitFor(t, "every topic's own route", func() bool { return len(wrong()) == 0 })
	// A few more cycles: the routes stay each topic's own.
	r := c.NameServerStats().Requests
	waitFor(t, "three more refresh cycles", func() bool { return c.NameServerStats().Requests-r >= 3*n })
	if w := wrong(); len(w) > 0 {
		t.Fatalf("after more cycles: %v", w)
	}
}
