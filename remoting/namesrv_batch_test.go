package remoting

import (
	"context"
	"errors"
	"fmt"
	"net"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// writeCounter counts the Write calls on a connection. It hides the TCP connection's
// vectored write, so a caller's direct write (header and body) takes two calls and the
// writer goroutine's (its queue, one buffer) one.
type writeCounter struct {
	net.Conn
	writes *atomic.Int32
}

func (w writeCounter) Write(b []byte) (int, error) {
	w.writes.Add(1)
	return w.Conn.Write(b)
}

// batchOfOne is InvokeNameServerBatch with one request, shaped as InvokeNameServerUntil.
func batchOfOne(c *Client) func(context.Context, *Command, time.Time) (*Command, string, error) {
	return func(ctx context.Context, req *Command, deadline time.Time) (*Command, string, error) {
		resps, errs := make([]*Command, 1), make([]error, 1)
		addr := c.InvokeNameServerBatch(ctx, []*Command{req}, deadline, resps, errs)
		return resps[0], addr, errs[0]
	}
}

// topicReqs returns n route requests for topics T0..Tn-1, each with a body: a caller's
// direct write of one would take two counted writes.
func topicReqs(n int) []*Command {
	reqs := make([]*Command, n)
	for i := range reqs {
		reqs[i] = NewRequest(GetRouteInfoByTopic, map[string]string{"topic": fmt.Sprint("T", i)}, []byte("body"))
	}
	return reqs
}

// TestNameServerBatchOneWrite: a batch's frames go out together, in one write of the
// connection's writer as a rule, and every request gets its own answer. The writer can
// catch part of a batch when it is still running from the batch before (or starting,
// on a new connection), so the count allows a few extra writes over ten batches: one by
// one the 16 requests would take 32 (a caller's direct write is two counted calls).
func TestNameServerBatchOneWrite(t *testing.T) {
	t.Parallel()
	ns := startNameServer(t)
	var writes atomic.Int32
	c := newClient(t, Config{Dialer: func(ctx context.Context, network, addr string) (net.Conn, error) {
		nc, err := (&net.Dialer{}).DialContext(ctx, network, addr)
		if err != nil {
			return nil, err
		}
		return writeCounter{nc, &writes}, nil
	}})
	c.SetNameServers([]string{ns.addr})
	const rounds = 10
	var before int32
	for round := range rounds + 1 {
		if round == 1 {
			before = writes.Load() // round 0 opened the connection
		}
		reqs := topicReqs(16)
		resps, errs := make([]*Command, len(reqs)), make([]error, len(reqs))
		if addr := c.InvokeNameServerBatch(context.Background(), reqs, time.Now().Add(10*time.Second), resps, errs); addr != ns.addr {
			t.Fatalf("asked %q, want %s", addr, ns.addr)
		}
		for i := range reqs {
			if errs[i] != nil {
				t.Fatalf("round %d request %d: %v", round, i, errs[i])
			}
			if got, want := resps[i].ExtFields["topic"], reqs[i].ExtFields["topic"]; got != want {
				t.Fatalf("round %d: request for %s got the answer for %s", round, want, got)
			}
		}
	}
	if got := writes.Load() - before; got > rounds+rounds/2 {
		t.Errorf("%d writes for %d batches of 16, want about one each", got, rounds)
	}
}

// TestNameServerBatchPartialAnswers: a NameServer that answers only some requests of a
// batch: those get their answers, the others time out at the deadline, and the timeout
// moves the next request on to another NameServer.
func TestNameServerBatchPartialAnswers(t *testing.T) {
	t.Parallel()
	var seen atomic.Int32
	half := startServer(t, func(fc *fakeConn) {
		for {
			req, err := fc.read()
			if err != nil {
				return
			}
			if seen.Add(1)%2 == 1 {
				fc.send(echoResponse(req), JSON)
			}
		}
	})
	c := newClient(t, Config{})
	c.SetNameServers([]string{half.addr})
	reqs := topicReqs(6)
	resps, errs := make([]*Command, len(reqs)), make([]error, len(reqs))
	c.InvokeNameServerBatch(context.Background(), reqs, time.Now().Add(300*time.Millisecond), resps, errs)
	for i := range reqs {
		if i%2 == 0 {
			if errs[i] != nil || resps[i].ExtFields["topic"] != reqs[i].ExtFields["topic"] {
				t.Errorf("request %d: %v, %v; want its answer", i, resps[i], errs[i])
			}
		} else if !errors.Is(errs[i], ErrTimeout) || resps[i] != nil {
			t.Errorf("request %d: %v, %v; want a timeout", i, resps[i], errs[i])
		}
	}
	c.ns.mu.Lock()
	chosen := c.ns.chosen
	c.ns.mu.Unlock()
	if chosen != "" {
		t.Errorf("%s still chosen after a batch timed out on it", chosen)
	}
}

// choose makes addr the chosen NameServer, at its place in the rotation.
func choose(c *Client, addr string) {
	c.ns.mu.Lock()
	defer c.ns.mu.Unlock()
	c.ns.chosen, c.ns.index = addr, slices.Index(c.ns.list, addr)
}

// TestNameServerBatchFailover: when the chosen NameServer's connection cannot be opened,
// the whole batch goes to the next one, dialling the dead one once, not per request;
// with none reachable every request says how many were tried.
func TestNameServerBatchFailover(t *testing.T) {
	t.Parallel()
	dead := closedAddr(t)
	live := startNameServer(t)
	var dials atomic.Int32
	c := newClient(t, Config{Dialer: func(ctx context.Context, network, addr string) (net.Conn, error) {
		if addr == dead {
			dials.Add(1)
		}
		return (&net.Dialer{}).DialContext(ctx, network, addr)
	}})
	c.SetNameServers([]string{dead, live.addr})
	choose(c, dead)
	reqs := topicReqs(8)
	resps, errs := make([]*Command, len(reqs)), make([]error, len(reqs))
	if addr := c.InvokeNameServerBatch(context.Background(), reqs, time.Now().Add(10*time.Second), resps, errs); addr != live.addr {
		t.Fatalf("answered by %q, want %s", addr, live.addr)
	}
	for i := range reqs {
		if errs[i] != nil || resps[i].ExtFields["topic"] != reqs[i].ExtFields["topic"] {
			t.Fatalf("request %d: %v, %v", i, resps[i], errs[i])
		}
	}
	if n := dials.Load(); n != 1 {
		t.Errorf("dialled the dead NameServer %d times for one batch, want 1", n)
	}

	c.SetNameServers([]string{dead})
	c.InvokeNameServerBatch(context.Background(), reqs, time.Now().Add(10*time.Second), resps, errs)
	for i := range reqs {
		if !errors.Is(errs[i], ErrConnect) || resps[i] != nil {
			t.Fatalf("request %d with no NameServer reachable: %v, %v", i, resps[i], errs[i])
		}
	}
	if want := "(1 tried)"; !strings.Contains(errs[0].Error(), want) {
		t.Errorf("error %q does not say %s", errs[0], want)
	}
}

// TestNameServerBatchCancelled: a context cancelled while a batch waits gives every
// request not answered up as cancelled; none is left pending on the connection.
func TestNameServerBatchCancelled(t *testing.T) {
	t.Parallel()
	ns := startNameServer(t)
	ns.silent.Store(true)
	c := newClient(t, Config{})
	c.SetNameServers([]string{ns.addr})
	ctx, cancel := context.WithCancel(context.Background())
	reqs := topicReqs(4)
	resps, errs := make([]*Command, len(reqs)), make([]error, len(reqs))
	done := make(chan struct{})
	go func() {
		defer close(done)
		c.InvokeNameServerBatch(ctx, reqs, time.Now().Add(time.Minute), resps, errs)
	}()
	eventually(t, "the batch pending on its connection", func() bool {
		conns := c.Conns()
		return len(conns) == 1 && conns[0].Pending == len(reqs)
	})
	cancel()
	<-done
	for i := range reqs {
		if !errors.Is(errs[i], context.Canceled) {
			t.Errorf("request %d: %v, want context.Canceled", i, errs[i])
		}
	}
	if p := c.Conns()[0].Pending; p != 0 {
		t.Errorf("%d requests left pending", p)
	}
}

// TestNameServerBatchFillsTheQueue: a batch whose held frames fill the connection's
// write queue wakes the writer to make room rather than waiting for it until the
// deadline (only the writer frees queue space, and held frames do not wake it).
func TestNameServerBatchFillsTheQueue(t *testing.T) {
	t.Parallel()
	ns := startNameServer(t)
	c := newClient(t, Config{})
	c.SetNameServers([]string{ns.addr})
	reqs := make([]*Command, 3)
	for i := range reqs {
		reqs[i] = NewRequest(GetRouteInfoByTopic, map[string]string{"topic": fmt.Sprint("T", i)}, make([]byte, maxQueuedBytes*6/10))
	}
	resps, errs := make([]*Command, len(reqs)), make([]error, len(reqs))
	c.InvokeNameServerBatch(context.Background(), reqs, time.Now().Add(time.Minute), resps, errs)
	for i := range reqs {
		if errs[i] != nil || resps[i].ExtFields["topic"] != reqs[i].ExtFields["topic"] {
			t.Errorf("request %d of %d KiB: %v, %v", i, len(reqs[i].Body)>>10, resps[i], errs[i])
		}
	}
}
