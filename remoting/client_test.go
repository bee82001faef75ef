package remoting

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

func TestInvokeSyncEncodings(t *testing.T) {
	t.Parallel()
	for _, reqST := range []SerializeType{JSON, RocketMQ} {
		for _, respST := range []SerializeType{JSON, RocketMQ} {
			t.Run(fmt.Sprintf("request %s, response %s", reqST, respST), func(t *testing.T) {
				t.Parallel()
				seen := make(chan *Command, 1)
				srv := startServer(t, func(fc *fakeConn) {
					for {
						req, err := fc.read()
						if err != nil {
							return
						}
						seen <- req
						fc.send(echoResponse(req), respST)
					}
				})
				c := newClient(t, Config{Serialize: reqST})
				req := NewRequest(SendMessageV2, map[string]string{"a": "pg", "b": "T"}, []byte("payload"))
				resp, err := c.InvokeSync(ctxTimeout(t, 10*time.Second), srv.addr, req)
				if err != nil {
					t.Fatal(err)
				}
				got := recv(t, seen, "request")
				if got.Serialize != reqST || got.Language != LanguageGo || got.Version != DefaultVersion ||
					got.Flag != 0 || got.Code != int32(SendMessageV2) || got.Opaque == 0 {
					t.Errorf("server saw %+v", *got)
				}
				if resp.Serialize != respST || resp.Opaque != got.Opaque || !resp.IsResponse() ||
					resp.ExtFields["b"] != "T" || string(resp.Body) != "payload" {
					t.Errorf("response %+v", *resp)
				}
				if err := ResponseError(srv.addr, resp); err != nil {
					t.Errorf("ResponseError: %v", err)
				}
				if req.Opaque != 0 || req.Flag != 0 || req.Version != 0 || req.Language != 0 {
					t.Errorf("request was modified: %+v", *req)
				}
			})
		}
	}
}

func TestRequestVersionOverride(t *testing.T) {
	t.Parallel()
	seen := make(chan int32, 1)
	srv := startServer(t, func(fc *fakeConn) {
		for {
			req, err := fc.read()
			if err != nil {
				return
			}
			seen <- req.Version
			fc.send(echoResponse(req), JSON)
		}
	})
	c := newClient(t, Config{Version: 479, Language: LanguageRust})
	req := NewRequest(GetRouteInfoByTopic, map[string]string{"topic": "T"}, nil)
	req.Version = 317
	if _, err := c.InvokeSync(ctxTimeout(t, 10*time.Second), srv.addr, req); err != nil {
		t.Fatal(err)
	}
	if v := recv(t, seen, "version"); v != 317 {
		t.Errorf("version %d, want the request's 317", v)
	}
	if _, err := c.InvokeSync(ctxTimeout(t, 10*time.Second), srv.addr, NewRequest(HeartBeat, nil, nil)); err != nil {
		t.Fatal(err)
	}
	if v := recv(t, seen, "version"); v != 479 {
		t.Errorf("version %d, want the configured 479", v)
	}
}

func TestResponseError(t *testing.T) {
	t.Parallel()
	if err := ResponseError("a:1", &Command{Code: 0}); err != nil {
		t.Errorf("success: %v", err)
	}
	err := ResponseError("a:1", &Command{Code: int32(SystemBusy), Remark: "[REJECTREQUEST]"})
	var re *Error
	if !errors.As(err, &re) || re.Code != SystemBusy || re.Addr != "a:1" || re.Remark != "[REJECTREQUEST]" {
		t.Fatalf("got %#v", err)
	}
	for _, s := range []string{"SYSTEM_BUSY", "(2)", "[REJECTREQUEST]", "a:1"} {
		if !strings.Contains(err.Error(), s) {
			t.Errorf("%q lacks %q", err, s)
		}
	}
	if err := ResponseError("a:1", nil); !errors.Is(err, ErrBadFrame) {
		t.Errorf("nil response: %v", err)
	}
}

