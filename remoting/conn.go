package remoting

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"runtime"
	"sync"
	"sync/atomic"
	"time"
)

const (
	// maxQueuedBytes bounds the frames waiting for the writer; a sender that would exceed
	// it waits (within its deadline) until the writer takes the queue. A lone frame of any
	// size is always accepted. 1 MiB amortises a syscall over hundreds of frames.
	maxQueuedBytes = 1 << 20
	// maxRetainedWriteBuf: a larger write buffer is dropped after use instead of reused.
	maxRetainedWriteBuf = 2 * maxQueuedBytes
	// smallWriteBuf: after many batches no larger than this, larger buffers are dropped.
	smallWriteBuf = 64 << 10
	// readBufferSize is the reader's bufio size: many small responses per read syscall.
	readBufferSize = 32 << 10
	// minSilentWait: a timeout closes the connection only when the request waited at least
	// this long with nothing read, so very short deadlines do not churn connections.
	minSilentWait = 100 * time.Millisecond
)

// Connection close reasons that are not errors of the connection itself.
var (
	errClientClosed = errors.New("client closed")
	errCloseConn    = errors.New("closed by CloseConn")
	errPeerClosed   = fmt.Errorf("closed by peer: %w", io.EOF)
	errIdle         = errors.New("idle timeout")
	// errRequestFlood: the peer kept sending requests while it did not read the replies.
	errRequestFlood = errors.New("the peer sends requests without reading the replies")
)

// conn is one connection and its three goroutines:
//   - readLoop reads frames, completes pending requests and answers server requests; when
//     the connection fails it tears everything down;
//   - writeLoop writes whatever frames accumulated in wbuf with one Write call, so frames
//     from many goroutines share syscalls;
//   - callbackLoop runs async callbacks, so a slow callback never stalls reading.
type conn struct {
	c        *Client
	addr     string
	raw      net.Conn // TCP connection; closing it unblocks everything
	nc       net.Conn // raw, or the TLS session over it
	tls      bool
	openedAt time.Time // also the base of the connection clock (monotonic)

	lastRead  atomic.Int64 // connection clock of the last read; -1 before any
	lastWrite atomic.Int64
	bytesIn   atomic.Int64
	bytesOut  atomic.Int64
	closed    atomic.Bool // mirrors closing, for the lock-free check in getConn

	done       chan struct{} // closed by shutdown
	wsig       chan struct{} // wakes the writer; capacity 1
	cbsig      chan struct{} // wakes the callback goroutine; capacity 1
	writerDone chan struct{}
	lenBuf     [4]byte

	mu        sync.Mutex
	closing   bool
	closeErr  error // first close reason
	pending   map[int32]*call
	wbuf      []byte  // frames waiting for the writer
	oneways   []*call // oneway calls whose frames are in wbuf
	wdeadline time.Time
	writing   bool          // a write is in progress (the writer's, or a caller's direct write)
	wdone     *sync.Cond    // on mu: a direct write ended while closing (teardown waits for it)
	queued    int64         // bytes ever queued
	written   int64         // bytes ever written
	space     chan struct{} // closed when the writer takes wbuf; senders wait on it when full
	cbq       []completion
	cbClosed  bool
	idle      *time.Timer

	// iov is the direct write's hdr and body (writing is held): one writev, no copy.
	iov    net.Buffers
	iovArr [2][]byte
}

// completion is an async call's outcome waiting for the callback goroutine.
type completion struct {
	cl    *call
	resp  *Command
	bytes int
	err   error
}

func newConn(c *Client, addr string, raw, nc net.Conn) *conn {
	cn := &conn{
		c:          c,
		addr:       addr,
		raw:        raw,
		nc:         nc,
		tls:        raw != nc,
		openedAt:   time.Now(),
		done:       make(chan struct{}),
		wsig:       make(chan struct{}, 1),
		cbsig:      make(chan struct{}, 1),
		writerDone: make(chan struct{}),
		pending:    make(map[int32]*call),
	}
	cn.wdone = sync.NewCond(&cn.mu)
	cn.lastRead.Store(-1)
	cn.lastWrite.Store(-1)
	cn.idle = time.AfterFunc(c.cfg.IdleTimeout, cn.checkIdle)
	return cn
}

