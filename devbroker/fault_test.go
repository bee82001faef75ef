package devbroker_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/producerd/producerd/core"
	"github.com/producerd/producerd/devbroker"
	"github.com/producerd/producerd/remoting"
)

var twoBrokers = devbroker.Config{Brokers: []string{"broker-a", "broker-b"}, Topics: map[string]int{"TopicTest": 4}}

// sendN sends n messages and returns their results; any error fails the test.
func sendN(t *testing.T, p *core.Producer, n int) []*core.SendResult {
	t.Helper()
	var out []*core.SendResult
	for i := range n {
		res, err := p.Send(ctxT(t), &core.Message{Topic: "TopicTest", Body: []byte(fmt.Sprint("m", i))})
		if err != nil {
			t.Fatalf("send %d: %v", i, err)
		}
		out = append(out, res)
	}
	return out
}

// warm makes the producer fetch the route while every broker is healthy.
func warm(t *testing.T, p *core.Producer) {
	t.Helper()
	sendN(t, p, 1)
}

func TestFaultHang(t *testing.T) {
	t.Parallel()
	t.Run("raw request times out, then completes after resume", func(t *testing.T) {
		t.Parallel()
		c := start(t, devbroker.Config{Topics: map[string]int{"TopicTest": 1}})
		b := c.Broker("broker-a")
		if err := b.SetFault(devbroker.Fault{Hang: true}); err != nil {
			t.Fatal(err)
		}
		rc := newClient(t, remoting.Config{})
		ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
		defer cancel()
		_, err := rc.InvokeSync(ctx, b.Addr(), sendV2("TopicTest", 0, "held"))
		if !errors.Is(err, remoting.ErrTimeout) {
			t.Fatalf("request to a hung broker: %v, want ErrTimeout", err)
		}
		// The TCP connection was accepted: a hang is not a refusal.
		nc, err := net.Dial("tcp", b.Addr())
		if err != nil {
			t.Fatalf("dial a hung broker: %v", err)
		}
		nc.Close()
		if got := b.Stats().Messages; got != 0 {
			t.Errorf("a hung broker stored %d messages", got)
		}
		// Resuming processes the held request (like SIGCONT) and serves new ones.
		if err := b.SetFault(devbroker.Fault{}); err != nil {
			t.Fatal(err)
		}
		if resp := invoke(t, rc, b.Addr(), sendV2("TopicTest", 0, "after")); resp.Code != 0 {
			t.Fatalf("after resume: code %d", resp.Code)
		}
		waitFor(t, "the held request to be processed", func() bool { return b.Stats().Messages == 2 })
	})
	t.Run("send falls over to the other broker", func(t *testing.T) {
		t.Parallel()
		c := start(t, twoBrokers)
		p := newProducer(t, c, func(pc *core.ProducerConfig) { pc.AttemptTimeout = 300 * time.Millisecond })
		warm(t, p)
		if err := c.Broker("broker-a").SetFault(devbroker.Fault{Hang: true}); err != nil {
			t.Fatal(err)
		}
		// Resume before the producer closes, or its UNREGISTER_CLIENT waits out its timeout.
		t.Cleanup(func() { c.Broker("broker-a").SetFault(devbroker.Fault{}) })
		retried := 0
		for _, res := range sendN(t, p, 6) { // round-robin puts at least one first attempt on broker-a
			if res.Queue.Broker != "broker-b" {
				t.Errorf("message stored on %s while broker-a hangs", res.Queue.Broker)
			}
			if res.Attempts > 1 {
				retried++
			}
		}
		if retried == 0 {
			t.Errorf("no send tried the hung broker first")
		}
	})
}

