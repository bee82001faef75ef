package rmqv2

import (
	"context"
	"errors"
	"io"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	pb "github.com/producerd/producerd/api/rmqv2"
	"github.com/producerd/producerd/internal/grpcunary"
)

// RecvGate is Options.RecvGate: it waits until the call whose context is ctx may receive
// its request (the daemon lets 2 calls of a connection receive at a time) and returns
// the function that ends its turn; an error (ctx ended) fails the call.
type RecvGate func(ctx context.Context) (release func(), err error)

// register registers the service on gs with every unary method served as a stream
// handler behind Options.RecvGate. gRPC reads a unary call's whole request before its
// handler runs, so one connection's open calls could each hold up to the receive limit;
// behind the gate a call waiting for its turn holds only what its stream's flow-control
// window let in (256 KiB). The wire protocol is the same.
func (s *Service) register(gs *grpc.Server) {
	gs.RegisterService(grpcunary.AsStreams(pb.MessagingService_ServiceDesc,
		func(md grpc.MethodDesc) grpc.StreamHandler { return s.gated(md.Handler) }), s)
}

// gated serves the unary method h as a stream handler: its request is received in its
// connection's turn, then h runs (with recoverUnary) and its one reply is sent.
func (s *Service) gated(h grpc.MethodHandler) grpc.StreamHandler {
	return func(srv any, stream grpc.ServerStream) error {
		ctx := stream.Context()
		dec := func(v any) error {
			release, err := s.opts.RecvGate(ctx)
			if err != nil {
				return status.FromContextError(err).Err()
			}
			err = stream.RecvMsg(v)
			release()
			if errors.Is(err, io.EOF) {
				return status.Error(codes.InvalidArgument, "rmqv2: the call carries no request message")
			}
			return err
		}
		reply, err := h(srv, ctx, dec, s.recoverUnary)
		if err != nil {
			return err
		}
		return stream.SendMsg(reply)
	}
}
