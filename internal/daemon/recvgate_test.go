package daemon

import (
	"context"
	"errors"
	"net"
	"testing"
	"time"

	"google.golang.org/grpc/peer"
)

// TestRecvGatePerConnection: recvPerConn calls of one connection receive at a time,
// another connection is not held back, and a gate no call uses is reused, not rebuilt.
func TestRecvGatePerConnection(t *testing.T) {
	t.Parallel()
	g := &recvGate{conns: map[any]*connGate{}}
	connA := peer.NewContext(context.Background(), &peer.Peer{Addr: &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 1}})
	connB := peer.NewContext(context.Background(), &peer.Peer{Addr: &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 1}}) // same address, another connection
	type turn struct {
		key any
		cg  *connGate
	}
	var held []turn
	for range recvPerConn {
		key, cg, err := g.enter(connA)
		if err != nil {
			t.Fatal(err)
		}
		held = append(held, turn{key, cg})
	}
	ctx, cancel := context.WithTimeout(connA, 20*time.Millisecond)
	defer cancel()
	if _, _, err := g.enter(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("a third call of the connection entered: %v", err)
	}
	key, cg, err := g.enter(connB)
	if err != nil {
		t.Fatalf("another connection waited: %v", err)
	}
	g.leave(key, cg)
	for _, h := range held {
		g.leave(h.key, h.cg)
	}
	if len(g.conns) != 0 || len(g.free) != 2 {
		t.Fatalf("%d gates in use and %d free after every call left, want 0 and 2", len(g.conns), len(g.free))
	}
	_, again, err := g.enter(connA)
	if err != nil || (again != held[0].cg && again != cg) {
		t.Fatalf("a new gate was built instead of reusing a free one (%v)", err)
	}
}