func TestConcurrentFirstRequestsShareOneDial(t *testing.T) {
	t.Parallel()
	srv := startServer(t, echo)
	release := make(chan struct{})
	var dials atomic.Int32
	c := newClient(t, Config{Dialer: func(ctx context.Context, network, addr string) (net.Conn, error) {
		dials.Add(1)
		select {
		case <-release:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
		return (&net.Dialer{}).DialContext(ctx, network, addr)
	}})
	const n = 32
	errs := make(chan error, n)
	for range n {
		go func() {
			_, err := c.InvokeSync(ctxTimeout(t, 10*time.Second), srv.addr, NewRequest(HeartBeat, nil, nil))
			errs <- err
		}()
	}
	eventually(t, "the dial to start", func() bool { return dials.Load() > 0 })
	close(release)
	for range n {
		if err := recv(t, errs, "a response"); err != nil {
			t.Fatal(err)
		}
	}
	if d, a := dials.Load(), srv.accepted.Load(); d != 1 || a != 1 {
		t.Errorf("%d dials, %d connections accepted; want 1 and 1", d, a)
	}
}

func TestDialDoesNotBlockOtherAddresses(t *testing.T) {
	t.Parallel()
	slow := closedAddr(t) // never actually dialled
	fast := startServer(t, echo)
	slowStarted := make(chan struct{})
	c := newClient(t, Config{ConnectTimeout: time.Minute, Dialer: func(ctx context.Context, network, addr string) (net.Conn, error) {
		if addr == slow {
			close(slowStarted)
			<-ctx.Done() // hangs until the client closes
			return nil, ctx.Err()
		}
		return (&net.Dialer{}).DialContext(ctx, network, addr)
	}})
	slowErr := make(chan error, 1)
	go func() {
		_, err := c.InvokeSync(context.Background(), slow, NewRequest(HeartBeat, nil, nil))
		slowErr <- err
	}()
	recv(t, slowStarted, "the slow dial")
	if _, err := c.InvokeSync(ctxTimeout(t, 10*time.Second), fast.addr, NewRequest(HeartBeat, nil, nil)); err != nil {
		t.Fatalf("request to another address while a dial hangs: %v", err)
	}
	c.Close()
	if err := recv(t, slowErr, "the slow request"); !errors.Is(err, ErrClosed) {
		t.Errorf("slow request after Close: %v, want ErrClosed", err)
	}
}

func TestConnectErrors(t *testing.T) {
	t.Parallel()
	t.Run("connect timeout", func(t *testing.T) {
		t.Parallel()
		sawDeadline := make(chan bool, 1)
		c := newClient(t, Config{ConnectTimeout: 50 * time.Millisecond, Dialer: func(ctx context.Context, _, _ string) (net.Conn, error) {
			_, ok := ctx.Deadline()
			sawDeadline <- ok
			<-ctx.Done()
			return nil, ctx.Err()
		}})
		_, err := c.InvokeSync(ctxTimeout(t, time.Minute), "10.255.255.1:10911", NewRequest(HeartBeat, nil, nil))
		if !errors.Is(err, ErrConnect) || !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("got %v, want ErrConnect wrapping DeadlineExceeded", err)
		}
		if !recv(t, sawDeadline, "dial") {
			t.Error("dialer ctx had no deadline")
		}
	})
	t.Run("refused", func(t *testing.T) {
		t.Parallel()
		c := newClient(t, Config{})
		addr := closedAddr(t)
		_, err := c.InvokeSync(ctxTimeout(t, time.Minute), addr, NewRequest(HeartBeat, nil, nil))
		if !errors.Is(err, ErrConnect) || !strings.Contains(err.Error(), addr) {
			t.Fatalf("got %v, want ErrConnect naming %s", err, addr)
		}
		if len(c.Conns()) != 0 {
			t.Errorf("Conns after failed dial: %+v", c.Conns())
		}
	})
	t.Run("empty address", func(t *testing.T) {
		t.Parallel()
		c := newClient(t, Config{})
		if _, err := c.InvokeSync(context.Background(), "", NewRequest(HeartBeat, nil, nil)); !errors.Is(err, ErrConnect) {
			t.Fatalf("got %v", err)
		}
	})
}

func TestMultiplexOutOfOrder(t *testing.T) {
	t.Parallel()
	const n = 50
	srv := startServer(t, func(fc *fakeConn) {
		var reqs []*Command
		for len(reqs) < n {
			req, err := fc.read()
			if err != nil {
				return
			}
			reqs = append(reqs, req)
		}
		for i := len(reqs) - 1; i >= 0; i-- { // answer in reverse order
			fc.send(echoResponse(reqs[i]), RocketMQ)
		}
		echo(fc)
	})
	c := newClient(t, Config{})
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			id := strconv.Itoa(i)
			resp, err := c.InvokeSync(ctxTimeout(t, 10*time.Second), srv.addr,
				NewRequest(SendMessageV2, map[string]string{"id": id}, []byte(id)))
			if err != nil {
				t.Error(err)
				return
			}
			if resp.ExtFields["id"] != id || string(resp.Body) != id {
				t.Errorf("request %s got response %v %q", id, resp.ExtFields, resp.Body)
			}
		})
	}
	wg.Wait()
	if conns := c.Conns(); len(conns) != 1 || conns[0].Pending != 0 {
		t.Errorf("Conns = %+v, want one connection with nothing pending", conns)
	}
}

// selectiveServer answers every request except those with ext "silent".
func selectiveServer(t *testing.T, received chan<- *Command) *fakeServer {
	return startServer(t, func(fc *fakeConn) {
		for {
			req, err := fc.read()
			if err != nil {
				return
			}
			if received != nil {
				received <- req
			}
			if req.IsOneway() || req.ExtFields["silent"] != "" {
				continue
			}
			fc.send(echoResponse(req), JSON)
		}
	})
}

var silentReq = func() *Command { return NewRequest(SendMessageV2, map[string]string{"silent": "1"}, nil) }

func TestTimeoutOnSilentPeerClosesConnection(t *testing.T) {
	t.Parallel()
	received := make(chan *Command, 16)
	srv := selectiveServer(t, received)
	h := newHookRecorder()
	c := newClient(t, Config{Hooks: h.hooks()})

	// B waits long; A times out. Nothing arrives while A waits, so the peer looks hung:
	// the connection closes and B fails at once instead of at its own deadline.
	bErr := make(chan error, 1)
	go func() {
		_, err := c.InvokeSync(ctxTimeout(t, time.Minute), srv.addr, silentReq())
		bErr <- err
	}()
	recv(t, received, "request B")
	_, err := c.InvokeSync(ctxTimeout(t, 200*time.Millisecond), srv.addr, silentReq())
	if !errors.Is(err, ErrTimeout) || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("A: %v, want ErrTimeout", err)
	}
	if err := recv(t, bErr, "B's failure"); !errors.Is(err, ErrConnClosed) || errors.Is(err, ErrTimeout) {
		t.Fatalf("B: %v, want ErrConnClosed (not a timeout)", err)
	}
	if e := h.nextClose(t); e.Err == nil || !strings.Contains(e.Err.Error(), "nothing received") {
		t.Errorf("close event %+v", e)
	}
	// The next request re-dials.
	if _, err := c.InvokeSync(ctxTimeout(t, 10*time.Second), srv.addr, NewRequest(HeartBeat, nil, nil)); err != nil {
		t.Fatal(err)
	}
	if a := srv.accepted.Load(); a != 2 {
		t.Errorf("%d connections accepted, want 2", a)
	}
}

