package daemon

import (
	"context"
	"errors"
	"io"
	"net"
	"sync"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/mem"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/producerd/producerd/api/producerdpb"
	"github.com/producerd/producerd/internal/grpcunary"
)

// chargedFrame is a unary request as gRPC received it: the ingress codec charges its
// bytes to the in-flight bound before it copies or decodes them, so requests over the
// budget are refused while they cost only gRPC's receive buffer (one message of at most
// limits.max_grpc_message_size per call being received).
type chargedFrame struct {
	d        *Daemon
	buf      mem.Buffer // the request's bytes, from gRPC's pool; nil once decoded
	charged  int64
	released bool  // the charge was returned
	err      error // the charge was refused; buf is nil
}

// release returns the frame's charge and buffer, once.
func (f *chargedFrame) release() {
	if f.buf != nil {
		f.buf.Free()
		f.buf = nil
	}
	if !f.released {
		f.released = true
		f.d.limit.release(0, f.charged)
	}
}

// decode is the method handler's decoder: it decodes the frame into v and returns the
// frame's charge (the method then charges the decoded message).
func (f *chargedFrame) decode(v any) error {
	defer f.release()
	m, ok := v.(proto.Message)
	if !ok {
		return status.Errorf(codes.Internal, "daemon: cannot decode into %T", v)
	}
	if f.buf == nil {
		return status.Error(codes.Internal, "daemon: the request was decoded already")
	}
	// The decoded message copies what it keeps: the buffer goes back to the pool.
	err := proto.Unmarshal(f.buf.ReadOnlyData(), m)
	if err != nil {
		return status.Errorf(codes.InvalidArgument, "daemon: the request does not decode: %v", err)
	}
	return nil
}

// recvPerConn bounds the unary requests of one connection that gRPC receives at a
// time. A unary call's data waits in its stream's flow-control window (256 KiB) until
// the call may receive, so what gRPC buffers of unary requests before the daemon can
// charge them is at most recvPerConn × limits.max_grpc_message_size + the windows per
// connection, instead of one whole message per concurrent call. A slow client slows
// only its own connection.
const recvPerConn = 2

// ingressDesc is the Ingress service with every unary method served as a stream
// handler: the call waits for its connection's receive gate before gRPC reads its
// message, and receives a chargedFrame first, whose charge covers its copy and
// decoding and is returned once the request is decoded (the method then charges the
// decoded message as usual).
func (d *Daemon) ingressDesc() *grpc.ServiceDesc {
	gate := newRecvGate()
	return grpcunary.AsStreams(producerdpb.Ingress_ServiceDesc, func(md grpc.MethodDesc) grpc.StreamHandler {
		api := apiGRPC
		if md.MethodName == "SendBatch" {
			api = apiBatch
		}
		return d.chargedHandler(gate, api, md.Handler)
	})
}

// chargedHandler serves the unary method h as a stream handler (the wire protocol is
// the same): gate, charged frame, decode, h, one reply.
func (d *Daemon) chargedHandler(gate *recvGate, api string, h grpc.MethodHandler) grpc.StreamHandler {
	return func(srv any, stream grpc.ServerStream) error {
		ctx := stream.Context()
		key, cg, err := gate.enter(ctx)
		if err != nil {
			return status.FromContextError(err).Err()
		}
		f := &chargedFrame{d: d}
		// Released on every path: RecvMsg can fail after the codec charged the frame
		// (gRPC reads on after a unary request to check that no second one follows).
		defer f.release()
		err = stream.RecvMsg(f)
		gate.leave(key, cg)
		if errors.Is(err, io.EOF) {
			return status.Error(codes.InvalidArgument, "daemon: the call carries no request message")
		}
		if err != nil {
			return err
		}
		if f.err != nil {
			return grpcError(d.reject(api, f.err))
		}
		decode := f.decode // one allocation for the method value; the frame holds the rest
		reply, err := h(srv, ctx, decode, nil)
		if err != nil {
			return err
		}
		return stream.SendMsg(reply)
	}
}

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
