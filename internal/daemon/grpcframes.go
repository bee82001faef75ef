package daemon

import (
	"context"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
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

// ingressDesc is the Ingress service with every unary method receiving a chargedFrame
// first: the frame's charge covers its copy and decoding and is returned once the
// request is decoded, when the method charges the decoded message as usual.
func (d *Daemon) ingressDesc() *grpc.ServiceDesc {
	desc := producerdpb.Ingress_ServiceDesc
	desc.Methods = make([]grpc.MethodDesc, len(producerdpb.Ingress_ServiceDesc.Methods))
	for i, md := range producerdpb.Ingress_ServiceDesc.Methods {
		api := apiGRPC
		if md.MethodName == "SendBatch" {
			api = apiBatch
		}
		desc.Methods[i] = grpc.MethodDesc{MethodName: md.MethodName, Handler: d.chargedHandler(api, md.Handler)}
	}
	return &desc
}

func (d *Daemon) chargedHandler(api string, h grpc.MethodHandler) grpc.MethodHandler {
	return func(srv any, ctx context.Context, dec func(any) error, ic grpc.UnaryServerInterceptor) (any, error) {
		f := &chargedFrame{d: d}
		if err := dec(f); err != nil {
			return nil, err
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
			return nil, grpcError(d.reject(api, f.err))
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
		return h(srv, ctx, decode, ic)
	}
}