func TestTimeoutOnLivePeerKeepsConnection(t *testing.T) {
	t.Parallel()
	srv := selectiveServer(t, nil)
	h := newHookRecorder()
	c := newClient(t, Config{Hooks: h.hooks()})
	done := make(chan error, 1)
	if err := c.InvokeAsync(ctxTimeout(t, 300*time.Millisecond), srv.addr, silentReq(), func(_ *Command, err error) {
		done <- err
	}); err != nil {
		t.Fatal(err)
	}
	// A response read while the silent request waits proves the peer alive.
	if _, err := c.InvokeSync(ctxTimeout(t, 10*time.Second), srv.addr, NewRequest(HeartBeat, nil, nil)); err != nil {
		t.Fatal(err)
	}
	if err := recv(t, done, "the timeout"); !errors.Is(err, ErrTimeout) {
		t.Fatalf("got %v, want ErrTimeout", err)
	}
	if conns := c.Conns(); len(conns) != 1 || conns[0].Pending != 0 {
		t.Fatalf("Conns = %+v, want the connection kept with nothing pending", conns)
	}
	if _, err := c.InvokeSync(ctxTimeout(t, 10*time.Second), srv.addr, NewRequest(HeartBeat, nil, nil)); err != nil {
		t.Fatal(err)
	}
	if a := srv.accepted.Load(); a != 1 {
		t.Errorf("%d connections accepted, want 1", a)
	}
	for _, e := range h.connEvents() {
		if !e.Open {
			t.Errorf("unexpected close event %+v", e)
		}
	}
}

func TestTimeoutKeepsConnection(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		cfg     Config
		timeout time.Duration
	}{
		{"CloseOnTimeout false", Config{CloseOnTimeout: ptr(false)}, 200 * time.Millisecond},
		{"wait shorter than 100ms", Config{}, 20 * time.Millisecond},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			srv := startServer(t, silent)
			c := newClient(t, tt.cfg)
			_, err := c.InvokeSync(ctxTimeout(t, tt.timeout), srv.addr, NewRequest(HeartBeat, nil, nil))
			if !errors.Is(err, ErrTimeout) {
				t.Fatalf("got %v, want ErrTimeout", err)
			}
			if conns := c.Conns(); len(conns) != 1 || conns[0].Pending != 0 {
				t.Fatalf("Conns = %+v, want the connection kept with nothing pending", conns)
			}
		})
	}
}

func TestDefaultTimeoutWithoutDeadline(t *testing.T) {
	t.Parallel()
	srv := startServer(t, silent)
	c := newClient(t, Config{DefaultTimeout: 150 * time.Millisecond})
	_, err := c.InvokeSync(context.Background(), srv.addr, NewRequest(HeartBeat, nil, nil))
	if !errors.Is(err, ErrTimeout) {
		t.Fatalf("sync: %v, want ErrTimeout", err)
	}
	done := make(chan error, 1)
	if err := c.InvokeAsync(context.Background(), srv.addr, NewRequest(HeartBeat, nil, nil), func(_ *Command, err error) { done <- err }); err != nil {
		t.Fatal(err)
	}
	if err := recv(t, done, "async timeout"); !errors.Is(err, ErrTimeout) {
		t.Fatalf("async: %v, want ErrTimeout", err)
	}
}

func TestCancel(t *testing.T) {
	t.Parallel()
	received := make(chan *Command, 4)
	srv := selectiveServer(t, received)
	c := newClient(t, Config{})
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() {
		_, err := c.InvokeSync(ctx, srv.addr, silentReq())
		errc <- err
	}()
	recv(t, received, "the request")
	cancel()
	if err := recv(t, errc, "the cancellation"); !errors.Is(err, context.Canceled) || errors.Is(err, ErrTimeout) {
		t.Fatalf("got %v, want context.Canceled", err)
	}
	if conns := c.Conns(); len(conns) != 1 || conns[0].Pending != 0 {
		t.Fatalf("Conns = %+v", conns)
	}
	// Already expired and cancelled contexts fail before sending.
	if _, err := c.InvokeSync(ctx, srv.addr, NewRequest(HeartBeat, nil, nil)); !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled ctx: %v", err)
	}
	expired, cancel2 := context.WithDeadline(context.Background(), time.Now().Add(-time.Second))
	defer cancel2()
	if err := c.InvokeAsync(expired, srv.addr, NewRequest(HeartBeat, nil, nil), func(*Command, error) { t.Error("callback called") }); !errors.Is(err, ErrTimeout) {
		t.Errorf("expired ctx: %v", err)
	}
}

func TestPeerFailureFailsPendingAtOnce(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name  string
		close func(fc *fakeConn)
		want  error
	}{
		{"reset", (*fakeConn).reset, nil},
		{"EOF", func(fc *fakeConn) { fc.Close() }, io.EOF},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			srv := startServer(t, func(fc *fakeConn) {
				if _, err := fc.read(); err == nil {
					tt.close(fc)
				}
			})
			h := newHookRecorder()
			c := newClient(t, Config{Hooks: h.hooks()})
			// The deadline is far away: failing now proves the break was noticed.
			_, err := c.InvokeSync(ctxTimeout(t, time.Minute), srv.addr, NewRequest(HeartBeat, nil, nil))
			if !errors.Is(err, ErrConnClosed) || errors.Is(err, ErrTimeout) {
				t.Fatalf("got %v, want ErrConnClosed", err)
			}
			if tt.want != nil && !errors.Is(err, tt.want) {
				t.Errorf("got %v, want it to wrap %v", err, tt.want)
			}
			if e := h.nextClose(t); e.Err == nil {
				t.Errorf("close event without a reason: %+v", e)
			}
			if len(c.Conns()) != 0 {
				t.Errorf("Conns = %+v after the break", c.Conns())
			}
		})
	}
}

