package daemon

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"time"
)

// The ingress Unix-domain socket (ingress.unix) serves gRPC and HTTP on one path, as
// sidecars offer: a local client skips TCP and loopback, and the socket file's
// permissions (ingress.unix_mode, default 0600: the daemon's user only) are its access
// control. Each connection is routed by its first bytes: the HTTP/2 client preface goes to
// the gRPC server (its own transport, not the slower ServeHTTP bridge), anything else to
// the HTTP server.

// http2Preface opens every HTTP/2 connection with prior knowledge, as gRPC clients do.
const http2Preface = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"

// unixIngress is the socket and the two listeners the servers accept from.
type unixIngress struct {
	ln         *net.UnixListener
	accepting  net.Listener // ln under the connection cap, set by start
	path       string
	grpc, http *chanListener
	timeout    time.Duration // for the first bytes of a connection
	closeOnce  sync.Once
	wg         sync.WaitGroup
}

// listenUnix binds path with the given permissions. The socket is bound under a temporary
// name, given its mode, then renamed into place, so it is never reachable with looser
// permissions. A stale socket at path (no one accepts on it) is replaced; any other file
// is an error.
func listenUnix(path string, mode os.FileMode, timeout time.Duration) (*unixIngress, error) {
	if fi, err := os.Lstat(path); err == nil {
		if fi.Mode()&os.ModeSocket == 0 {
			return nil, fmt.Errorf("daemon: ingress unix: %s exists and is not a socket", path)
		}
		if c, err := net.DialTimeout("unix", path, time.Second); err == nil {
			c.Close()
			return nil, fmt.Errorf("daemon: ingress unix: %s is in use by another process", path)
		}
	}
	tmp := filepath.Join(filepath.Dir(path), "."+filepath.Base(path)+"."+strconv.Itoa(os.Getpid()))
	_ = os.Remove(tmp)
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: tmp, Net: "unix"})
	if err != nil {
		return nil, fmt.Errorf("daemon: ingress unix: %w", err)
	}
	ln.SetUnlinkOnClose(false) // the path changes below; Close removes it
	err = os.Chmod(tmp, mode)
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err != nil {
		ln.Close()
		_ = os.Remove(tmp)
		return nil, fmt.Errorf("daemon: ingress unix: %w", err)
	}
	addr := &net.UnixAddr{Name: path, Net: "unix"}
	return &unixIngress{ln: ln, path: path, timeout: timeout, grpc: newChanListener(addr), http: newChanListener(addr)}, nil
}

// start accepts connections, at most maxConns open at a time (limits.max_connections, as
// the TCP listeners).
func (u *unixIngress) start(maxConns int) {
	u.accepting = newLimitListener(u.ln, maxConns)
	u.wg.Add(1)
	go u.accept()
}

func (u *unixIngress) accept() {
	defer u.wg.Done()
	for {
		c, err := u.accepting.Accept()
		if err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				continue
			}
			return
		}
		u.wg.Add(1)
		go func() {
			defer u.wg.Done()
			u.route(c)
		}()
	}
}

// route reads the first bytes of c and hands it to the gRPC or the HTTP listener.
func (u *unixIngress) route(c net.Conn) {
	_ = c.SetReadDeadline(time.Now().Add(u.timeout))
	// Read until the bytes are the whole preface or differ from it: a short HTTP/1
	// request is routed at once, not after the timeout.
	head := make([]byte, len(http2Preface))
	n := 0
	for n < len(head) && bytes.Equal(head[:n], []byte(http2Preface[:n])) {
		m, err := c.Read(head[n:])
		n += m
		if err != nil {
			break
		}
	}
	_ = c.SetReadDeadline(time.Time{})
	if n == 0 {
		c.Close()
		return
	}
	pc := &peekedConn{Conn: c, head: head[:n]}
	to := u.http
	if n == len(head) && string(head) == http2Preface {
		to = u.grpc
	}
	if !to.deliver(pc) {
		c.Close()
	}
}

// Close stops accepting, closes both listeners and removes the socket file.
func (u *unixIngress) Close() error {
	var err error
	u.closeOnce.Do(func() {
		if u.accepting != nil {
			err = u.accepting.Close() // also ends an Accept waiting for a slot
		} else {
			err = u.ln.Close()
		}
		u.grpc.Close()
		u.http.Close()
		_ = os.Remove(u.path)
		u.wg.Wait()
	})
	return err
}

// peekedConn replays the bytes read to route it.
type peekedConn struct {
	net.Conn
	head []byte
}

func (c *peekedConn) Read(p []byte) (int, error) {
	if len(c.head) > 0 {
		n := copy(p, c.head)
		c.head = c.head[n:]
		return n, nil
	}
	return c.Conn.Read(p)
}

// chanListener is a net.Listener fed connections by unixIngress.
type chanListener struct {
	addr  net.Addr
	conns chan net.Conn
	done  chan struct{}
	once  sync.Once
}

func newChanListener(addr net.Addr) *chanListener {
	return &chanListener{addr: addr, conns: make(chan net.Conn), done: make(chan struct{})}
}

func (l *chanListener) deliver(c net.Conn) bool {
	select {
	case l.conns <- c:
		return true
	case <-l.done:
		return false
	}
}

func (l *chanListener) Accept() (net.Conn, error) {
	select {
	case c := <-l.conns:
		return c, nil
	case <-l.done:
		return nil, net.ErrClosed
	}
}

func (l *chanListener) Close() error {
	l.once.Do(func() { close(l.done) })
	return nil
}

func (l *chanListener) Addr() net.Addr { return l.addr }
