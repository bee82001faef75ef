package devbroker

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"sync/atomic"

	"github.com/hashicorp/go-hclog"

	"github.com/producerd/producerd/remoting"
)

// endpoint is one listener (the NameServer's or a broker's) with its connections. It can be
// stopped and started again on the same address (broker Down/Up).
type endpoint struct {
	name     string
	log      hclog.Logger
	maxFrame int
	enc      Encoding
	version  int32
	wg       *sync.WaitGroup
	// serve handles one request on the connection's read goroutine; false closes the
	// connection.
	serve func(cn *conn, req *remoting.Command) bool
	// coalesce holds the answers to requests that arrived together (the next request's
	// frame is buffered already) and writes them with the last one: one write and one
	// wake-up of the client's reader per batch of requests, as a client's route refresh
	// sends them. Only for handlers that answer on the read goroutine without blocking
	// (the NameServer's): a held answer waits for the next request to be served.
	coalesce bool

	accepted atomic.Int64

	mu    sync.Mutex
	ln    net.Listener // nil while stopped
	addr  string       // fixed by the first listen
	bound net.Addr     // the first listener's address
	conns map[*conn]struct{}
}

// listen opens the listener on e.addr (or addr the first time) and starts accepting.
func (e *endpoint) listen(ctx context.Context, addr string) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.ln != nil {
		return nil
	}
	if e.addr != "" {
		addr = e.addr
	}
	var lc net.ListenConfig
	ln, err := lc.Listen(ctx, "tcp", addr)
	if err != nil {
		return fmt.Errorf("devbroker: %s: listen on %s: %w", e.name, addr, err)
	}
	e.ln = ln
	if e.bound == nil {
		e.bound = ln.Addr()
	}
	e.addr = ln.Addr().String()
	if e.conns == nil {
		e.conns = make(map[*conn]struct{})
	}
	e.wg.Add(1)
	go e.acceptLoop(ln)
	e.log.Debug("listening", "addr", e.addr)
	return nil
}

// stop closes the listener and every connection; accepting stops.
func (e *endpoint) stop() {
	e.mu.Lock()
	ln := e.ln
	e.ln = nil
	conns := make([]*conn, 0, len(e.conns))
	for cn := range e.conns {
		conns = append(conns, cn)
	}
	clear(e.conns)
	e.mu.Unlock()
	if ln != nil {
		ln.Close()
	}
	for _, cn := range conns {
		cn.close()
	}
}

func (e *endpoint) address() string {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.addr
}

// boundAddr returns the address of the first listen (the broker's store host).
func (e *endpoint) boundAddr() net.Addr {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.bound
}

func (e *endpoint) acceptLoop(ln net.Listener) {
	defer e.wg.Done()
	for {
		nc, err := ln.Accept()
		if err != nil {
			if !errors.Is(err, net.ErrClosed) {
				e.log.Warn("accept failed; listener stops", "error", err)
			}
			return
		}
		if tc, ok := nc.(*net.TCPConn); ok {
			tc.SetNoDelay(true)
		}
		cn := &conn{nc: nc, br: bufio.NewReaderSize(nc, 64<<10), done: make(chan struct{}), ep: e}
		e.mu.Lock()
		if e.ln != ln { // stopped while this connection was being accepted
			e.mu.Unlock()
			nc.Close()
			continue
		}
		e.conns[cn] = struct{}{}
		e.wg.Add(1)
		e.mu.Unlock()
		e.accepted.Add(1)
		go e.readLoop(cn)
	}
}

func (e *endpoint) readLoop(cn *conn) {
	defer e.wg.Done()
	defer func() {
		cn.close()
		e.mu.Lock()
		delete(e.conns, cn)
		e.mu.Unlock()
	}()
	if e.coalesce {
		defer cn.flushHeld() // answers held when the next frame turned out bad go first
	}
	for {
		req, err := remoting.ReadCommand(cn.br, e.maxFrame)
		if err != nil {
			if !errors.Is(err, io.EOF) && !errors.Is(err, net.ErrClosed) {
				e.log.Debug("closing connection", "remote", cn.nc.RemoteAddr(), "error", err)
			}
			return
		}
		held := e.coalesce && cn.nextFrameBuffered()
		if e.coalesce {
			cn.hold(held) // not holding: this request's answer takes those held with it
		}
		// The fixture sends no requests, so no response is expected: one is skipped.
		if !req.IsResponse() && !e.safeServe(cn, req) {
			return
		}
		if e.coalesce && !held {
			cn.flushHeld() // in case there was no answer to take them
		}
	}
}

// safeServe keeps a handler bug from taking the process down: the connection closes instead.
func (e *endpoint) safeServe(cn *conn, req *remoting.Command) (ok bool) {
	defer func() {
		if r := recover(); r != nil {
			e.log.Error("handler panicked; closing the connection", "code", req.Code, "panic", r)
			ok = false
		}
	}()
	return e.serve(cn, req)
}

// conn is one accepted connection.
type conn struct {
	nc   net.Conn
	br   *bufio.Reader
	ep   *endpoint
	done chan struct{}
	once sync.Once

	wmu  sync.Mutex
	wbuf []byte // answers held (endpoint.coalesce), then the next frame's buffer
	held bool
}

// nextFrameBuffered says whether a whole request frame is buffered after the one just read.
func (cn *conn) nextFrameBuffered() bool {
	n := cn.br.Buffered()
	if n < 4 {
		return false
	}
	p, _ := cn.br.Peek(4)
	return n-4 >= int(binary.BigEndian.Uint32(p))
}

// hold starts or ends holding answers: the next answer written while not holding
// takes those held with it.
func (cn *conn) hold(on bool) {
	cn.wmu.Lock()
	cn.held = on
	cn.wmu.Unlock()
}

// flushHeld writes the answers held, if any.
func (cn *conn) flushHeld() {
	cn.wmu.Lock()
	defer cn.wmu.Unlock()
	if len(cn.wbuf) > 0 {
		cn.flush()
	}
}

func (cn *conn) close() {
	cn.once.Do(func() {
		close(cn.done)
		cn.nc.Close()
	})
}

// reset closes the connection with a TCP RST instead of a FIN.
func (cn *conn) reset() {
	if tc, ok := cn.nc.(*net.TCPConn); ok {
		tc.SetLinger(0)
	}
	cn.close()
}

// write sends a response in the configured encoding. Errors close the connection.
func (cn *conn) write(resp *remoting.Command) {
	st := resp.Serialize
	switch cn.ep.enc {
	case EncodingJSON:
		st = remoting.JSON
	case EncodingRocketMQ:
		st = remoting.RocketMQ
	}
	resp.Language = remoting.LanguageJava
	resp.Version = cn.ep.version
	cn.wmu.Lock()
	defer cn.wmu.Unlock()
	buf, err := remoting.AppendFrame(cn.wbuf, resp, st)
	if err != nil {
		cn.ep.log.Error("cannot encode response; closing the connection", "code", resp.Code, "error", err)
		cn.close()
		return
	}
	cn.wbuf = buf
	if !cn.held {
		cn.flush()
	}
}

// flush writes the answers in wbuf (cn.wmu is held).
func (cn *conn) flush() {
	if _, err := cn.nc.Write(cn.wbuf); err != nil {
		cn.close()
	}
	if cap(cn.wbuf) <= 1<<20 {
		cn.wbuf = cn.wbuf[:0]
	} else {
		cn.wbuf = nil
	}
}
