package remoting

import (
	"context"
	"fmt"
	"net"
	"strconv"
	"sync"
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

// TestNameServerRequestsCoalesce: a NameServer request alone on its connection is
// written by its caller; one sent while another is in flight is queued for the writer
// (the route refresh's bunches share a write), and both are answered. A plain sync
// request in the same position is written by its caller.
func TestNameServerRequestsCoalesce(t *testing.T) {
	t.Parallel()
	for _, coalesce := range []bool{true, false} {
		t.Run("coalesce="+strconv.FormatBool(coalesce), func(t *testing.T) {
			t.Parallel()
			var mu sync.Mutex
			var held []*Command
			answer := make(chan struct{})
			srv := startServer(t, func(fc *fakeConn) {
				for {
					req, err := fc.read()
					if err != nil {
						return
					}
					mu.Lock()
					held = append(held, req)
					n := len(held)
					mu.Unlock()
					if n == 2 {
						<-answer
						for _, r := range held {
							if fc.send(echoResponse(r), r.Serialize) != nil {
								return
							}
						}
					}
				}
			})
			var writes atomic.Int32
			c := newClient(t, Config{Dialer: func(ctx context.Context, network, addr string) (net.Conn, error) {
				nc, err := (&net.Dialer{}).DialContext(ctx, network, addr)
				if err != nil {
					return nil, err
				}
				return writeCounter{nc, &writes}, nil
			}})
			c.SetNameServers([]string{srv.addr})
			invoke := func(n string) (*Command, error) {
				req := NewRequest(GetRouteInfoByTopic, map[string]string{"topic": n}, nil)
				if coalesce {
					resp, _, err := c.InvokeNameServer(ctxTimeout(t, 10*time.Second), req)
					return resp, err
				}
				return c.InvokeSync(ctxTimeout(t, 10*time.Second), srv.addr, req)
			}
			errs := make(chan error, 2)
			check := func(n string) {
				resp, err := invoke(n)
				if err == nil && resp.ExtFields["topic"] != n {
					err = fmt.Errorf("request %s got the answer for %s", n, resp.ExtFields["topic"])
				}
				errs <- err
			}
			go check("a")
			eventually(t, "the first request at the server", func() bool {
				mu.Lock()
				defer mu.Unlock()
				return len(held) == 1
			})
			if got := writes.Load(); got != 2 {
				t.Fatalf("the first request took %d writes, want 2 (its caller's header and body)", got)
			}
			go check("b")
			eventually(t, "the second request at the server", func() bool {
				mu.Lock()
				defer mu.Unlock()
				return len(held) == 2
			})
			want := int32(3) // the writer's one write of its queue
			if !coalesce {
				want = 4 // the caller's own
			}
			if got := writes.Load(); got != want {
				t.Fatalf("%d writes after the second request, want %d", got, want)
			}
			close(answer)
			for range 2 {
				if err := <-errs; err != nil {
					t.Fatal(err)
				}
			}
		})
	}
}