func TestFaultDown(t *testing.T) {
	t.Parallel()
	c := start(t, twoBrokers)
	a := c.Broker("broker-a")
	addr := a.Addr()
	p := newProducer(t, c, nil)
	warm(t, p)

	if err := a.Down(); err != nil {
		t.Fatal(err)
	}
	_, err := net.Dial("tcp", addr)
	if !errors.Is(err, syscall.ECONNREFUSED) {
		t.Fatalf("dial a down broker: %v, want connection refused", err)
	}
	rc := newClient(t, remoting.Config{})
	resp := invoke(t, rc, c.NameServerAddr(), remoting.NewRequest(remoting.GetRouteInfoByTopic, map[string]string{"topic": "TopicTest"}, nil))
	if strings.Contains(string(resp.Body), "broker-a") {
		t.Errorf("a down broker is still routed: %s", resp.Body)
	}
	// The producer still has the old route: refused connects make it try broker-b.
	for _, res := range sendN(t, p, 4) {
		if res.Queue.Broker != "broker-b" {
			t.Errorf("sent to %s while broker-a is down", res.Queue.Broker)
		}
	}

	if err := a.Up(); err != nil {
		t.Fatal(err)
	}
	if a.Addr() != addr {
		t.Errorf("address changed from %s to %s", addr, a.Addr())
	}
	if r := invoke(t, rc, addr, sendV2("TopicTest", 0, "back")); r.Code != 0 {
		t.Errorf("send after Up: %d %s", r.Code, r.Remark)
	}
	resp = invoke(t, rc, c.NameServerAddr(), remoting.NewRequest(remoting.GetRouteInfoByTopic, map[string]string{"topic": "TopicTest"}, nil))
	if !strings.Contains(string(resp.Body), `"brokerName":"broker-a"`) {
		t.Errorf("broker-a not routed after Up: %s", resp.Body)
	}

	// RouteListed keeps a down broker in routes; RouteHidden hides a live one.
	if err := a.SetFault(devbroker.Fault{Down: true, Route: devbroker.RouteListed}); err != nil {
		t.Fatal(err)
	}
	resp = invoke(t, rc, c.NameServerAddr(), remoting.NewRequest(remoting.GetRouteInfoByTopic, map[string]string{"topic": "TopicTest"}, nil))
	if !strings.Contains(string(resp.Body), `"brokerName":"broker-a"`) {
		t.Errorf("RouteListed: broker-a not routed: %s", resp.Body)
	}
	if err := c.Broker("broker-b").SetFault(devbroker.Fault{Route: devbroker.RouteHidden}); err != nil {
		t.Fatal(err)
	}
	resp = invoke(t, rc, c.NameServerAddr(), remoting.NewRequest(remoting.GetRouteInfoByTopic, map[string]string{"topic": "TopicTest"}, nil))
	if strings.Contains(string(resp.Body), `"brokerName":"broker-b"`) {
		t.Errorf("RouteHidden: broker-b still routed: %s", resp.Body)
	}
}

