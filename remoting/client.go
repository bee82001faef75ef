package remoting

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Client is a RocketMQ remoting client: one multiplexed TCP (or TLS) connection per server
// address, opened lazily and shared by all requests. All methods are safe for concurrent use.
type Client struct {
	cfg settings

	// ctx is cancelled by Close; it aborts dials in progress.
	ctx    context.Context
	cancel context.CancelFunc

	opaque    atomic.Int32
	asyncSem  chan struct{}
	onewaySem chan struct{}

	mu     sync.Mutex
	closed bool
	slots  map[string]*slot

	// wg counts every goroutine the client starts (dials, and per connection its reader,
	// writer and callback goroutines); Close waits for it.
	wg sync.WaitGroup

	ns nameServers
}

// slot is the per-address state, guarded by Client.mu.
type slot struct {
	conn *conn     // live connection, or nil
	dial *dialCall // dial in progress, or nil
}

// dialCall is one dial shared by every request that needs the address meanwhile.
type dialCall struct {
	done chan struct{}
	conn *conn
	err  error
}

// NewClient validates cfg, applies defaults and returns a client. It does no I/O; every
// configuration problem is reported in one joined error.
func NewClient(cfg Config) (*Client, error) {
	s, err := cfg.validate()
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(context.Background())
	c := &Client{
		cfg:       s,
		ctx:       ctx,
		cancel:    cancel,
		asyncSem:  make(chan struct{}, s.MaxAsyncInFlight),
		onewaySem: make(chan struct{}, s.MaxOnewayInFlight),
		slots:     make(map[string]*slot),
	}
	c.ns.init()
	return c, nil
}

// callKind says how a request completes.
type callKind uint8

const (
	kindSync callKind = iota
	kindAsync
	kindOneway
)

// call is one request in flight. Whoever removes a sync or async call from its connection's
// pending map (under conn.mu) completes it, exactly once.
type call struct {
	kind     callKind
	addr     string
	code     RequestCode
	opaque   int32
	start    time.Time
	deadline time.Time
	reqBytes int

	// held queues a sync request's frame without writing it on the caller's goroutine
	// or waking the connection's writer: the batch it belongs to wakes the writer once
	// its last frame is queued (InvokeNameServerBatch; see conn.enqueue).
	held bool

	cn     *conn
	sentAt int64 // conn clock (ns since it opened) when queued
	seq    int64 // stream offset just past this frame; > conn.written means not fully written

	// sync completion
	done      chan struct{}
	wait      *time.Timer // the sync deadline's timer, reused with the pooled call
	resp      *Command
	respBytes int
	err       error

	// async completion
	cb     func(*Command, error)
	timer  *time.Timer
	permit chan struct{} // semaphore to release on completion (async, oneway)
}

var syncCalls = sync.Pool{New: func() any { return &call{done: make(chan struct{}, 1)} }}

var headerBufs = sync.Pool{New: func() any { b := make([]byte, 0, 512); return &b }}

// maxPooledHeader keeps an unusually large header buffer out of the pool.
const maxPooledHeader = 64 << 10

// InvokeSync sends req to addr and waits for its response until ctx's deadline (or
// DefaultTimeout when ctx has none) or cancellation. It returns the response whatever its code;
// use ResponseError to turn a non-success code into an error. Transport failures wrap
// ErrConnect, ErrSend, ErrConnClosed, ErrTimeout (with context.DeadlineExceeded),
// ErrFrameTooLarge or ErrClosed; a cancelled ctx yields an error wrapping context.Canceled.
func (c *Client) InvokeSync(ctx context.Context, addr string, req *Command) (*Command, error) {
	return c.InvokeSyncUntil(ctx, addr, req, time.Time{}, nil)
}

// InvokeSyncUntil is InvokeSync with an explicit deadline and an abort channel, which
// spare a caller a derived context per request. The request's deadline is the earlier of
// deadline (the zero time means none) and ctx's; without either it is DefaultTimeout. A
// receive from abort (nil: never) gives the request up as a cancellation of ctx would:
// the error wraps context.Canceled.
func (c *Client) InvokeSyncUntil(ctx context.Context, addr string, req *Command, deadline time.Time, abort <-chan struct{}) (*Command, error) {
	return c.invokeSyncUntil(ctx, addr, req, deadline, abort)
}