func TestGarbageFromServer(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name  string
		bytes []byte
		want  error
		text  string
	}{
		{"unknown serialize type", []byte{0, 0, 0, 6, 5, 0, 0, 2, '{', '}'}, ErrUnknownSerializeType, "0x05"},
		{"frame too large", []byte{0x7f, 0, 0, 0}, ErrFrameTooLarge, ""},
		{"negative length", []byte{0xff, 0xff, 0xff, 0xf0}, ErrBadFrame, "negative"},
		{"bad JSON header", jsonFrameWithLen(`{"code":`, ""), ErrBadFrame, "JSON"},
		{"header longer than frame", []byte{0, 0, 0, 6, 0, 0, 0, 9, '{', '}'}, ErrBadFrame, "header length"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			srv := startServer(t, func(fc *fakeConn) {
				if _, err := fc.read(); err == nil {
					fc.writeRaw(tt.bytes)
					silent(fc)
				}
			})
			h := newHookRecorder()
			c := newClient(t, Config{Hooks: h.hooks()})
			_, err := c.InvokeSync(ctxTimeout(t, time.Minute), srv.addr, NewRequest(HeartBeat, nil, nil))
			if !errors.Is(err, ErrConnClosed) || !errors.Is(err, tt.want) || !strings.Contains(err.Error(), tt.text) {
				t.Fatalf("got %v, want ErrConnClosed wrapping %v mentioning %q", err, tt.want, tt.text)
			}
			if e := h.nextClose(t); !errors.Is(e.Err, tt.want) {
				t.Errorf("close event %+v, want reason %v", e, tt.want)
			}
		})
	}
}

func TestResponseLargerThanMaxFrame(t *testing.T) {
	t.Parallel()
	srv := startServer(t, func(fc *fakeConn) {
		req, err := fc.read()
		if err != nil {
			return
		}
		resp := echoResponse(req)
		resp.Body = make([]byte, 4096)
		fc.send(resp, JSON)
		silent(fc)
	})
	c := newClient(t, Config{MaxFrameSize: 2048})
	_, err := c.InvokeSync(ctxTimeout(t, time.Minute), srv.addr, NewRequest(HeartBeat, nil, nil))
	if !errors.Is(err, ErrConnClosed) || !errors.Is(err, ErrFrameTooLarge) {
		t.Fatalf("got %v, want ErrConnClosed wrapping ErrFrameTooLarge", err)
	}
}

func TestRequestLargerThanMaxFrame(t *testing.T) {
	t.Parallel()
	var d countingDialer
	c := newClient(t, Config{MaxFrameSize: 2048, Dialer: d.dial})
	req := NewRequest(SendMessageV2, nil, make([]byte, 2048))
	_, err := c.InvokeSync(context.Background(), "127.0.0.1:1", req)
	if !errors.Is(err, ErrFrameTooLarge) {
		t.Fatalf("sync: %v", err)
	}
	if err := c.InvokeAsync(context.Background(), "127.0.0.1:1", req, func(*Command, error) { t.Error("callback") }); !errors.Is(err, ErrFrameTooLarge) {
		t.Fatalf("async: %v", err)
	}
	if err := c.InvokeOneway(context.Background(), "127.0.0.1:1", req); !errors.Is(err, ErrFrameTooLarge) {
		t.Fatalf("oneway: %v", err)
	}
	if n := d.n.Load(); n != 0 {
		t.Errorf("%d dials for requests that could not be sent", n)
	}
}

func TestLateResponseDropped(t *testing.T) {
	t.Parallel()
	srv := startServer(t, func(fc *fakeConn) {
		a, err := fc.read()
		if err != nil {
			return
		}
		b, err := fc.read() // sent only after A timed out
		if err != nil {
			return
		}
		late := echoResponse(a)
		late.ExtFields = map[string]string{"id": "A"}
		fc.send(late, JSON)
		fc.send(echoResponse(b), JSON)
		echo(fc)
	})
	c := newClient(t, Config{CloseOnTimeout: ptr(false)})
	_, err := c.InvokeSync(ctxTimeout(t, 100*time.Millisecond), srv.addr, NewRequest(HeartBeat, map[string]string{"id": "A"}, nil))
	if !errors.Is(err, ErrTimeout) {
		t.Fatalf("A: %v", err)
	}
	resp, err := c.InvokeSync(ctxTimeout(t, 10*time.Second), srv.addr, NewRequest(HeartBeat, map[string]string{"id": "B"}, nil))
	if err != nil {
		t.Fatal(err)
	}
	if resp.ExtFields["id"] != "B" {
		t.Fatalf("B got %v", resp.ExtFields)
	}
	if conns := c.Conns(); len(conns) != 1 || conns[0].Pending != 0 {
		t.Fatalf("Conns = %+v", conns)
	}
}

func TestServerInitiatedRequests(t *testing.T) {
	t.Parallel()
	for _, st := range []SerializeType{JSON, RocketMQ} {
		t.Run(st.String(), func(t *testing.T) {
			t.Parallel()
			replies := make(chan *Command, 1)
			srv := startServer(t, func(fc *fakeConn) {
				req, err := fc.read()
				if err != nil {
					return
				}
				// A oneway request must be ignored, the other answered with code 3.
				fc.send(&Command{Code: int32(CheckTransactionState), Opaque: 1000, Flag: FlagOneway}, st)
				fc.send(&Command{Code: int32(NotifyConsumerIDsChanged), Opaque: 1001}, st)
				reply, err := fc.read()
				if err != nil {
					return
				}
				replies <- reply
				fc.send(echoResponse(req), JSON)
				echo(fc)
			})
			c := newClient(t, Config{})
			if _, err := c.InvokeSync(ctxTimeout(t, 10*time.Second), srv.addr, NewRequest(HeartBeat, nil, nil)); err != nil {
				t.Fatal(err)
			}
			r := recv(t, replies, "the reply")
			if r.Opaque != 1001 || r.Flag != FlagResponse || r.ResponseCode() != RequestCodeNotSupported || r.Serialize != st {
				t.Errorf("reply %+v, want opaque 1001, flag 1, code 3 in %s", *r, st)
			}
		})
	}
}

