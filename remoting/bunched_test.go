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

// TestBunchedNameServerRequests: a bunched NameServer request alone on its connection
// is written by its caller; one sent while another is in flight is queued for the
// writer (so that a bunch's frames can share a write), and both are answered. A plain
// NameServer request in the same position is written by its caller.
func TestBunchedNameServerRequests(t *testing.T) {
	t.Parallel()
	for _, bunched := range []bool{true, false} {
		t.Run("bunched="+strconv.FormatBool(bunched), func(t *testing.T) {
			t.Parallel()
			var mu sync.Mutex
			var held []*Command
			answer := make(chan struct{})
			var once sync.Once
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
			// Registered after the server's cleanup, so run before it (which waits for
			// the handler): a failed check must not leave the handler waiting above.
			t.Cleanup(func() { once.Do(func() { close(answer) }) })
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
				// A body: the server has a frame only after both of a direct write's
				// calls (header, body) were counted.
				req := NewRequest(GetRouteInfoByTopic, map[string]string{"topic": n}, []byte("body"))
				call := c.InvokeNameServerUntil
				if bunched {
					call = c.InvokeNameServerBunched
				}
				resp, _, err := call(context.Background(), req, time.Now().Add(10*time.Second))
				return resp, err
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
			// The caller's direct write is over only once it cleared the connection's
			// writing mark; before that the second request queues whatever its kind.
			eventually(t, "the first request's write to end", func() bool {
				c.mu.Lock()
				defer c.mu.Unlock()
				for _, sl := range c.slots {
					if cn := sl.conn; cn != nil {
						cn.mu.Lock()
						writing := cn.writing
						cn.mu.Unlock()
						return !writing
					}
				}
				return false
			})
			go check("b")
			eventually(t, "the second request at the server", func() bool {
				mu.Lock()
				defer mu.Unlock()
				return len(held) == 2
			})
			want := int32(3) // the writer's one write of its queue
			if !bunched {
				want = 4 // the caller's own
			}
			if got := writes.Load(); got != want {
				t.Fatalf("%d writes after the second request, want %d", got, want)
			}
			once.Do(func() { close(answer) })
			for range 2 {
				if err := <-errs; err != nil {
					t.Fatal(err)
				}
			}
		})
	}
}