func (c *Client) invokeSyncUntil(ctx context.Context, addr string, req *Command, deadline time.Time, abort <-chan struct{}) (*Command, error) {
	cl := syncCalls.Get().(*call)
	c.prepare(ctx, cl, kindSync, addr, req, deadline)
	resp, err := c.invokeSync(ctx, cl, req, abort)
	c.finish(cl, resp, err)
	return resp, err
}

// finish reports a sync call's outcome and returns cl to its pool.
func (c *Client) finish(cl *call, resp *Command, err error) {
	c.report(cl, resp, cl.respBytes, err)
	done, wait := cl.done, cl.wait
	*cl = call{done: done, wait: wait}
	syncCalls.Put(cl)
}

// prepare starts cl. Its deadline is the earlier of deadline (the zero time: none) and
// ctx's; DefaultTimeout applies only when there is neither.
func (c *Client) prepare(ctx context.Context, cl *call, kind callKind, addr string, req *Command, deadline time.Time) {
	cl.kind, cl.addr, cl.start = kind, addr, time.Now()
	if req != nil {
		cl.code = RequestCode(req.Code)
	}
	d, ok := ctx.Deadline()
	switch {
	case ok && (deadline.IsZero() || d.Before(deadline)):
		cl.deadline = d
	case !deadline.IsZero():
		cl.deadline = deadline
	default:
		cl.deadline = cl.start.Add(c.cfg.DefaultTimeout)
	}
}

func (c *Client) invokeSync(ctx context.Context, cl *call, req *Command, abort <-chan struct{}) (*Command, error) {
	cn, err := c.submit(ctx, cl, req)
	if err != nil {
		return nil, err
	}
	var expired <-chan time.Time
	if d, ok := ctx.Deadline(); !ok || cl.deadline.Before(d) {
		// expiry's rule, with the call's own timer kept with the pooled call: no
		// allocation per request.
		if cl.wait == nil {
			cl.wait = time.NewTimer(time.Until(cl.deadline))
		} else {
			cl.wait.Reset(time.Until(cl.deadline))
		}
		defer cl.wait.Stop()
		expired = cl.wait.C
	}
	aborted := false
	select {
	case <-cl.done:
		return cl.resp, cl.err
	case <-ctx.Done():
	case <-expired:
	case <-abort:
		aborted = true
	}
	return c.giveUp(ctx, cn, cl, aborted)
}

// giveUp ends a sync call whose wait ended without its answer: cancelled (aborted, or
// ctx cancelled) or timed out. The answer wins when the reader took the call first.
func (c *Client) giveUp(ctx context.Context, cn *conn, cl *call, aborted bool) (*Command, error) {
	if !cn.forget(cl) {
		// The reader or the connection's teardown took it first: its result is on the way.
		<-cl.done
		return cl.resp, cl.err
	}
	if aborted || errors.Is(ctx.Err(), context.Canceled) {
		return nil, fmt.Errorf("remoting: %s: %s canceled: %w", cl.addr, cl.code, context.Canceled)
	}
	cn.timedOut(cl)
	return nil, c.timeoutError(cl)
}

func (c *Client) timeoutError(cl *call) error {
	return fmt.Errorf("%w: %s: no response to %s (opaque %d) after %v: %w",
		ErrTimeout, cl.addr, cl.code, cl.opaque, time.Since(cl.start).Round(time.Millisecond), context.DeadlineExceeded)
}

