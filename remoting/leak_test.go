package remoting

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"
)

// TestNoLeaks opens, breaks, times out and idles connections, then checks that no pending
// entry and, after Close, no goroutine remains. Not parallel: goleak sees the whole process.
func TestNoLeaks(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())

	var conns atomic.Int32
	// The server's behaviour depends on the request: echo, stay silent, or reset.
	srv := startServer(t, func(fc *fakeConn) {
		conns.Add(1)
		for {
			req, err := fc.read()
			if err != nil {
				return
			}
			switch req.ExtFields["do"] {
			case "silent":
			case "reset":
				fc.reset()
				return
			default:
				if !req.IsOneway() {
					fc.send(echoResponse(req), req.Serialize)
				}
			}
		}
	})
	idle := startServer(t, echo)
	c, err := NewClient(Config{IdleTimeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	do := func(what string) *Command { return NewRequest(HeartBeat, map[string]string{"do": what}, nil) }
	ctx := func(d time.Duration) context.Context { return ctxTimeout(t, d) }

	// Echo, sync and async and oneway.
	if _, err := c.InvokeSync(ctx(10*time.Second), srv.addr, do("echo")); err != nil {
		t.Fatal(err)
	}
	asyncDone := make(chan error, 8)
	cb := func(_ *Command, err error) { asyncDone <- err }
	if err := c.InvokeAsync(ctx(10*time.Second), srv.addr, do("echo"), cb); err != nil {
		t.Fatal(err)
	}
	if err := recv(t, asyncDone, "async echo"); err != nil {
		t.Fatal(err)
	}
	if err := c.InvokeOneway(ctx(10*time.Second), srv.addr, do("echo")); err != nil {
		t.Fatal(err)
	}
	// Timeouts: sync and async, the connection closes (silent peer).
	if _, err := c.InvokeSync(ctx(150*time.Millisecond), srv.addr, do("silent")); !errors.Is(err, ErrTimeout) {
		t.Fatalf("sync timeout: %v", err)
	}
	if err := c.InvokeAsync(ctx(150*time.Millisecond), srv.addr, do("silent"), cb); err != nil {
		t.Fatal(err)
	}
	if err := recv(t, asyncDone, "async timeout"); !errors.Is(err, ErrTimeout) {
		t.Fatalf("async timeout: %v", err)
	}
	// Broken connection with requests pending.
	if err := c.InvokeAsync(ctx(time.Minute), srv.addr, do("silent"), cb); err != nil {
		t.Fatal(err)
	}
	if _, err := c.InvokeSync(ctx(time.Minute), srv.addr, do("reset")); !errors.Is(err, ErrConnClosed) {
		t.Fatalf("reset: %v", err)
	}
	if err := recv(t, asyncDone, "async on reset connection"); !errors.Is(err, ErrConnClosed) {
		t.Fatalf("async on reset: %v", err)
	}
	// Idle close.
	if _, err := c.InvokeSync(ctx(10*time.Second), idle.addr, do("echo")); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the idle connection to close", func() bool {
		for _, ci := range c.Conns() {
			if ci.Addr == idle.addr {
				return false
			}
		}
		return true
	})
	// Nothing pending anywhere.
	for _, ci := range c.Conns() {
		if ci.Pending != 0 || ci.Queued != 0 {
			t.Errorf("leftover on %+v", ci)
		}
	}
	// A request pending at Close.
	if err := c.InvokeAsync(ctx(time.Minute), srv.addr, do("silent"), cb); err != nil {
		t.Fatal(err)
	}
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	if err := recv(t, asyncDone, "async at Close"); !errors.Is(err, ErrClosed) {
		t.Fatalf("async at Close: %v", err)
	}
	if len(c.Conns()) != 0 {
		t.Errorf("Conns after Close: %+v", c.Conns())
	}
	if conns.Load() < 3 {
		t.Errorf("%d server connections, want re-dials after the breaks", conns.Load())
	}
	srv.close()
	idle.close()
}
