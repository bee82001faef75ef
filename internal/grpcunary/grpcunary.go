// Package grpcunary serves a gRPC service's unary methods as stream handlers. gRPC
// reads a unary call's whole request before its handler runs; a stream handler decides
// when to receive it (after a per-connection turn, after charging its size), with the
// same wire protocol.
package grpcunary

import "google.golang.org/grpc"

// AsStreams returns a copy of desc in which every unary method is a stream handler
// made by wrap from the method's own handler; desc's streams stay as they are.
func AsStreams(desc grpc.ServiceDesc, wrap func(md grpc.MethodDesc) grpc.StreamHandler) *grpc.ServiceDesc {
	out := desc
	out.Methods = nil
	out.Streams = append([]grpc.StreamDesc(nil), desc.Streams...)
	for _, md := range desc.Methods {
		out.Streams = append(out.Streams, grpc.StreamDesc{StreamName: md.MethodName, Handler: wrap(md)})
	}
	return &out
}