// now is the connection clock: nanoseconds since it opened, monotonic.
func (cn *conn) now() int64 { return int64(time.Since(cn.openedAt)) }

func (cn *conn) info() ConnInfo {
	cn.mu.Lock()
	pending, queued := len(cn.pending), len(cn.wbuf)
	cn.mu.Unlock()
	return ConnInfo{
		Addr:     cn.addr,
		OpenedAt: cn.openedAt,
		Pending:  pending,
		Queued:   queued,
		BytesIn:  cn.bytesIn.Load(),
		BytesOut: cn.bytesOut.Load(),
		TLS:      cn.tls,
	}
}

// enqueue registers cl (unless oneway) and appends its frame to the write queue in one
// critical section, so a response can never arrive before its pending entry exists.
func (cn *conn) enqueue(ctx context.Context, cl *call, hdr, body []byte) error {
	n := len(hdr) + len(body)
	cn.mu.Lock()
	for !cn.closing && len(cn.wbuf) > 0 && len(cn.wbuf)+n > maxQueuedBytes {
		if cn.space == nil {
			cn.space = make(chan struct{})
		}
		space := cn.space
		cn.mu.Unlock()
		// Only the writer makes room; frames held by a batch (call.held) may be all
		// that fills the queue, and they have not woken it.
		cn.wake(cn.wsig)
		err := waitFor(ctx, cl.deadline, func(stop <-chan struct{}, expired <-chan time.Time) bool {
			select {
			case <-space:
				return true
			case <-cn.done:
				return true // re-checked below
			case <-stop:
			case <-expired:
			}
			return false
		})
		if err != nil {
			return fmt.Errorf("%w: %s: write queue stalled: %w", ErrSend, cn.addr, err)
		}
		cn.mu.Lock()
	}
	if cn.closing {
		cn.mu.Unlock()
		return errConnGone
	}
	cl.cn = cn
	cl.sentAt = cn.now()
	switch cl.kind {
	case kindSync:
		cn.pending[cl.opaque] = cl
	case kindAsync:
		cn.pending[cl.opaque] = cl
		cl.timer = time.AfterFunc(time.Until(cl.deadline), cl.expire)
	case kindOneway:
		cn.oneways = append(cn.oneways, cl)
	}
	wasEmpty := len(cn.wbuf) == 0
	cn.queued += int64(n)
	cl.seq = cn.queued
	if wasEmpty && !cn.writing && cl.kind == kindSync && !cn.tls && !cl.held {
		// Nothing queued and nothing being written: the caller writes its frame itself,
		// from hdr and body as they are, instead of copying it into wbuf and waking the
		// writer goroutine, which would then wake the reader's peer a scheduler hand-off
		// later. Frames queued meanwhile wait for the writer, which this write wakes.
		// A held request (a batch's: InvokeNameServerBatch) only queues: its batch wakes
		// the writer once after its last frame, and one write carries them all.
		cn.writing = true
		cn.mu.Unlock()
		cn.writeDirect(cl.deadline, hdr, body)
		return nil
	}
	cn.wbuf = append(cn.wbuf, hdr...)
	cn.wbuf = append(cn.wbuf, body...)
	if cl.deadline.After(cn.wdeadline) {
		cn.wdeadline = cl.deadline
	}
	cn.mu.Unlock()
	if wasEmpty && !cl.held {
		cn.wake(cn.wsig)
	}
	return nil
}

// directWriteWait bounds a caller's direct write: what the kernel did not take by then
// goes to the writer goroutine, so the caller is back to waiting for its answer (which
// its context and the liveness check can end) instead of blocking in a write.
const directWriteWait = 20 * time.Millisecond