func TestFaultErrorCodes(t *testing.T) {
	t.Parallel()
	t.Run("SYSTEM_BUSY is retried on the other broker", func(t *testing.T) {
		t.Parallel()
		c := start(t, twoBrokers)
		p := newProducer(t, c, nil)
		warm(t, p)
		a := c.Broker("broker-a")
		if err := a.SetFault(devbroker.Fault{Errors: []devbroker.InjectedError{{Code: remoting.SystemBusy, Rate: 1}}}); err != nil {
			t.Fatal(err)
		}
		for _, res := range sendN(t, p, 6) {
			if res.Queue.Broker != "broker-b" {
				t.Errorf("stored on %s, which answers SYSTEM_BUSY", res.Queue.Broker)
			}
		}
		rc := newClient(t, remoting.Config{})
		resp := invoke(t, rc, a.Addr(), sendV2("TopicTest", 0, "x"))
		if resp.Code != int32(remoting.SystemBusy) || !strings.HasPrefix(resp.Remark, "[REJECTREQUEST]") {
			t.Errorf("raw send: code %d remark %q", resp.Code, resp.Remark)
		}
		if s := a.Stats(); s.InjectedErrors == 0 || s.SendErrors != s.InjectedErrors || s.Messages != int64(len(a.Messages(""))) {
			t.Errorf("stats %+v", s)
		}
	})
	t.Run("a non-retryable code fails the send", func(t *testing.T) {
		t.Parallel()
		c := start(t, devbroker.Config{Topics: map[string]int{"TopicTest": 4}})
		p := newProducer(t, c, nil)
		warm(t, p)
		if err := c.Broker("broker-a").SetFault(devbroker.Fault{Errors: []devbroker.InjectedError{{Code: remoting.MessageIllegal, Rate: 1, Remark: "nope"}}}); err != nil {
			t.Fatal(err)
		}
		_, err := p.Send(ctxT(t), &core.Message{Topic: "TopicTest", Body: []byte("x")})
		var re *remoting.Error
		var se *core.SendError
		if !errors.As(err, &re) || re.Code != remoting.MessageIllegal || re.Remark != "nope" || !errors.As(err, &se) || se.Attempts != 1 {
			t.Fatalf("send: %v", err)
		}
	})
	t.Run("FLUSH_DISK_TIMEOUT stores the message", func(t *testing.T) {
		t.Parallel()
		c := start(t, devbroker.Config{Topics: map[string]int{"TopicTest": 4}})
		p := newProducer(t, c, nil)
		if err := c.Broker("broker-a").SetFault(devbroker.Fault{Errors: []devbroker.InjectedError{{Code: remoting.FlushDiskTimeout, Rate: 1}}}); err != nil {
			t.Fatal(err)
		}
		m := &core.Message{Topic: "TopicTest", Body: []byte("stored anyway")}
		res, err := p.Send(ctxT(t), m)
		if err != nil || res.Status != core.FlushDiskTimeout {
			t.Fatalf("send: %+v, %v", res, err)
		}
		checkStored(t, p, m, res.OffsetMsgID, res.MsgID)
	})
	t.Run("half the requests", func(t *testing.T) {
		t.Parallel()
		c := start(t, devbroker.Config{Topics: map[string]int{"TopicTest": 1}, Seed: 42})
		b := c.Broker("broker-a")
		if err := b.SetFault(devbroker.Fault{AllRequests: true, Errors: []devbroker.InjectedError{{Code: remoting.SystemError, Rate: 0.5}}}); err != nil {
			t.Fatal(err)
		}
		rc := newClient(t, remoting.Config{})
		codes := map[int32]int{}
		for range 200 {
			codes[invoke(t, rc, b.Addr(), remoting.NewRequest(remoting.GetMaxOffset, map[string]string{"topic": "TopicTest", "queueId": "0"}, nil)).Code]++
		}
		if codes[0] == 0 || codes[1] == 0 || codes[0]+codes[1] != 200 {
			t.Errorf("answers by code %v", codes)
		}
	})
}

func TestFaultLatency(t *testing.T) {
	t.Parallel()
	t.Run("answers arrive late but arrive", func(t *testing.T) {
		t.Parallel()
		c := start(t, devbroker.Config{Topics: map[string]int{"TopicTest": 1}})
		b := c.Broker("broker-a")
		err := b.SetFault(devbroker.Fault{Latency: devbroker.Latency{Fixed: 20 * time.Millisecond, Jitter: 10 * time.Millisecond,
			Percentiles: []devbroker.Percentile{{P: 50, D: time.Millisecond}, {P: 100, D: 5 * time.Millisecond}}}})
		if err != nil {
			t.Fatal(err)
		}
		rc := newClient(t, remoting.Config{})
		var wg sync.WaitGroup
		for i := range 10 { // concurrent requests on one connection are delayed independently
			wg.Add(1)
			go func() {
				defer wg.Done()
				ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
				defer cancel()
				resp, err := rc.InvokeSync(ctx, b.Addr(), sendV2("TopicTest", 0, fmt.Sprint(i)))
				if err != nil || resp.Code != 0 {
					t.Errorf("request %d: %v", i, err)
				}
			}()
		}
		wg.Wait()
	})
	// Every request is slow, heartbeats too: the producer's liveness probe goes unanswered,
	// so it abandons the attempt (a broker that only stores slowly keeps its attempt).
	t.Run("a slow broker is abandoned but has stored the message", func(t *testing.T) {
		t.Parallel()
		c := start(t, twoBrokers)
		p := newProducer(t, c, func(pc *core.ProducerConfig) { pc.AttemptTimeout = 300 * time.Millisecond })
		warm(t, p)
		a := c.Broker("broker-a")
		before := a.Stats().Messages
		if err := a.SetFault(devbroker.Fault{Latency: devbroker.Latency{Fixed: time.Hour}, AllRequests: true}); err != nil {
			t.Fatal(err)
		}
		retried := 0
		for _, res := range sendN(t, p, 6) {
			if res.Queue.Broker != "broker-b" {
				t.Errorf("answer from %s, whose answers take an hour", res.Queue.Broker)
			}
			if res.Attempts > 1 {
				retried++
			}
		}
		if retried == 0 || a.Stats().Messages == before {
			t.Errorf("%d sends retried; broker-a stored %d messages before, %d after", retried, before, a.Stats().Messages)
		}
	})
}