func TestOneway(t *testing.T) {
	t.Parallel()
	received := make(chan *Command, 4)
	srv := startServer(t, func(fc *fakeConn) {
		for {
			req, err := fc.read()
			if err != nil {
				return
			}
			received <- req
			// Answer even the oneway request, as a misbehaving server might: it is dropped.
			fc.send(echoResponse(req), JSON)
		}
	})
	h := newHookRecorder()
	c := newClient(t, Config{Hooks: h.hooks()})
	req := NewRequest(EndTransaction, map[string]string{"x": "1"}, []byte("b"))
	if err := c.InvokeOneway(ctxTimeout(t, 10*time.Second), srv.addr, req); err != nil {
		t.Fatal(err)
	}
	got := recv(t, received, "the oneway request")
	if got.Flag != FlagOneway || got.Code != int32(EndTransaction) || got.ExtFields["x"] != "1" {
		t.Errorf("server saw %+v", *got)
	}
	if conns := c.Conns(); len(conns) != 1 || conns[0].Pending != 0 {
		t.Fatalf("Conns = %+v, want nothing pending", conns)
	}
	if _, err := c.InvokeSync(ctxTimeout(t, 10*time.Second), srv.addr, NewRequest(HeartBeat, nil, nil)); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the oneway hook event", func() bool {
		for _, e := range h.requests() {
			if e.Oneway && e.Err == nil && e.Code == EndTransaction && e.RequestBytes > 0 {
				return true
			}
		}
		return false
	})
}

func TestInvokeAsync(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		handle  func(fc *fakeConn)
		timeout time.Duration
		act     func(c *Client)
		check   func(t *testing.T, resp *Command, err error)
	}{
		{"response", echo, time.Minute, nil, func(t *testing.T, resp *Command, err error) {
			if err != nil || string(resp.Body) != "body" {
				t.Errorf("got %v, %v", resp, err)
			}
		}},
		{"timeout", silent, 150 * time.Millisecond, nil, func(t *testing.T, resp *Command, err error) {
			if resp != nil || !errors.Is(err, ErrTimeout) {
				t.Errorf("got %v, %v; want ErrTimeout", resp, err)
			}
		}},
		{"connection failure", func(fc *fakeConn) { fc.read(); fc.reset() }, time.Minute, nil, func(t *testing.T, resp *Command, err error) {
			if resp != nil || !errors.Is(err, ErrConnClosed) {
				t.Errorf("got %v, %v; want ErrConnClosed", resp, err)
			}
		}},
		{"close", silent, time.Minute, func(c *Client) { c.Close() }, func(t *testing.T, resp *Command, err error) {
			if resp != nil || !errors.Is(err, ErrClosed) {
				t.Errorf("got %v, %v; want ErrClosed", resp, err)
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			srv := startServer(t, tt.handle)
			c := newClient(t, Config{})
			var calls atomic.Int32
			done := make(chan struct{}, 2)
			var resp *Command
			var err error
			if err := c.InvokeAsync(ctxTimeout(t, tt.timeout), srv.addr, NewRequest(HeartBeat, nil, []byte("body")), func(r *Command, e error) {
				if calls.Add(1) == 1 {
					resp, err = r, e
				}
				done <- struct{}{}
			}); err != nil {
				t.Fatal(err)
			}
			if tt.act != nil {
				eventually(t, "the request to be pending", func() bool {
					cs := c.Conns()
					return len(cs) == 1 && cs[0].Pending == 1
				})
				tt.act(c)
			}
			recv(t, done, "the callback")
			tt.check(t, resp, err)
			c.Close() // runs any further callback before returning
			if n := calls.Load(); n != 1 {
				t.Errorf("callback called %d times", n)
			}
		})
	}
}

func TestAsyncInFlightBound(t *testing.T) {
	t.Parallel()
	answer := make(chan struct{})
	srv := startServer(t, func(fc *fakeConn) {
		first, err := fc.read()
		if err != nil {
			return
		}
		<-answer
		fc.send(echoResponse(first), JSON)
		echo(fc)
	})
	c := newClient(t, Config{MaxAsyncInFlight: 1})
	results := make(chan error, 2)
	cb := func(_ *Command, err error) { results <- err }
	if err := c.InvokeAsync(ctxTimeout(t, time.Minute), srv.addr, NewRequest(HeartBeat, nil, nil), cb); err != nil {
		t.Fatal(err)
	}
	// No permit frees up before this deadline: rejected, not sent, no callback.
	err := c.InvokeAsync(ctxTimeout(t, 50*time.Millisecond), srv.addr, NewRequest(HeartBeat, nil, nil), func(*Command, error) {
		t.Error("callback of a rejected request")
	})
	if !errors.Is(err, ErrTooManyRequests) || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("got %v, want ErrTooManyRequests", err)
	}
	// So does a deadline passed by value before a later context's.
	err = c.InvokeAsyncUntil(ctxTimeout(t, time.Minute), srv.addr, NewRequest(HeartBeat, nil, nil), time.Now().Add(50*time.Millisecond), func(*Command, error) {
		t.Error("callback of a rejected request")
	})
	if !errors.Is(err, ErrTooManyRequests) || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("with an earlier deadline than ctx's: got %v, want ErrTooManyRequests", err)
	}
	// A caller with time to spare waits for the permit.
	second := make(chan error, 1)
	go func() {
		second <- c.InvokeAsync(ctxTimeout(t, time.Minute), srv.addr, NewRequest(HeartBeat, nil, nil), cb)
	}()
	close(answer)
	if err := recv(t, results, "first callback"); err != nil {
		t.Fatal(err)
	}
	if err := recv(t, second, "second InvokeAsync"); err != nil {
		t.Fatal(err)
	}
	if err := recv(t, results, "second callback"); err != nil {
		t.Fatal(err)
	}
}