// InvokeAsync sends req to addr and returns once it is queued for writing. A non-nil error
// means it was not sent and cb will not be called. Otherwise cb is called exactly once: with
// the response (whatever its code), or with an error when the deadline passes (ctx's, or
// DefaultTimeout), the connection fails, or the client closes.
//
// ctx bounds the wait for an async permit (see Config.MaxAsyncInFlight) and for the dial;
// its deadline also bounds the wait for the response. Cancelling ctx after InvokeAsync
// returned does not cancel the request.
//
// cb runs on the connection's callback goroutine, one callback at a time per connection, never
// on the caller's goroutine: it must not block for long, since it delays the connection's other
// callbacks. It may call InvokeAsync or InvokeSync (blocking it for their duration), but not
// Close.
func (c *Client) InvokeAsync(ctx context.Context, addr string, req *Command, cb func(resp *Command, err error)) error {
	return c.InvokeAsyncUntil(ctx, addr, req, time.Time{}, cb)
}

// InvokeAsyncUntil is InvokeAsync with an explicit deadline for the response: the earlier
// of deadline (the zero time means none) and ctx's, else DefaultTimeout. It spares a
// caller a derived context (and its timer) per request.
func (c *Client) InvokeAsyncUntil(ctx context.Context, addr string, req *Command, deadline time.Time, cb func(resp *Command, err error)) error {
	if cb == nil {
		return errors.New("remoting: InvokeAsync needs a callback")
	}
	cl := &call{cb: cb, permit: c.asyncSem}
	c.prepare(ctx, cl, kindAsync, addr, req, deadline)
	err := c.startAsync(ctx, cl, req, c.asyncSem)
	if err != nil {
		c.report(cl, nil, 0, err)
	}
	return err
}

// InvokeOneway sends req to addr with FlagOneway set and returns once it is queued for
// writing; no response is awaited and no pending entry is kept. ctx bounds the wait for a
// oneway permit (see Config.MaxOnewayInFlight); its deadline (or DefaultTimeout) bounds
// the wait for the dial and the write. A write failure after InvokeOneway returned is
// reported only to Hooks.OnRequest (like Java, which only logs it).
func (c *Client) InvokeOneway(ctx context.Context, addr string, req *Command) error {
	cl := &call{permit: c.onewaySem}
	c.prepare(ctx, cl, kindOneway, addr, req, time.Time{})
	err := c.startAsync(ctx, cl, req, c.onewaySem)
	if err != nil {
		c.report(cl, nil, 0, err)
	}
	return err
}

func (c *Client) startAsync(ctx context.Context, cl *call, req *Command, sem chan struct{}) error {
	if err := c.checkStart(ctx, cl); err != nil {
		return err
	}
	select {
	case sem <- struct{}{}:
	default:
		if err := waitFor(ctx, cl.deadline, func(stop <-chan struct{}, expired <-chan time.Time) bool {
			select {
			case sem <- struct{}{}:
				return true
			case <-stop:
			case <-expired:
			case <-c.ctx.Done():
			}
			return false
		}); err != nil {
			if c.ctx.Err() != nil {
				return c.closedError(cl.addr)
			}
			return fmt.Errorf("%w: %s: %d %s requests in flight: %w",
				ErrTooManyRequests, cl.addr, cap(sem), kindName(cl.kind), err)
		}
	}
	if _, err := c.submit(ctx, cl, req); err != nil {
		<-sem
		return err
	}
	return nil
}

func kindName(k callKind) string {
	if k == kindOneway {
		return "oneway"
	}
	return "async"
}

// expiry returns a channel that receives at deadline when deadline is set and comes
// before ctx's (ctx's done channel covers the rest), and the function that stops its
// timer. For the slow paths only: it makes a timer.
func expiry(ctx context.Context, deadline time.Time) (<-chan time.Time, func()) {
	if d, ok := ctx.Deadline(); deadline.IsZero() || ok && !deadline.Before(d) {
		return nil, func() {}
	}
	t := time.NewTimer(time.Until(deadline))
	return t.C, func() { t.Stop() }
}

