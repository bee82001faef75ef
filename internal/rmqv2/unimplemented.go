package rmqv2

import (
	"strings"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// consumerMethods are the MessagingService methods of consumers (rocketmq-apis 2.0.4 and
// later).
var consumerMethods = map[string]bool{
	"ReceiveMessage": true, "AckMessage": true, "ForwardMessageToDeadLetterQueue": true,
	"PullMessage": true, "UpdateOffset": true, "GetOffset": true, "QueryOffset": true,
	"QueryAssignment": true, "ChangeInvisibleDuration": true, "SyncLiteSubscription": true,
}

// Unimplemented answers every method the server does not serve with gRPC UNIMPLEMENTED
// and a message saying why; install it with grpc.UnknownServiceHandler.
func Unimplemented(_ any, stream grpc.ServerStream) error {
	full, _ := grpc.MethodFromServerStream(stream)
	method := full[strings.LastIndexByte(full, '/')+1:]
	switch {
	case !strings.HasPrefix(full, "/apache.rocketmq.v2.MessagingService/"):
		return status.Errorf(codes.Unimplemented, "producerd serves apache.rocketmq.v2.MessagingService only, not %s", full)
	case consumerMethods[method]:
		return status.Errorf(codes.Unimplemented, "producerd is a producer endpoint: %s is a consumer RPC; consumers connect to a RocketMQ Proxy or the brokers", method)
	}
	return status.Errorf(codes.Unimplemented, "producerd is a producer endpoint: %s is not served", method)
}
