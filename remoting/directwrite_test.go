package remoting

import (
	"bytes"
	"context"
	"net"
	"testing"
	"time"
)

// TestDirectWriteSlowReader: a sync request alone on its connection is written by the
// caller; when the peer does not read, what the kernel did not take goes to the writer
// goroutine, and the frame still arrives whole and in order before a later request.
func TestDirectWriteSlowReader(t *testing.T) {
	if testing.Short() {
		t.Skip("sends 12 MiB through a 32 KiB send buffer")
	}
	t.Parallel()
	release := make(chan struct{})
	srv := startServer(t, func(fc *fakeConn) {
		<-release // fill the socket buffers first
		echo(fc)
	})
	// A small send buffer, so that the kernel stops taking the frame early.
	c := newClient(t, Config{Dialer: func(ctx context.Context, network, addr string) (net.Conn, error) {
		nc, err := (&net.Dialer{}).DialContext(ctx, network, addr)
		if err == nil {
			err = nc.(*net.TCPConn).SetWriteBuffer(32 << 10)
		}
		return nc, err
	}})
	big := bytes.Repeat([]byte("0123456789abcdef"), 12<<20/16) // more than the socket buffers take
	type answer struct {
		resp *Command
		err  error
	}
	first, second := make(chan answer, 1), make(chan answer, 1)
	go func() {
		resp, err := c.InvokeSync(ctxTimeout(t, 30*time.Second), srv.addr, NewRequest(HeartBeat, map[string]string{"n": "1"}, big))
		first <- answer{resp, err}
	}()
	eventually(t, "the first request to be queued", func() bool {
		for _, ci := range c.Conns() {
			if ci.Pending == 1 {
				return true
			}
		}
		return false
	})
	go func() {
		resp, err := c.InvokeSync(ctxTimeout(t, 30*time.Second), srv.addr, NewRequest(HeartBeat, map[string]string{"n": "2"}, []byte("small")))
		second <- answer{resp, err}
	}()
	close(release)
	a := recv(t, first, "the first answer")
	if a.err != nil || !bytes.Equal(a.resp.Body, big) || a.resp.ExtFields["n"] != "1" {
		t.Fatalf("first: err %v, %d bytes, n=%q", a.err, len(a.resp.Body), a.resp.ExtFields["n"])
	}
	b := recv(t, second, "the second answer")
	if b.err != nil || string(b.resp.Body) != "small" || b.resp.ExtFields["n"] != "2" {
		t.Fatalf("second: %+v", b)
	}
}
