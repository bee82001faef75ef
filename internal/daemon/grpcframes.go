package daemon

import (
	"errors"
	"io"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/mem"
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