// stalledConn is the client end of a pipe nobody reads: writes block.
func stalledDialer(t *testing.T) func(context.Context, string, string) (net.Conn, error) {
	return func(context.Context, string, string) (net.Conn, error) {
		client, server := net.Pipe()
		t.Cleanup(func() { server.Close() })
		return client, nil
	}
}

func TestOnewayInFlightBound(t *testing.T) {
	t.Parallel()
	h := newHookRecorder()
	c := newClient(t, Config{MaxOnewayInFlight: 1, Dialer: stalledDialer(t), Hooks: h.hooks()})
	if err := c.InvokeOneway(ctxTimeout(t, time.Minute), "pipe:1", NewRequest(EndTransaction, nil, nil)); err != nil {
		t.Fatal(err)
	}
	err := c.InvokeOneway(ctxTimeout(t, 50*time.Millisecond), "pipe:1", NewRequest(EndTransaction, nil, nil))
	if !errors.Is(err, ErrTooManyRequests) {
		t.Fatalf("got %v, want ErrTooManyRequests", err)
	}
	c.Close()
	var failed int
	for _, e := range h.requests() {
		if e.Oneway && e.Err != nil {
			failed++
		}
	}
	if failed != 2 {
		t.Errorf("%d failed oneway events, want 2 (the rejected one and the unwritten one): %+v", failed, h.requests())
	}
}

func TestWriteQueueBackpressure(t *testing.T) {
	t.Parallel()
	c := newClient(t, Config{Dialer: stalledDialer(t)})
	big := make([]byte, maxQueuedBytes*3/4)
	for i := range 2 { // the writer blocks on the first; the second waits in the queue
		if err := c.InvokeAsync(ctxTimeout(t, time.Minute), "pipe:1", NewRequest(SendMessageV2, nil, big), func(*Command, error) {}); err != nil {
			t.Fatalf("request %d: %v", i, err)
		}
	}
	err := c.InvokeAsync(ctxTimeout(t, 100*time.Millisecond), "pipe:1", NewRequest(SendMessageV2, nil, big), func(*Command, error) {
		t.Error("callback of an unsent request")
	})
	if !errors.Is(err, ErrSend) || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("got %v, want ErrSend (write queue stalled)", err)
	}
}

// failingConn fails every write.
type failingConn struct{ net.Conn }

func (failingConn) Write([]byte) (int, error) { return 0, errors.New("boom") }

func TestWriteErrorFailsWithErrSend(t *testing.T) {
	t.Parallel()
	h := newHookRecorder()
	c := newClient(t, Config{Hooks: h.hooks(), Dialer: func(context.Context, string, string) (net.Conn, error) {
		client, server := net.Pipe()
		t.Cleanup(func() { server.Close() })
		return failingConn{client}, nil
	}})
	_, err := c.InvokeSync(ctxTimeout(t, time.Minute), "pipe:1", NewRequest(HeartBeat, nil, nil))
	if !errors.Is(err, ErrSend) || !strings.Contains(err.Error(), "boom") {
		t.Fatalf("got %v, want ErrSend wrapping the write error", err)
	}
	if e := h.nextClose(t); e.Err == nil || !strings.Contains(e.Err.Error(), "boom") {
		t.Errorf("close event %+v", e)
	}
}

func TestIdleTimeoutRedials(t *testing.T) {
	t.Parallel()
	srv := startServer(t, echo)
	h := newHookRecorder()
	c := newClient(t, Config{IdleTimeout: 100 * time.Millisecond, Hooks: h.hooks()})
	for i := range 2 {
		if _, err := c.InvokeSync(ctxTimeout(t, 10*time.Second), srv.addr, NewRequest(HeartBeat, nil, nil)); err != nil {
			t.Fatal(err)
		}
		e := h.nextClose(t)
		if e.Err == nil || !strings.Contains(e.Err.Error(), "idle") {
			t.Fatalf("close event %+v, want an idle reason", e)
		}
		if len(c.Conns()) != 0 {
			t.Fatalf("round %d: Conns = %+v after idle close; events %+v", i, c.Conns(), h.connEvents())
		}
	}
	if a := srv.accepted.Load(); a != 2 {
		t.Errorf("%d connections accepted, want 2", a)
	}
}