// waitFor runs wait with ctx's done channel and a channel receiving at deadline when that
// comes first. It returns nil when wait reports success, else the reason it gave up.
func waitFor(ctx context.Context, deadline time.Time, wait func(stop <-chan struct{}, expired <-chan time.Time) bool) error {
	expired, stop := expiry(ctx, deadline)
	defer stop()
	if wait(ctx.Done(), expired) {
		return nil
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	return context.DeadlineExceeded
}

// checkStart rejects a request before any work: closed client, nil request, expired ctx.
func (c *Client) checkStart(ctx context.Context, cl *call) error {
	if c.ctx.Err() != nil {
		return c.closedError(cl.addr)
	}
	if cl.addr == "" {
		return fmt.Errorf("%w: empty address", ErrConnect)
	}
	if err := ctx.Err(); err != nil {
		if errors.Is(err, context.DeadlineExceeded) {
			return fmt.Errorf("%w: %s: %s: deadline passed before sending: %w", ErrTimeout, cl.addr, cl.code, err)
		}
		return fmt.Errorf("remoting: %s: %s canceled: %w", cl.addr, cl.code, err)
	}
	if !cl.deadline.After(time.Now()) {
		return fmt.Errorf("%w: %s: %s: deadline passed before sending: %w", ErrTimeout, cl.addr, cl.code, context.DeadlineExceeded)
	}
	return nil
}

func (c *Client) closedError(addr string) error {
	return fmt.Errorf("%w: %s", ErrClosed, addr)
}

// errConnGone: the connection closed between lookup and queueing; nothing was queued.
var errConnGone = errors.New("remoting: connection gone")

// submit encodes req, finds (or dials) addr's connection and queues the frame, registering
// cl as pending unless it is oneway.
func (c *Client) submit(ctx context.Context, cl *call, req *Command) (*conn, error) {
	if cl.kind == kindSync {
		if err := c.checkStart(ctx, cl); err != nil {
			return nil, err
		}
	}
	if req == nil {
		return nil, fmt.Errorf("%w: nil request", ErrBadFrame)
	}
	if c.cfg.Credentials != nil {
		req = c.cfg.Credentials.sign(req)
	}
	w := wire{code: req.Code, version: req.Version, flag: req.Flag &^ (FlagResponse | FlagOneway), lang: c.cfg.Language}
	if w.version == 0 {
		w.version = c.cfg.Version
	}
	if cl.kind == kindOneway {
		w.flag |= FlagOneway
	}
	w.opaque = c.opaque.Add(1)
	cl.opaque = w.opaque

	bp := headerBufs.Get().(*[]byte)
	defer func() {
		if cap(*bp) <= maxPooledHeader {
			headerBufs.Put(bp)
		}
	}()
	hdr, err := appendFramePrefix((*bp)[:0], req, c.cfg.Serialize, w)
	*bp = hdr
	if err != nil {
		return nil, fmt.Errorf("remoting: %s: encode %s: %w", cl.addr, cl.code, err)
	}
	cl.reqBytes = len(hdr) + len(req.Body)
	if cl.reqBytes > c.cfg.MaxFrameSize {
		return nil, fmt.Errorf("%w: %s: %s frame of %d bytes exceeds MaxFrameSize %d",
			ErrFrameTooLarge, cl.addr, cl.code, cl.reqBytes, c.cfg.MaxFrameSize)
	}
	for attempt := 0; ; attempt++ {
		cn, err := c.getConn(ctx, cl.addr, cl.deadline)
		if err != nil {
			return nil, err
		}
		err = cn.enqueue(ctx, cl, hdr, req.Body)
		if errors.Is(err, errConnGone) {
			if attempt == 0 {
				continue // it broke just now: one fresh dial
			}
			return nil, fmt.Errorf("%w: %s: connection closed before the request was written", ErrSend, cl.addr)
		}
		if err != nil {
			return nil, err
		}
		return cn, nil
	}
}

// report calls Hooks.OnRequest.
func (c *Client) report(cl *call, resp *Command, respBytes int, err error) {
	h := c.cfg.Hooks.OnRequest
	if h == nil {
		return
	}
	ev := RequestEvent{
		Addr:          cl.addr,
		Code:          cl.code,
		Oneway:        cl.kind == kindOneway,
		RequestBytes:  cl.reqBytes,
		ResponseBytes: respBytes,
		Latency:       time.Since(cl.start),
		Err:           err,
	}
	if resp != nil {
		ev.ResponseCode = resp.ResponseCode()
	}
	h(ev)
}

// getConn returns addr's live connection, dialling it if needed. Concurrent callers share one
// dial per address; dials to different addresses proceed independently.
func (c *Client) getConn(ctx context.Context, addr string, deadline time.Time) (*conn, error) {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return nil, c.closedError(addr)
	}
	s := c.slots[addr]
	if s == nil {
		s = &slot{}
		c.slots[addr] = s
	}
	if cn := s.conn; cn != nil && !cn.closed.Load() {
		c.mu.Unlock()
		return cn, nil
	}
	d := s.dial
	if d == nil {
		d = &dialCall{done: make(chan struct{})}
		s.dial = d
		c.wg.Add(1)
		go c.runDial(addr, d)
	}
	c.mu.Unlock()

	// The request's deadline bounds the wait as its context does (a dial runs until
	// ConnectTimeout, which may be later); a timer only when the deadline comes before
	// ctx's, so that ctx's own end is reported as ctx's.
	expired, stop := expiry(ctx, deadline)
	defer stop()
	select {
	case <-d.done:
		return d.conn, d.err
	case <-ctx.Done():
		return nil, fmt.Errorf("%w: %s: gave up waiting for the connection: %w", ErrConnect, addr, ctx.Err())
	case <-expired:
		return nil, fmt.Errorf("%w: %s: gave up waiting for the connection: %w", ErrConnect, addr, context.DeadlineExceeded)
	case <-c.ctx.Done():
		return nil, c.closedError(addr)
	}
}