func TestFaultResets(t *testing.T) {
	t.Parallel()
	c := start(t, devbroker.Config{Topics: map[string]int{"TopicTest": 1}})
	b := c.Broker("broker-a")
	if err := b.SetFault(devbroker.Fault{Resets: 2}); err != nil {
		t.Fatal(err)
	}
	rc := newClient(t, remoting.Config{})
	for i := range 2 {
		_, err := rc.InvokeSync(ctxT(t), b.Addr(), sendV2("TopicTest", 0, "reset"))
		if !errors.Is(err, remoting.ErrConnClosed) {
			t.Fatalf("request %d: %v, want ErrConnClosed", i, err)
		}
	}
	if resp := invoke(t, rc, b.Addr(), sendV2("TopicTest", 0, "ok")); resp.Code != 0 {
		t.Fatalf("third request: code %d", resp.Code)
	}
	if s := b.Stats(); s.Resets != 2 || s.Messages != 1 || b.Fault().Resets != 0 {
		t.Errorf("stats %+v, resets left %d", s, b.Fault().Resets)
	}
}

func TestTimelineManual(t *testing.T) {
	t.Parallel()
	cfg := twoBrokers
	cfg.ManualTimeline = true
	cfg.Timeline = devbroker.Timeline{
		{At: 20 * time.Second, Broker: "broker-a", Fault: devbroker.Fault{}},
		{At: 10 * time.Second, Broker: "broker-a", Fault: devbroker.Fault{Down: true}},
		{At: 10 * time.Second, Broker: "broker-b", Fault: devbroker.Fault{Hang: true}},
		{At: 30 * time.Second, Broker: "broker-b", Fault: devbroker.Fault{}},
	}
	c := start(t, cfg)
	a, b := c.Broker("broker-a"), c.Broker("broker-b")
	if got := c.AdvanceTimeline(5 * time.Second); len(got) != 0 {
		t.Fatalf("applied %d events at 5s", len(got))
	}
	if got := c.AdvanceTimeline(10 * time.Second); len(got) != 2 || !a.Fault().Down || !b.Fault().Hang {
		t.Fatalf("at 10s applied %d events; a %+v b %+v", len(got), a.Fault(), b.Fault())
	}
	if nc, err := net.Dial("tcp", a.Addr()); err == nil {
		nc.Close()
		t.Errorf("broker-a accepts while down")
	}
	if got := c.AdvanceTimeline(time.Minute); len(got) != 2 || a.Fault().Down || b.Fault().Hang {
		t.Fatalf("at 60s applied %d events; a %+v b %+v", len(got), a.Fault(), b.Fault())
	}
	rc := newClient(t, remoting.Config{})
	if resp := invoke(t, rc, a.Addr(), sendV2("TopicTest", 0, "x")); resp.Code != 0 {
		t.Errorf("broker-a after the timeline: code %d", resp.Code)
	}
}

