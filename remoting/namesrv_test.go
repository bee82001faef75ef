package remoting

import (
	"context"
	"errors"
	"slices"
	"sync/atomic"
	"testing"
	"time"
)

// nsServer echoes, or stays silent while its silent flag is set.
type nsServer struct {
	*fakeServer
	silent atomic.Bool
	served atomic.Int32
}

func startNameServer(t *testing.T) *nsServer {
	ns := &nsServer{}
	ns.fakeServer = startServer(t, func(fc *fakeConn) {
		for {
			req, err := fc.read()
			if err != nil {
				return
			}
			if ns.silent.Load() {
				continue
			}
			ns.served.Add(1)
			fc.send(echoResponse(req), JSON)
		}
	})
	return ns
}

func routeReq() *Command {
	return NewRequest(GetRouteInfoByTopic, map[string]string{"topic": "T"}, nil)
}

func TestSetNameServers(t *testing.T) {
	t.Parallel()
	c := newClient(t, Config{})
	c.SetNameServers([]string{" a:1 ", "b:2", "", "a:1", "c:3"})
	got := c.NameServers()
	if !sameSet(got, []string{"a:1", "b:2", "c:3"}) || len(got) != 3 {
		t.Fatalf("NameServers = %v", got)
	}
	// Same set in another order: nothing changes (no reshuffle).
	c.SetNameServers([]string{"c:3", "b:2", "a:1"})
	if again := c.NameServers(); !slices.Equal(again, got) {
		t.Errorf("same set reshuffled: %v -> %v", got, again)
	}
	// Shuffling: across many changes, more than one order shows up.
	orders := map[string]bool{}
	for i := range 50 {
		list := []string{"a:1", "b:2", "c:3", "d:4"}
		if i%2 == 0 {
			list = list[:3]
		}
		c.SetNameServers(list)
		orders[c.NameServers()[0]] = true
	}
	if len(orders) < 2 {
		t.Errorf("list never shuffled: %v", orders)
	}
	// NameServers returns a copy.
	l := c.NameServers()
	l[0] = "mutated"
	if c.NameServers()[0] == "mutated" {
		t.Error("NameServers exposes internal state")
	}
}

func TestInvokeNameServerSticky(t *testing.T) {
	t.Parallel()
	servers := []*nsServer{startNameServer(t), startNameServer(t), startNameServer(t)}
	c := newClient(t, Config{})
	c.SetNameServers([]string{servers[0].addr, servers[1].addr, servers[2].addr})
	var first string
	for i := range 10 {
		resp, addr, err := c.InvokeNameServer(ctxTimeout(t, 10*time.Second), routeReq())
		if err != nil {
			t.Fatal(err)
		}
		if resp.ExtFields["topic"] != "T" {
			t.Fatalf("response %+v", resp)
		}
		if i == 0 {
			first = addr
		} else if addr != first {
			t.Fatalf("call %d went to %s, want sticky %s", i, addr, first)
		}
	}
	// Removing the chosen one from the list makes the next call choose another.
	var rest []string
	for _, s := range servers {
		if s.addr != first {
			rest = append(rest, s.addr)
		}
	}
	c.SetNameServers(rest)
	_, addr, err := c.InvokeNameServer(ctxTimeout(t, 10*time.Second), routeReq())
	if err != nil {
		t.Fatal(err)
	}
	if addr == first || !slices.Contains(rest, addr) {
		t.Errorf("after removal went to %s, want one of %v", addr, rest)
	}
}