func TestCloseAndCloseConn(t *testing.T) {
	t.Parallel()
	t.Run("CloseConn", func(t *testing.T) {
		t.Parallel()
		received := make(chan *Command, 4)
		srv := selectiveServer(t, received)
		h := newHookRecorder()
		c := newClient(t, Config{Hooks: h.hooks()})
		errc := make(chan error, 1)
		go func() {
			_, err := c.InvokeSync(ctxTimeout(t, time.Minute), srv.addr, silentReq())
			errc <- err
		}()
		recv(t, received, "the request")
		c.CloseConn(srv.addr)
		if err := recv(t, errc, "the failure"); !errors.Is(err, ErrConnClosed) {
			t.Fatalf("got %v, want ErrConnClosed", err)
		}
		if e := h.nextClose(t); e.Err != nil {
			t.Errorf("close event %+v, want no reason", e)
		}
		if _, err := c.InvokeSync(ctxTimeout(t, 10*time.Second), srv.addr, NewRequest(HeartBeat, nil, nil)); err != nil {
			t.Fatal(err)
		}
		c.CloseConn("127.0.0.1:1") // unknown address: no-op
	})
	t.Run("Close", func(t *testing.T) {
		t.Parallel()
		received := make(chan *Command, 4)
		srv := selectiveServer(t, received)
		h := newHookRecorder()
		c, err := NewClient(Config{Hooks: h.hooks()})
		if err != nil {
			t.Fatal(err)
		}
		errc := make(chan error, 1)
		go func() {
			_, err := c.InvokeSync(ctxTimeout(t, time.Minute), srv.addr, silentReq())
			errc <- err
		}()
		recv(t, received, "the request")
		if err := c.Close(); err != nil {
			t.Fatal(err)
		}
		if err := recv(t, errc, "the failure"); !errors.Is(err, ErrClosed) {
			t.Fatalf("pending: %v, want ErrClosed", err)
		}
		if e := h.nextClose(t); e.Err != nil {
			t.Errorf("close event %+v, want no reason", e)
		}
		if _, err := c.InvokeSync(context.Background(), srv.addr, NewRequest(HeartBeat, nil, nil)); !errors.Is(err, ErrClosed) {
			t.Errorf("sync after Close: %v", err)
		}
		if err := c.InvokeAsync(context.Background(), srv.addr, NewRequest(HeartBeat, nil, nil), func(*Command, error) {}); !errors.Is(err, ErrClosed) {
			t.Errorf("async after Close: %v", err)
		}
		if err := c.InvokeOneway(context.Background(), srv.addr, NewRequest(HeartBeat, nil, nil)); !errors.Is(err, ErrClosed) {
			t.Errorf("oneway after Close: %v", err)
		}
		if err := c.Close(); err != nil {
			t.Errorf("second Close: %v", err)
		}
		if len(c.Conns()) != 0 {
			t.Errorf("Conns after Close: %+v", c.Conns())
		}
	})
}

func TestHooks(t *testing.T) {
	t.Parallel()
	srv := startServer(t, func(fc *fakeConn) {
		for {
			req, err := fc.read()
			if err != nil {
				return
			}
			if !req.IsOneway() {
				fc.send(NewResponse(req, TopicNotExist, "no route"), RocketMQ)
			}
		}
	})
	h := newHookRecorder()
	c := newClient(t, Config{Hooks: h.hooks()})
	resp, err := c.InvokeSync(ctxTimeout(t, 10*time.Second), srv.addr, NewRequest(GetRouteInfoByTopic, map[string]string{"topic": "X"}, nil))
	if err != nil {
		t.Fatal(err)
	}
	var re *Error
	if err := ResponseError(srv.addr, resp); !errors.As(err, &re) || re.Code != TopicNotExist || re.Remark != "no route" {
		t.Errorf("ResponseError = %v", err)
	}
	refused := closedAddr(t)
	if _, err := c.InvokeSync(ctxTimeout(t, 10*time.Second), refused, NewRequest(HeartBeat, nil, nil)); !errors.Is(err, ErrConnect) {
		t.Fatal(err)
	}
	c.Close()
	reqs := h.requests()
	if len(reqs) != 2 {
		t.Fatalf("request events %+v", reqs)
	}
	if e := reqs[0]; e.Addr != srv.addr || e.Code != GetRouteInfoByTopic || e.ResponseCode != TopicNotExist ||
		e.Err != nil || e.RequestBytes == 0 || e.ResponseBytes == 0 || e.Latency <= 0 || e.Oneway {
		t.Errorf("sync event %+v", e)
	}
	if e := reqs[1]; e.Addr != refused || !errors.Is(e.Err, ErrConnect) {
		t.Errorf("failure event %+v", e)
	}
	conns := h.connEvents()
	if len(conns) != 2 || !conns[0].Open || conns[1].Open || conns[0].Addr != srv.addr || conns[1].Err != nil {
		t.Errorf("conn events %+v, want open then close by Close", conns)
	}
}

func TestConnsInfo(t *testing.T) {
	t.Parallel()
	srvA, srvB := startServer(t, echo), startServer(t, echo)
	c := newClient(t, Config{})
	for _, addr := range []string{srvB.addr, srvA.addr} {
		if _, err := c.InvokeSync(ctxTimeout(t, 10*time.Second), addr, NewRequest(HeartBeat, nil, []byte("x"))); err != nil {
			t.Fatal(err)
		}
	}
	conns := c.Conns()
	if len(conns) != 2 || conns[0].Addr > conns[1].Addr {
		t.Fatalf("Conns = %+v, want two sorted by address", conns)
	}
	for _, ci := range conns {
		if ci.BytesIn == 0 || ci.BytesOut == 0 || ci.OpenedAt.IsZero() || ci.Pending != 0 || ci.TLS {
			t.Errorf("ConnInfo %+v", ci)
		}
	}
}

func TestNewClientValidation(t *testing.T) {
	t.Parallel()
	_, err := NewClient(Config{
		ConnectTimeout: -1, IdleTimeout: -1, DefaultTimeout: -1, Serialize: 7, Language: 99, Version: 40000,
		MaxAsyncInFlight: -1, MaxOnewayInFlight: -1, MaxFrameSize: 10,
	})
	if err == nil {
		t.Fatal("no error")
	}
	for _, field := range []string{"ConnectTimeout", "IdleTimeout", "DefaultTimeout", "Serialize", "Language",
		"Version", "MaxAsyncInFlight", "MaxOnewayInFlight", "MaxFrameSize"} {
		if !strings.Contains(err.Error(), field) {
			t.Errorf("error does not mention %s: %v", field, err)
		}
	}
	c, err := NewClient(Config{})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	s := c.cfg
	if s.ConnectTimeout != 3*time.Second || s.IdleTimeout != 120*time.Second || s.DefaultTimeout != 3*time.Second ||
		s.Language != LanguageGo || s.Version != 409 || s.MaxAsyncInFlight != 65535 || s.MaxOnewayInFlight != 65535 ||
		s.MaxFrameSize != MaxFrameSize || !s.closeOnTimeout || s.Serialize != JSON {
		t.Errorf("defaults %+v", s)
	}
	if c.InvokeAsync(context.Background(), "x:1", NewRequest(HeartBeat, nil, nil), nil) == nil {
		t.Error("InvokeAsync accepted a nil callback")
	}
	if _, err := c.InvokeSync(context.Background(), "x:1", nil); !errors.Is(err, ErrBadFrame) {
		t.Errorf("nil request: %v", err)
	}
}