// writeDirect writes hdr and body on the caller's goroutine (cn.writing is held); what
// is left after directWriteWait goes to the front of wbuf for the writer. Not for TLS:
// a timed-out TLS write breaks the session.
func (cn *conn) writeDirect(deadline time.Time, hdr, body []byte) {
	err := cn.nc.SetWriteDeadline(time.Now().Add(directWriteWait))
	var n int64
	if err == nil {
		cn.iovArr[0], cn.iovArr[1] = hdr, body
		cn.iov = cn.iovArr[:]
		n, err = cn.iov.WriteTo(cn.nc)
		cn.iovArr[0], cn.iovArr[1], cn.iov = nil, nil, nil
	}
	if n > 0 {
		cn.bytesOut.Add(n)
		cn.lastWrite.Store(cn.now())
	}
	cn.mu.Lock()
	cn.written += n
	cn.writing = false
	if cn.closing {
		cn.wdone.Broadcast()
	}
	if errors.Is(err, os.ErrDeadlineExceeded) && !cn.closing {
		// The peer is slow to read: the rest of the frame goes first in the queue.
		rest := make([]byte, 0, len(hdr)+len(body)-int(n)+len(cn.wbuf))
		if int(n) < len(hdr) {
			rest = append(append(rest, hdr[n:]...), body...)
		} else {
			rest = append(rest, body[int(n)-len(hdr):]...)
		}
		cn.wbuf = append(rest, cn.wbuf...)
		if deadline.After(cn.wdeadline) {
			cn.wdeadline = deadline
		}
		err = nil
	}
	more := len(cn.wbuf) > 0
	cn.mu.Unlock()
	if err != nil {
		cn.shutdown(fmt.Errorf("write: %w", err))
		return
	}
	if more {
		cn.wake(cn.wsig)
	}
}

// enqueueRaw queues a frame that nobody waits for (a reply to a server request) under
// the same bound as requests. It runs on the reader: while the queue is full the reader
// stops reading, so a peer that sends requests and does not read the replies is held
// back by TCP; if the queue stays full for DefaultTimeout (at least a second), the
// connection closes with errRequestFlood.
func (cn *conn) enqueueRaw(frame []byte) {
	cn.mu.Lock()
	if !cn.closing && len(cn.wbuf) > 0 && len(cn.wbuf)+len(frame) > maxQueuedBytes {
		timer := time.NewTimer(max(cn.c.cfg.DefaultTimeout, time.Second))
		defer timer.Stop()
		for !cn.closing && len(cn.wbuf) > 0 && len(cn.wbuf)+len(frame) > maxQueuedBytes {
			if cn.space == nil {
				cn.space = make(chan struct{})
			}
			space := cn.space
			cn.mu.Unlock()
			select {
			case <-space:
			case <-cn.done:
			case <-timer.C:
				cn.c.cfg.Logger.Warn("closing connection", "addr", cn.addr, "reason", errRequestFlood)
				cn.shutdown(errRequestFlood)
				return
			}
			cn.mu.Lock()
		}
	}
	if cn.closing {
		cn.mu.Unlock()
		return
	}
	wasEmpty := len(cn.wbuf) == 0
	cn.wbuf = append(cn.wbuf, frame...)
	cn.queued += int64(len(frame))
	cn.mu.Unlock()
	if wasEmpty {
		cn.wake(cn.wsig)
	}
}

func (cn *conn) wake(ch chan struct{}) {
	select {
	case ch <- struct{}{}:
	default:
	}
}

// forget removes cl from the pending map; false means someone else already completed it.
func (cn *conn) forget(cl *call) bool {
	cn.mu.Lock()
	defer cn.mu.Unlock()
	if cn.pending[cl.opaque] != cl {
		return false
	}
	delete(cn.pending, cl.opaque)
	return true
}

// expire is an async call's deadline timer.
func (cl *call) expire() {
	cn := cl.cn
	cn.mu.Lock()
	if cn.pending[cl.opaque] != cl {
		cn.mu.Unlock()
		return
	}
	delete(cn.pending, cl.opaque)
	cn.cbq = append(cn.cbq, completion{cl: cl, err: cn.c.timeoutError(cl)})
	cn.mu.Unlock()
	cn.wake(cn.cbsig)
	cn.timedOut(cl)
}

