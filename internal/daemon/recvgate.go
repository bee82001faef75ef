package daemon

import (
	"context"
	"net"
	"sync"

	"google.golang.org/grpc/peer"
)

// recvPerConn bounds the unary requests of one connection that gRPC receives at a
// time. A unary call's data waits in its stream's flow-control window (256 KiB) until
// the call may receive, so what gRPC buffers of unary requests before the daemon can
// charge them is at most recvPerConn × limits.max_grpc_message_size + the windows per
// connection, instead of one whole message per concurrent call. A slow client slows
// only its own connection.
const recvPerConn = 2

// recvGate holds a semaphore of recvPerConn per connection, removed when no call of
// the connection uses it (kept in a small free list for the next one, so that a
// connection with one call at a time does not build a gate per call).
type recvGate struct {
	mu    sync.Mutex
	conns map[any]*connGate
	free  []*connGate
}

type connGate struct {
	sem  chan struct{}
	refs int
}

// maxFreeGates bounds the recvGate's free list.
const maxFreeGates = 64

// connKey identifies a call's connection: gRPC gives every call of a connection the
// same peer address value, so a pointer address is the key without formatting it.
func connKey(ctx context.Context) any {
	p, ok := peer.FromContext(ctx)
	if !ok || p.Addr == nil {
		return ""
	}
	switch a := p.Addr.(type) {
	case *net.TCPAddr:
		return a
	case *net.UnixAddr:
		if a != nil && a.Name != "" && a.Name != "@" {
			return a.Name
		}
		return a // unnamed Unix peers: one per connection (a nil one is shared)
	}
	return p.Addr.String()
}

// newRecvGate is an empty recvGate.
func newRecvGate() *recvGate { return &recvGate{conns: map[any]*connGate{}} }

// turn is the rmqv2.RecvGate of g: it waits for the turn of the call's connection.
func (g *recvGate) turn(ctx context.Context) (func(), error) {
	key, cg, err := g.enter(ctx)
	if err != nil {
		return nil, err
	}
	return func() { g.leave(key, cg) }, nil
}

// enter waits for the connection's turn to receive; leave(key, cg) gives it back.
func (g *recvGate) enter(ctx context.Context) (key any, cg *connGate, err error) {
	key = connKey(ctx)
	g.mu.Lock()
	cg = g.conns[key]
	if cg == nil {
		if n := len(g.free); n > 0 {
			cg, g.free = g.free[n-1], g.free[:n-1]
		} else {
			cg = &connGate{sem: make(chan struct{}, recvPerConn)}
		}
		g.conns[key] = cg
	}
	cg.refs++
	g.mu.Unlock()
	select {
	case cg.sem <- struct{}{}:
		return key, cg, nil
	case <-ctx.Done():
		g.unref(key, cg)
		return nil, nil, ctx.Err()
	}
}

// leave gives back the turn enter gave.
func (g *recvGate) leave(key any, cg *connGate) {
	<-cg.sem
	g.unref(key, cg)
}

func (g *recvGate) unref(key any, cg *connGate) {
	g.mu.Lock()
	if cg.refs--; cg.refs == 0 {
		delete(g.conns, key)
		if len(g.free) < maxFreeGates {
			g.free = append(g.free, cg) // empty: every holder took its token back
		}
	}
	g.mu.Unlock()
}
