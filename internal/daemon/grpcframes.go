package daemon

import (
	"context"
	"errors"
	"io"
	"sync"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/producerd/producerd/api/producerdpb"
)

// chargedFrame is a unary request as gRPC received it: the ingress codec charges its
// bytes to the in-flight bound before it copies or decodes them, so requests over the
// budget are refused while they cost only gRPC's receive buffer (one message of at most
// limits.max_grpc_message_size per call being received).
type chargedFrame struct {
	d       *Daemon
	b       []byte
	charged int64
	err     error // the charge was refused; b is empty
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
	gate := &recvGate{conns: map[string]*connGate{}}
	orig := producerdpb.Ingress_ServiceDesc
	desc := orig
	desc.Methods = nil
	desc.Streams = append([]grpc.StreamDesc(nil), orig.Streams...)
	for _, md := range orig.Methods {
		api := apiGRPC
		if md.MethodName == "SendBatch" {
			api = apiBatch
		}
		desc.Streams = append(desc.Streams, grpc.StreamDesc{StreamName: md.MethodName, Handler: d.chargedHandler(gate, api, md.Handler)})
	}
	return &desc
}

// chargedHandler serves the unary method h as a stream handler (the wire protocol is
// the same): gate, charged frame, decode, h, one reply.
func (d *Daemon) chargedHandler(gate *recvGate, api string, h grpc.MethodHandler) grpc.StreamHandler {
	return func(srv any, stream grpc.ServerStream) error {
		ctx := stream.Context()
		leave, err := gate.enter(ctx)
		if err != nil {
			return status.FromContextError(err).Err()
		}
		f := &chargedFrame{d: d}
		err = stream.RecvMsg(f)
		leave()
		if errors.Is(err, io.EOF) {
			return status.Error(codes.InvalidArgument, "daemon: the call carries no request message")
		}
		if err != nil {
			return err
		}
		released := false
		release := func() {
			if !released {
				released = true
				d.limit.release(0, f.charged)
			}
		}
		defer release()
		if f.err != nil {
			return grpcError(d.reject(api, f.err))
		}
		decode := func(v any) error {
			defer release()
			m, ok := v.(proto.Message)
			if !ok {
				return status.Errorf(codes.Internal, "daemon: cannot decode into %T", v)
			}
			err := proto.Unmarshal(f.b, m)
			f.b = nil
			if err != nil {
				return status.Errorf(codes.InvalidArgument, "daemon: the request does not decode: %v", err)
			}
			return nil
		}
		reply, err := h(srv, ctx, decode, nil)
		if err != nil {
			return err
		}
		return stream.SendMsg(reply)
	}
}

// recvGate holds a semaphore of recvPerConn per connection (by peer address), removed
// when no call of the connection uses it.
type recvGate struct {
	mu    sync.Mutex
	conns map[string]*connGate
}

type connGate struct {
	sem  chan struct{}
	refs int
}

// enter waits for the connection's turn to receive; leave gives it back.
func (g *recvGate) enter(ctx context.Context) (leave func(), err error) {
	key := ""
	if p, ok := peer.FromContext(ctx); ok && p.Addr != nil {
		key = p.Addr.String()
	}
	g.mu.Lock()
	cg := g.conns[key]
	if cg == nil {
		cg = &connGate{sem: make(chan struct{}, recvPerConn)}
		g.conns[key] = cg
	}
	cg.refs++
	g.mu.Unlock()
	unref := func() {
		g.mu.Lock()
		if cg.refs--; cg.refs == 0 {
			delete(g.conns, key)
		}
		g.mu.Unlock()
	}
	select {
	case cg.sem <- struct{}{}:
		return func() { <-cg.sem; unref() }, nil
	case <-ctx.Done():
		unref()
		return nil, ctx.Err()
	}
}