// timedOut applies the close rule after cl timed out: close the connection only if nothing at
// all was read from it while cl waited (at least minSilentWait). A live but slow peer keeps
// its connection, and the other requests multiplexed on it, alive.
func (cn *conn) timedOut(cl *call) {
	if !cn.c.cfg.closeOnTimeout {
		return
	}
	waited := time.Duration(cn.now() - cl.sentAt)
	if waited < minSilentWait || cn.lastRead.Load() >= cl.sentAt {
		return
	}
	cn.mu.Lock()
	closing := cn.closing
	cn.mu.Unlock()
	if closing {
		return // another timed-out call of the same silence (a batch's) closed it
	}
	cn.c.cfg.Logger.Warn("closing silent connection after a timeout", "addr", cn.addr, "waited", waited)
	cn.shutdown(fmt.Errorf("nothing received for %v after sending %s (opaque %d)", waited.Round(time.Millisecond), cl.code, cl.opaque))
}

// shutdown starts closing the connection; the first reason wins. It never runs callbacks:
// readLoop fails the pending requests once the writer has stopped.
func (cn *conn) shutdown(reason error) {
	cn.mu.Lock()
	if cn.closing {
		cn.mu.Unlock()
		return
	}
	cn.closing = true
	cn.closeErr = reason
	cn.idle.Stop()
	cn.mu.Unlock()
	cn.closed.Store(true)
	// Forget it before anything can observe the close, so that a request failed by this
	// close never finds the dead connection again.
	cn.c.removeConn(cn)
	close(cn.done)
	cn.raw.Close()
}

// checkIdle is the idle timer: close when nothing moved either way for IdleTimeout and
// nothing is pending or queued, else re-arm.
func (cn *conn) checkIdle() {
	idle := cn.c.cfg.IdleTimeout
	cn.mu.Lock()
	if cn.closing {
		cn.mu.Unlock()
		return
	}
	busy := len(cn.pending) > 0 || len(cn.wbuf) > 0
	last := max(cn.lastRead.Load(), cn.lastWrite.Load(), 0)
	quiet := time.Duration(cn.now() - last)
	if busy || quiet < idle {
		next := idle - quiet
		if busy || next <= 0 {
			next = idle
		}
		cn.idle.Reset(next)
		cn.mu.Unlock()
		return
	}
	cn.mu.Unlock()
	cn.shutdown(fmt.Errorf("%w: no traffic for %v", errIdle, quiet.Round(time.Millisecond)))
}

// countingReader records read activity for the idle and timeout rules.
type countingReader struct{ cn *conn }

func (r countingReader) Read(p []byte) (int, error) {
	n, err := r.cn.nc.Read(p)
	if n > 0 {
		r.cn.bytesIn.Add(int64(n))
		r.cn.lastRead.Store(r.cn.now())
	}
	return n, err
}

func (cn *conn) readLoop() {
	defer cn.c.wg.Done()
	br := bufio.NewReaderSize(countingReader{cn}, readBufferSize)
	var reason error
	for {
		cmd, n, err := readFrame(br, cn.lenBuf[:], cn.c.cfg.MaxFrameSize)
		if err != nil {
			reason = cn.readError(err)
			break
		}
		if cmd.IsResponse() {
			cn.deliver(cmd, n)
		} else if !cn.misflaggedResponse(cmd) {
			cn.serve(cmd)
		}
	}
	cn.teardown(reason)
}

func (cn *conn) readError(err error) error {
	switch {
	case errors.Is(err, io.EOF):
		return errPeerClosed
	case errors.Is(err, ErrBadFrame), errors.Is(err, ErrFrameTooLarge), errors.Is(err, ErrUnknownSerializeType):
		cn.mu.Lock()
		closing := cn.closing
		cn.mu.Unlock()
		if !closing {
			cn.c.cfg.Logger.Warn("protocol error, closing connection", "addr", cn.addr, "error", err)
		}
		return err
	}
	return fmt.Errorf("read: %w", err)
}