// runDial dials addr outside every lock and installs the connection.
func (c *Client) runDial(addr string, d *dialCall) {
	defer c.wg.Done()
	raw, nc, err := c.dial(addr)

	c.mu.Lock()
	s := c.slots[addr] // cannot have been deleted: s.dial is set
	s.dial = nil
	var cn *conn
	switch {
	case err == nil && c.closed:
		raw.Close()
		err = c.closedError(addr)
	case err == nil:
		cn = newConn(c, addr, raw, nc)
		s.conn = cn
		c.wg.Add(3)
	}
	if s.conn == nil {
		delete(c.slots, addr)
	}
	c.mu.Unlock()

	d.conn, d.err = cn, err
	close(d.done)
	if cn == nil {
		c.cfg.Logger.Debug("connect failed", "addr", addr, "error", err)
		return
	}
	c.cfg.Logger.Debug("connection opened", "addr", addr, "local", raw.LocalAddr().String(), "tls", cn.tls)
	if h := c.cfg.Hooks.OnConn; h != nil {
		h(ConnEvent{Addr: addr, Open: true})
	}
	go cn.readLoop()
	go cn.writeLoop()
	go cn.callbackLoop()
}

// dial opens a TCP connection (and TLS session) within ConnectTimeout. It returns the raw TCP
// connection, closed to tear everything down, and the one to read and write.
func (c *Client) dial(addr string) (raw, nc net.Conn, err error) {
	ctx, cancel := context.WithTimeout(c.ctx, c.cfg.ConnectTimeout)
	defer cancel()
	raw, err = c.cfg.Dialer(ctx, "tcp", addr)
	if err == nil {
		if tc, ok := raw.(*net.TCPConn); ok {
			err = tc.SetNoDelay(true)
		}
	}
	if err == nil && c.cfg.TLS != nil {
		conf := c.cfg.TLS
		if conf.ServerName == "" {
			conf = conf.Clone()
			if host, _, herr := net.SplitHostPort(addr); herr == nil {
				conf.ServerName = host
			} else {
				conf.ServerName = addr
			}
		}
		tc := tls.Client(raw, conf)
		if err = tc.HandshakeContext(ctx); err == nil {
			nc = tc
		}
	} else if err == nil {
		nc = raw
	}
	if err != nil {
		if raw != nil {
			raw.Close()
		}
		if c.ctx.Err() != nil {
			return nil, nil, c.closedError(addr)
		}
		return nil, nil, fmt.Errorf("%w: %s: %w", ErrConnect, addr, err)
	}
	return raw, nc, nil
}