func TestInvokeNameServerRotatesOnConnectFailure(t *testing.T) {
	t.Parallel()
	live := startNameServer(t)
	var d countingDialer
	c := newClient(t, Config{Dialer: d.dial})
	dead1, dead2 := closedAddr(t), closedAddr(t)
	for range 5 { // whatever the shuffled order, the live one is found within len(list) tries
		c.SetNameServers(nil)
		c.SetNameServers([]string{dead1, dead2, live.addr})
		_, addr, err := c.InvokeNameServer(ctxTimeout(t, 10*time.Second), routeReq())
		if err != nil {
			t.Fatal(err)
		}
		if addr != live.addr {
			t.Fatalf("answered by %s", addr)
		}
	}

	c2 := newClient(t, Config{Dialer: d.dial})
	c2.SetNameServers([]string{dead1, dead2})
	before := d.n.Load()
	_, _, err := c2.InvokeNameServer(ctxTimeout(t, 10*time.Second), routeReq())
	if !errors.Is(err, ErrConnect) {
		t.Fatalf("got %v, want ErrConnect", err)
	}
	if n := d.n.Load() - before; n != 2 {
		t.Errorf("%d dials, want one per listed address (2)", n)
	}
}

func TestInvokeNameServerMovesOnAfterTimeout(t *testing.T) {
	t.Parallel()
	a, b := startNameServer(t), startNameServer(t)
	byAddr := map[string]*nsServer{a.addr: a, b.addr: b}
	c := newClient(t, Config{})
	c.SetNameServers([]string{a.addr, b.addr})
	_, chosen, err := c.InvokeNameServer(ctxTimeout(t, 10*time.Second), routeReq())
	if err != nil {
		t.Fatal(err)
	}
	byAddr[chosen].silent.Store(true)
	_, addr, err := c.InvokeNameServer(ctxTimeout(t, 200*time.Millisecond), routeReq())
	if !errors.Is(err, ErrTimeout) || addr != chosen {
		t.Fatalf("got %s, %v; want a timeout from %s", addr, err, chosen)
	}
	_, next, err := c.InvokeNameServer(ctxTimeout(t, 10*time.Second), routeReq())
	if err != nil {
		t.Fatal(err)
	}
	if next == chosen {
		t.Fatalf("stayed on the timed-out %s", chosen)
	}
}

// TestInvokeNameServerUntil: the deadline value ends a call to a silent NameServer as a
// context's would, alone or in a batch, and a context ended first still ends it.
func TestInvokeNameServerUntil(t *testing.T) {
	t.Parallel()
	ns := startNameServer(t)
	c := newClient(t, Config{})
	c.SetNameServers([]string{ns.addr})
	ns.silent.Store(true)
	for name, call := range map[string]func(context.Context, *Command, time.Time) (*Command, string, error){
		"until": c.InvokeNameServerUntil, "batch": batchOfOne(c),
	} {
		if _, _, err := call(context.Background(), routeReq(), time.Now().Add(100*time.Millisecond)); !errors.Is(err, ErrTimeout) {
			t.Errorf("%s: past the deadline: got %v, want ErrTimeout", name, err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		if _, _, err := call(ctx, routeReq(), time.Now().Add(time.Minute)); !errors.Is(err, context.Canceled) {
			t.Errorf("%s: cancelled context: got %v, want context.Canceled", name, err)
		}
	}
	ns.silent.Store(false)
	if resp, _, err := c.InvokeNameServerUntil(context.Background(), routeReq(), time.Now().Add(10*time.Second)); err != nil || resp.ExtFields["topic"] != "T" {
		t.Fatalf("answered: %v, %v", resp, err)
	}
}

// TestInvokeNameServerEmpty: with no NameServer set a request, and every request of a
// batch, fails with ErrNoNameServer.
func TestInvokeNameServerEmpty(t *testing.T) {
	t.Parallel()
	c := newClient(t, Config{})
	if _, _, err := c.InvokeNameServer(ctxTimeout(t, time.Second), routeReq()); !errors.Is(err, ErrNoNameServer) {
		t.Fatalf("got %v", err)
	}
	errs := make([]error, 2)
	c.InvokeNameServerBatch(context.Background(), []*Command{routeReq(), routeReq()}, time.Time{}, make([]*Command, 2), errs)
	for i, err := range errs {
		if !errors.Is(err, ErrNoNameServer) {
			t.Fatalf("batch request %d: got %v, want ErrNoNameServer", i, err)
		}
	}
}
