package remoting

import (
	"bufio"
	"context"
	"errors"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// fakeServer is an in-test RocketMQ server on 127.0.0.1:0; every accepted connection is
// handled by handle on its own goroutine. Cleanup closes everything and waits for handlers.
type fakeServer struct {
	ln       net.Listener
	addr     string
	accepted atomic.Int32
	mu       sync.Mutex
	conns    []net.Conn
	wg       sync.WaitGroup
}

type fakeConn struct {
	net.Conn
	br  *bufio.Reader
	wmu sync.Mutex
	n   int // index of the connection on its server, from 0
}

func startServer(t testing.TB, handle func(fc *fakeConn)) *fakeServer {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	return serveListener(t, ln, handle)
}

func serveListener(t testing.TB, ln net.Listener, handle func(fc *fakeConn)) *fakeServer {
	s := &fakeServer{ln: ln, addr: ln.Addr().String()}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			n := int(s.accepted.Add(1)) - 1
			s.mu.Lock()
			s.conns = append(s.conns, c)
			s.mu.Unlock()
			s.wg.Add(1)
			go func() {
				defer s.wg.Done()
				defer c.Close()
				handle(&fakeConn{Conn: c, br: bufio.NewReader(c), n: n})
			}()
		}
	}()
	t.Cleanup(s.close)
	return s
}

func (s *fakeServer) close() {
	s.ln.Close()
	s.mu.Lock()
	for _, c := range s.conns {
		c.Close()
	}
	s.mu.Unlock()
	s.wg.Wait()
}

func (fc *fakeConn) read() (*Command, error) { return ReadCommand(fc.br, 0) }

func (fc *fakeConn) send(c *Command, st SerializeType) error {
	b, err := AppendFrame(nil, c, st)
	if err != nil {
		return err
	}
	return fc.writeRaw(b)
}

func (fc *fakeConn) writeRaw(b []byte) error {
	fc.wmu.Lock()
	defer fc.wmu.Unlock()
	_, err := fc.Write(b)
	return err
}

// reset closes the connection with an RST instead of a FIN.
func (fc *fakeConn) reset() {
	if tc, ok := fc.Conn.(*net.TCPConn); ok {
		tc.SetLinger(0)
	}
	fc.Close()
}

// echoResponse answers req with SUCCESS, its ext fields and body, in encoding st.
func echoResponse(req *Command) *Command {
	resp := NewResponse(req, Success, "")
	resp.ExtFields = req.ExtFields
	resp.Body = req.Body
	return resp
}

// echo answers every non-oneway request with echoResponse in the request's encoding.
func echo(fc *fakeConn) {
	for {
		req, err := fc.read()
		if err != nil {
			return
		}
		if req.IsOneway() {
			continue
		}
		if fc.send(echoResponse(req), req.Serialize) != nil {
			return
		}
	}
}

// silent reads and never answers.
func silent(fc *fakeConn) {
	for {
		if _, err := fc.read(); err != nil {
			return
		}
	}
}

// newClient returns a client closed at cleanup.
func newClient(t testing.TB, cfg Config) *Client {
	t.Helper()
	c, err := NewClient(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// ctxTimeout returns a context with timeout d, cancelled at cleanup.
func ctxTimeout(t testing.TB, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

// eventually waits until cond holds, failing the test after a generous deadline.
func eventually(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// recv waits for a value on ch with a generous deadline.
func recv[T any](t testing.TB, ch <-chan T, what string) T {
	t.Helper()
	select {
	case v := <-ch:
		return v
	case <-time.After(10 * time.Second):
		t.Fatalf("timed out waiting for %s", what)
	}
	var zero T
	return zero
}

// hookRecorder collects hook events.
type hookRecorder struct {
	mu    sync.Mutex
	reqs  []RequestEvent
	conns []ConnEvent
	connC chan ConnEvent
}

func newHookRecorder() *hookRecorder { return &hookRecorder{connC: make(chan ConnEvent, 64)} }

func (h *hookRecorder) hooks() Hooks {
	return Hooks{
		OnRequest: func(e RequestEvent) {
			h.mu.Lock()
			h.reqs = append(h.reqs, e)
			h.mu.Unlock()
		},
		OnConn: func(e ConnEvent) {
			h.mu.Lock()
			h.conns = append(h.conns, e)
			h.mu.Unlock()
			h.connC <- e
		},
	}
}

func (h *hookRecorder) requests() []RequestEvent {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]RequestEvent(nil), h.reqs...)
}

func (h *hookRecorder) connEvents() []ConnEvent {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]ConnEvent(nil), h.conns...)
}

// nextClose waits for the next close event, skipping opens.
func (h *hookRecorder) nextClose(t testing.TB) ConnEvent {
	t.Helper()
	for {
		e := recv(t, h.connC, "a connection close event")
		if !e.Open {
			return e
		}
	}
}

// countingDialer counts dials and otherwise dials normally.
type countingDialer struct {
	n atomic.Int32
}

func (d *countingDialer) dial(ctx context.Context, network, addr string) (net.Conn, error) {
	d.n.Add(1)
	return (&net.Dialer{}).DialContext(ctx, network, addr)
}

// closedAddr returns an address nobody listens on.
func closedAddr(t testing.TB) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

func isAny(err error, targets ...error) bool {
	for _, t := range targets {
		if errors.Is(err, t) {
			return true
		}
	}
	return false
}

func ptr[T any](v T) *T { return &v }