// removeConn forgets cn once it is shut down, so the next request re-dials.
func (c *Client) removeConn(cn *conn) {
	c.mu.Lock()
	if s := c.slots[cn.addr]; s != nil && s.conn == cn {
		s.conn = nil
		if s.dial == nil {
			delete(c.slots, cn.addr)
		}
	}
	c.mu.Unlock()
}

// CloseConn closes the connection to addr, if any. Its pending requests fail at once with
// ErrConnClosed (or ErrSend when not yet written); the next request to addr re-dials.
func (c *Client) CloseConn(addr string) {
	c.mu.Lock()
	var cn *conn
	if s := c.slots[addr]; s != nil {
		cn = s.conn
	}
	c.mu.Unlock()
	if cn != nil {
		cn.shutdown(errCloseConn)
	}
}

// Conns returns a snapshot of the open connections, sorted by address.
func (c *Client) Conns() []ConnInfo {
	c.mu.Lock()
	out := make([]ConnInfo, 0, len(c.slots))
	for _, s := range c.slots {
		if cn := s.conn; cn != nil {
			out = append(out, cn.info())
		}
	}
	c.mu.Unlock()
	slices.SortFunc(out, func(a, b ConnInfo) int { return strings.Compare(a.Addr, b.Addr) })
	return out
}

// Close closes every connection, fails every pending request with ErrClosed (async callbacks
// run before Close returns) and waits until every goroutine the client started has exited.
// Later calls fail with ErrClosed. Close is idempotent; it must not be called from a callback
// or hook.
func (c *Client) Close() error {
	c.mu.Lock()
	already := c.closed
	c.closed = true
	var conns []*conn
	for _, s := range c.slots {
		if s.conn != nil {
			conns = append(conns, s.conn)
		}
	}
	c.mu.Unlock()
	if !already {
		c.cancel()
		for _, cn := range conns {
			cn.shutdown(errClientClosed)
		}
	}
	c.wg.Wait()
	return nil
}

// ReadSince reports whether the open connection to addr read any bytes at or after t: evidence
// that the peer is alive even when a particular request is still unanswered. It is false when
// there is no open connection.
func (c *Client) ReadSince(addr string, t time.Time) bool {
	c.mu.Lock()
	var cn *conn
	if s := c.slots[addr]; s != nil {
		cn = s.conn
	}
	c.mu.Unlock()
	if cn == nil || cn.closed.Load() {
		return false
	}
	last := cn.lastRead.Load()
	return last >= 0 && last >= int64(t.Sub(cn.openedAt))
}

// serverRequestCodes are the requests a broker sends to a client (Java ClientRemotingProcessor).
var serverRequestCodes = map[RequestCode]bool{
	39: true, 40: true, 220: true, 221: true, 307: true, 309: true, 326: true,
}

// misflaggedResponse handles a frame without FlagResponse that answers one of our pending
// requests (same opaque, not a code a broker sends as a request): the request fails at once
// with a clear ErrBadFrame instead of waiting for a response that was already read. It
// reports whether it took the frame.
func (cn *conn) misflaggedResponse(cmd *Command) bool {
	if cmd.IsOneway() || serverRequestCodes[RequestCode(cmd.Code)] {
		return false
	}
	cn.mu.Lock()
	cl := cn.pending[cmd.Opaque]
	if cl == nil {
		cn.mu.Unlock()
		return false
	}
	delete(cn.pending, cmd.Opaque)
	err := fmt.Errorf("%w: %s: the answer to %s (opaque %d, code %d) is not flagged as a response (flag %#x)",
		ErrBadFrame, cn.addr, cl.code, cmd.Opaque, cmd.Code, cmd.Flag)
	if cl.kind == kindAsync {
		cl.timer.Stop()
		cn.cbq = append(cn.cbq, completion{cl: cl, err: err})
		cn.mu.Unlock()
		cn.wake(cn.cbsig)
		return true
	}
	cn.mu.Unlock()
	cl.err = err
	cl.done <- struct{}{}
	return true
}