// deliver completes the pending request a response answers; unknown opaques (late responses
// to timed-out requests, answers to oneway requests) are dropped.
func (cn *conn) deliver(resp *Command, n int) {
	cn.mu.Lock()
	cl := cn.pending[resp.Opaque]
	if cl == nil {
		cn.mu.Unlock()
		cn.c.cfg.Logger.Debug("dropped response without a pending request", "addr", cn.addr,
			"opaque", resp.Opaque, "code", resp.ResponseCode())
		return
	}
	delete(cn.pending, resp.Opaque)
	if cl.kind == kindAsync {
		cl.timer.Stop()
		cn.cbq = append(cn.cbq, completion{cl: cl, resp: resp, bytes: n})
		cn.mu.Unlock()
		cn.wake(cn.cbsig)
		return
	}
	cn.mu.Unlock()
	cl.resp, cl.respBytes = resp, n
	cl.done <- struct{}{}
}

// serve answers a request the server sent: oneway ones are ignored, the others get
// REQUEST_CODE_NOT_SUPPORTED on the same opaque, in the request's encoding.
func (cn *conn) serve(req *Command) {
	log := cn.c.cfg.Logger
	if req.IsOneway() {
		if h := cn.c.cfg.OnServerRequest; h != nil {
			h(cn.addr, req)
			return
		}
		log.Debug("remoting: ignored oneway server request", "addr", cn.addr, "code", req.RequestCode())
		return
	}
	resp := &Command{
		Code:     int32(RequestCodeNotSupported),
		Language: cn.c.cfg.Language,
		Version:  cn.c.cfg.Version,
		Opaque:   req.Opaque,
		Flag:     FlagResponse,
		Remark:   fmt.Sprintf("request type %d not supported", req.Code),
	}
	frame, err := AppendFrame(nil, resp, req.Serialize)
	if err != nil {
		log.Warn("remoting: cannot answer server request", "addr", cn.addr, "error", err)
		return
	}
	log.Debug("remoting: answered server request as not supported", "addr", cn.addr, "code", req.RequestCode())
	cn.enqueueRaw(frame)
}

// yieldBelow is the queue size under which the writer yields once before it writes.
const yieldBelow = 16 << 10

func (cn *conn) writeLoop() {
	defer cn.c.wg.Done()
	defer close(cn.writerDone)
	var batch []byte
	var ones []*call
	smallBatches := 0
	for {
		cn.mu.Lock()
		for (len(cn.wbuf) == 0 || cn.writing) && !cn.closing {
			cn.mu.Unlock()
			select {
			case <-cn.wsig:
			case <-cn.done:
			}
			cn.mu.Lock()
		}
		if len(cn.wbuf) < yieldBelow && !cn.closing {
			// Woken for a small queue: let the goroutines that are runnable now (the
			// senders a plugin's batch of decisions or a burst of answers woke) add
			// their frames first, so that one write carries them all.
			cn.mu.Unlock()
			runtime.Gosched()
			cn.mu.Lock()
		}
		if cn.closing {
			cn.mu.Unlock()
			return
		}
		cn.writing = true
		batch, cn.wbuf = cn.wbuf, batch[:0]
		ones, cn.oneways = cn.oneways, ones[:0]
		deadline := cn.wdeadline
		cn.wdeadline = time.Time{}
		space := cn.space
		cn.space = nil
		cn.mu.Unlock()
		if space != nil {
			close(space)
		}

		// A write blocked past every queued request's deadline (and at least DefaultTimeout)
		// means the peer stopped reading; the stream is then broken and the connection
		// closes. The floor keeps a lone request that is about to expire from failing the
		// write at once and taking the connection's other requests down with it.
		if floor := time.Now().Add(cn.c.cfg.DefaultTimeout); deadline.Before(floor) {
			deadline = floor
		}
		err := cn.nc.SetWriteDeadline(deadline)
		var n int
		if err == nil {
			n, err = cn.nc.Write(batch)
		}
		if n > 0 {
			cn.bytesOut.Add(int64(n))
			cn.lastWrite.Store(cn.now())
		}
		cn.mu.Lock()
		cn.written += int64(n)
		cn.writing = false
		written := cn.written
		cn.mu.Unlock()
		for i, cl := range ones {
			var werr error
			if cl.seq > written {
				werr = fmt.Errorf("%w: %s: %w", ErrSend, cn.addr, err)
			}
			cn.c.finishOneway(cl, werr)
			ones[i] = nil
		}
		// Keep the buffer for the next swap unless it is huge, or large while traffic has
		// been light for a while (a burst is over).
		if len(batch) > smallWriteBuf {
			smallBatches = 0
		} else {
			smallBatches++
		}
		if cap(batch) > maxRetainedWriteBuf || cap(batch) > smallWriteBuf && smallBatches > 64 {
			batch = nil
		}
		if err != nil {
			if errors.Is(err, os.ErrDeadlineExceeded) {
				cn.c.cfg.Logger.Warn("closing connection: the peer stopped reading", "addr", cn.addr, "error", err)
			}
			cn.shutdown(fmt.Errorf("write: %w", err))
			return
		}
	}
}