// fakeClock is a Clock that moves only when told.
type fakeClock struct {
	mu      sync.Mutex
	now     time.Time
	waiters []waiter
}

type waiter struct {
	at time.Time
	ch chan time.Time
}

func (f *fakeClock) Now() time.Time {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.now
}

func (f *fakeClock) After(d time.Duration) <-chan time.Time {
	f.mu.Lock()
	defer f.mu.Unlock()
	ch := make(chan time.Time, 1)
	f.waiters = append(f.waiters, waiter{f.now.Add(d), ch})
	return ch
}

func (f *fakeClock) Advance(d time.Duration) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.now = f.now.Add(d)
	kept := f.waiters[:0]
	for _, w := range f.waiters {
		if !w.at.After(f.now) {
			w.ch <- f.now
		} else {
			kept = append(kept, w)
		}
	}
	f.waiters = kept
}

func TestTimelineClock(t *testing.T) {
	t.Parallel()
	clk := &fakeClock{now: time.Unix(1_700_000_000, 0)}
	cfg := twoBrokers
	cfg.Clock = clk
	cfg.Timeline = devbroker.Timeline{
		{At: 10 * time.Second, Broker: "broker-b", Fault: devbroker.Fault{Down: true}},
		{At: 20 * time.Second, Broker: "broker-b", Fault: devbroker.Fault{Errors: []devbroker.InjectedError{{Code: remoting.SystemBusy, Rate: 1}}}},
	}
	c := start(t, cfg)
	b := c.Broker("broker-b")
	clk.Advance(9 * time.Second)
	if b.Fault().Down {
		t.Fatalf("event applied before its time")
	}
	clk.Advance(time.Second)
	waitFor(t, "broker-b down at 10s", func() bool { return b.Fault().Down })
	clk.Advance(10 * time.Second)
	waitFor(t, "broker-b up and busy at 20s", func() bool { f := b.Fault(); return !f.Down && len(f.Errors) == 1 })
	rc := newClient(t, remoting.Config{})
	if resp := invoke(t, rc, b.Addr(), sendV2("TopicTest", 0, "x")); resp.Code != int32(remoting.SystemBusy) {
		t.Errorf("code %d, want SYSTEM_BUSY", resp.Code)
	}
}

func TestInvalidConfigAndFault(t *testing.T) {
	t.Parallel()
	bad := []devbroker.Config{
		{Brokers: []string{"a", "a"}},
		{Brokers: []string{"has space"}},
		{Topics: map[string]int{"T": 0}},
		{Host: "localhost"},
		{Timeline: devbroker.Timeline{{Broker: "nobody"}}},
		{Timeline: devbroker.Timeline{{Broker: "broker-a", Fault: devbroker.Fault{Resets: -1}}}},
	}
	for i, cfg := range bad {
		if c, err := devbroker.Start(context.Background(), cfg); !errors.Is(err, devbroker.ErrInvalidConfig) {
			if c != nil {
				c.Close()
			}
			t.Errorf("config %d: %v, want ErrInvalidConfig", i, err)
		}
	}
	c := start(t, devbroker.Config{})
	faults := []devbroker.Fault{
		{Errors: []devbroker.InjectedError{{Code: remoting.SystemBusy, Rate: 0.7}, {Code: remoting.SystemError, Rate: 0.7}}},
		{Errors: []devbroker.InjectedError{{Code: remoting.Success, Rate: 0.1}}},
		{Latency: devbroker.Latency{Percentiles: []devbroker.Percentile{{P: 90, D: 1}, {P: 50, D: 2}}}},
		{Route: 7},
	}
	for i, f := range faults {
		if err := c.Broker("broker-a").SetFault(f); !errors.Is(err, devbroker.ErrInvalidFault) {
			t.Errorf("fault %d: %v, want ErrInvalidFault", i, err)
		}
	}
	c.Close()
	if err := c.Broker("broker-a").SetFault(devbroker.Fault{}); !errors.Is(err, devbroker.ErrClosed) {
		t.Errorf("SetFault after Close: %v", err)
	}
}