func TestStrings(t *testing.T) {
	t.Parallel()
	tests := []struct{ got, want string }{
		{SendMessageV2.String(), "SEND_MESSAGE_V2"},
		{GetRouteInfoByTopic.String(), "GET_ROUTEINFO_BY_TOPIC"},
		{RequestCode(9999).String(), "RequestCode(9999)"},
		{SystemBusy.String(), "SYSTEM_BUSY"},
		{GoAway.String(), "GO_AWAY"},
		{ResponseCode(-1).String(), "ResponseCode(-1)"},
		{LanguageGo.String(), "GO"},
		{LanguageRust.String(), "RUST"},
		{LanguageCode(13).String(), "LanguageCode(13)"},
		{JSON.String(), "JSON"},
		{RocketMQ.String(), "ROCKETMQ"},
	}
	for _, tt := range tests {
		if tt.got != tt.want {
			t.Errorf("got %q, want %q", tt.got, tt.want)
		}
	}
}

// TestManySendersOneConnection checks that frames written concurrently by many goroutines are
// never interleaved and all complete, sync and async mixed.
func TestManySendersOneConnection(t *testing.T) {
	t.Parallel()
	srv := startServer(t, echo)
	c := newClient(t, Config{Serialize: RocketMQ})
	var wg sync.WaitGroup
	for g := range 16 {
		wg.Go(func() {
			for i := range 100 {
				id := fmt.Sprintf("%d-%d", g, i)
				body := bytes.Repeat([]byte(id), i)
				if i%2 == 0 {
					resp, err := c.InvokeSync(ctxTimeout(t, 10*time.Second), srv.addr, NewRequest(SendMessageV2, map[string]string{"id": id}, body))
					if err != nil || resp.ExtFields["id"] != id || !bytes.Equal(resp.Body, body) {
						t.Errorf("sync %s: %v", id, err)
					}
					continue
				}
				done := make(chan struct{})
				err := c.InvokeAsync(ctxTimeout(t, 10*time.Second), srv.addr, NewRequest(SendMessageV2, map[string]string{"id": id}, body), func(resp *Command, err error) {
					if err != nil || resp.ExtFields["id"] != id || !bytes.Equal(resp.Body, body) {
						t.Errorf("async %s: %v", id, err)
					}
					close(done)
				})
				if err != nil {
					t.Error(err)
					return
				}
				<-done
			}
		})
	}
	wg.Wait()
	if a := srv.accepted.Load(); a != 1 {
		t.Errorf("%d connections", a)
	}
}

var _ = binary.BigEndian

// gatedConn blocks its next Write while hold is set, until release is closed.
type gatedConn struct {
	net.Conn
	hold    *atomic.Bool
	entered chan struct{}
	release chan struct{}
}

func (g gatedConn) Write(p []byte) (int, error) {
	if g.hold.CompareAndSwap(true, false) {
		g.entered <- struct{}{}
		<-g.release
	}
	return g.Conn.Write(p)
}

// TestExpiredQueuedRequestKeepsConnection: a request whose deadline passed while it waited
// behind a slow write must not make the write fail at once and, with it, the connection's
// other requests.
func TestExpiredQueuedRequestKeepsConnection(t *testing.T) {
	t.Parallel()
	received := make(chan *Command, 64)
	srv := selectiveServer(t, received)
	var hold atomic.Bool
	entered, release := make(chan struct{}, 1), make(chan struct{})
	h := newHookRecorder()
	c := newClient(t, Config{Hooks: h.hooks(), Dialer: func(ctx context.Context, network, addr string) (net.Conn, error) {
		nc, err := (&net.Dialer{}).DialContext(ctx, network, addr)
		return gatedConn{Conn: nc, hold: &hold, entered: entered, release: release}, err
	}})
	longDone := make(chan error, 1)
	if err := c.InvokeAsync(ctxTimeout(t, time.Minute), srv.addr, silentReq(), func(_ *Command, err error) { longDone <- err }); err != nil {
		t.Fatal(err)
	}
	recv(t, received, "the long request")
	// The writer stalls on the next frame; a short request queues behind it and expires.
	hold.Store(true)
	if err := c.InvokeOneway(ctxTimeout(t, time.Minute), srv.addr, NewRequest(EndTransaction, nil, nil)); err != nil {
		t.Fatal(err)
	}
	recv(t, entered, "the stalled write")
	shortDone := make(chan error, 1)
	if err := c.InvokeAsync(ctxTimeout(t, 50*time.Millisecond), srv.addr, silentReq(), func(_ *Command, err error) { shortDone <- err }); err != nil {
		t.Fatal(err)
	}
	if err := recv(t, shortDone, "the short timeout"); !errors.Is(err, ErrTimeout) {
		t.Fatalf("short request: %v", err)
	}
	close(release)
	recv(t, received, "the oneway request")
	recv(t, received, "the expired request, written late")
	if conns := c.Conns(); len(conns) != 1 || conns[0].Pending != 1 {
		t.Fatalf("Conns = %+v, want the connection with the long request still pending", conns)
	}
	for _, e := range h.connEvents() {
		if !e.Open {
			t.Fatalf("connection closed: %+v", e)
		}
	}
}