func (c *Client) finishOneway(cl *call, err error) {
	<-cl.permit
	c.report(cl, nil, 0, err)
}

func (cn *conn) callbackLoop() {
	defer cn.c.wg.Done()
	var q []completion
	for {
		cn.mu.Lock()
		for len(cn.cbq) == 0 && !cn.cbClosed {
			cn.mu.Unlock()
			<-cn.cbsig
			cn.mu.Lock()
		}
		if len(cn.cbq) == 0 {
			cn.mu.Unlock()
			return
		}
		q, cn.cbq = cn.cbq, q[:0]
		cn.mu.Unlock()
		for i := range q {
			x := q[i]
			q[i] = completion{}
			<-x.cl.permit
			cn.c.report(x.cl, x.resp, x.bytes, x.err)
			x.cl.cb(x.resp, x.err)
		}
	}
}

// teardown runs on the reader goroutine once reading stopped: it waits for the writer, so
// that every request is classified as written (ErrConnClosed) or not (ErrSend) exactly, then
// fails everything that is left and reports the close.
func (cn *conn) teardown(readErr error) {
	cn.shutdown(readErr)
	<-cn.writerDone

	cn.mu.Lock()
	for cn.writing { // a caller's direct write: its byte count decides the failures below
		cn.wdone.Wait()
	}
	reason := cn.closeErr
	written := cn.written
	var syncs []*call
	asyncFailed := 0
	for op, cl := range cn.pending {
		delete(cn.pending, op)
		err := cn.failure(cl, reason, written)
		if cl.kind == kindAsync {
			cl.timer.Stop()
			cn.cbq = append(cn.cbq, completion{cl: cl, err: err})
			asyncFailed++
		} else {
			cl.err = err
			syncs = append(syncs, cl)
		}
	}
	ones := cn.oneways
	cn.oneways = nil
	cn.wbuf = nil
	cn.cbClosed = true
	cn.mu.Unlock()
	cn.wake(cn.cbsig)

	for _, cl := range syncs {
		cl.done <- struct{}{}
	}
	for _, cl := range ones {
		cn.c.finishOneway(cl, cn.failure(cl, reason, written))
	}

	event := reason
	switch {
	case reason == errClientClosed || reason == errCloseConn:
		event = nil
		cn.c.cfg.Logger.Debug("connection closed", "addr", cn.addr, "reason", reason)
	case errors.Is(reason, errIdle):
		cn.c.cfg.Logger.Debug("connection closed", "addr", cn.addr, "reason", reason)
	default:
		cn.c.cfg.Logger.Info("connection closed", "addr", cn.addr, "reason", reason,
			"failed", len(syncs)+len(ones)+asyncFailed)
	}
	if h := cn.c.cfg.Hooks.OnConn; h != nil {
		h(ConnEvent{Addr: cn.addr, Err: event})
	}
}

// failure is the error for a request still pending or queued when the connection closed.
func (cn *conn) failure(cl *call, reason error, written int64) error {
	switch {
	case reason == errClientClosed:
		return cn.c.closedError(cn.addr)
	case cl.seq > written:
		return fmt.Errorf("%w: %s: %w", ErrSend, cn.addr, reason)
	}
	return fmt.Errorf("%w: %s: %w", ErrConnClosed, cn.addr, reason)
}
