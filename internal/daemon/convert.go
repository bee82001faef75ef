package daemon

import (
	"context"
	"errors"
	"net/http"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/producerd/producerd/api/producerdpb"
	"github.com/producerd/producerd/core"
	"github.com/producerd/producerd/remoting"
)

// toCore converts an API message; the body is not copied.
func toCore(m *producerdpb.Message) *core.Message {
	cm := &core.Message{
		Topic:       m.GetTopic(),
		Body:        m.GetBody(),
		Tags:        m.GetTags(),
		Keys:        m.GetKeys(),
		ShardingKey: m.GetShardingKey(),
		DelayLevel:  int(m.GetDelayLevel()),
		Properties:  m.GetProperties(),
	}
	timerToCore(cm, m)
	return cm
}

func statusToPB(s core.SendStatus) producerdpb.SendStatus {
	switch s {
	case core.FlushDiskTimeout:
		return producerdpb.SendStatus_SEND_STATUS_FLUSH_DISK_TIMEOUT
	case core.FlushSlaveTimeout:
		return producerdpb.SendStatus_SEND_STATUS_FLUSH_SLAVE_TIMEOUT
	case core.SlaveNotAvailable:
		return producerdpb.SendStatus_SEND_STATUS_SLAVE_NOT_AVAILABLE
	}
	return producerdpb.SendStatus_SEND_STATUS_SEND_OK
}

func resultToPB(r *core.SendResult) *producerdpb.SendResult {
	if r == nil {
		return nil
	}
	return &producerdpb.SendResult{
		MsgId: r.MsgID, OffsetMsgId: r.OffsetMsgID, Topic: r.Topic, Broker: r.Queue.Broker,
		QueueId: r.Queue.ID, QueueOffset: r.QueueOffset, Status: statusToPB(r.Status), Attempts: int32(r.Attempts),
	}
}

// errorToPB classifies a send error: the RocketMQ code when a broker answered, else the
// daemon's reason, and the gRPC code a unary call returns.
func errorToPB(err error) *producerdpb.Error {
	e := &producerdpb.Error{Message: err.Error()}
	var re *remoting.Error
	code := codes.Unknown
	switch {
	case errors.Is(err, errBusy):
		code, e.Reason = codes.ResourceExhausted, "RESOURCE_EXHAUSTED"
	case errors.Is(err, errDraining), errors.Is(err, core.ErrClosed):
		code, e.Reason = codes.Unavailable, "UNAVAILABLE"
	case errors.Is(err, ErrUnknownGroup):
		code, e.Reason = codes.InvalidArgument, "UNKNOWN_GROUP"
	case errors.Is(err, ErrUnknownTransaction):
		code, e.Reason = codes.NotFound, "UNKNOWN_TRANSACTION"
	case errors.Is(err, errTooManyTx):
		code, e.Reason = codes.ResourceExhausted, "RESOURCE_EXHAUSTED"
	case errors.Is(err, core.ErrInvalidMessage):
		code, e.Reason = codes.InvalidArgument, "INVALID_MESSAGE"
	// Route problems first: each keeps its cause (a NameServer's TOPIC_NOT_EXIST, a
	// connect error), and only an unknown topic is permanent.
	case errors.Is(err, core.ErrTopicNotExist):
		code, e.Reason, e.Code = codes.NotFound, "TOPIC_NOT_EXIST", int32(remoting.TopicNotExist)
	case errors.Is(err, core.ErrNameServerUnreachable):
		code, e.Reason = codes.Unavailable, "NAMESERVER_UNREACHABLE"
	case errors.Is(err, core.ErrNoWritableQueue):
		code, e.Reason = codes.Unavailable, "NO_WRITABLE_QUEUE"
	case errors.Is(err, core.ErrBadRoute):
		code, e.Reason = codes.Unavailable, "BAD_ROUTE"
	case errors.Is(err, core.ErrBadResponse), errors.Is(err, remoting.ErrBadFrame):
		code, e.Reason = codes.Unavailable, "BAD_RESPONSE"
	case errors.As(err, &re):
		e.Code, e.Reason = int32(re.Code), re.Code.String()
		switch re.Code {
		case remoting.TopicNotExist:
			code = codes.NotFound
		case remoting.NoPermission:
			code = codes.PermissionDenied
		case remoting.MessageIllegal, remoting.InvalidParameter:
			code = codes.InvalidArgument
		default:
			code = codes.Unavailable
		}
	case errors.Is(err, core.ErrNoRoute):
		code, e.Reason = codes.NotFound, "NO_ROUTE"
	case errors.Is(err, core.ErrOrderedQueueFailed):
		code, e.Reason = codes.Unavailable, "ORDERED_QUEUE_FAILED"
	case errors.Is(err, core.ErrTimeout), errors.Is(err, remoting.ErrTimeout), errors.Is(err, context.DeadlineExceeded):
		code, e.Reason = codes.DeadlineExceeded, "TIMEOUT"
	case errors.Is(err, remoting.ErrConnect):
		code, e.Reason = codes.Unavailable, "CONNECT_FAILED"
	case errors.Is(err, context.Canceled):
		code, e.Reason = codes.Canceled, "CANCELED"
	case errors.Is(err, core.ErrBrokerNotFound), errors.Is(err, remoting.ErrConnClosed), errors.Is(err, remoting.ErrSend):
		code, e.Reason = codes.Unavailable, "BROKER_ERROR"
	default:
		e.Reason = "INTERNAL"
	}
	e.GrpcCode = int32(code)
	return e
}

// grpcError turns a send error into a status carrying the Error as a detail.
func grpcError(err error) error {
	pe := errorToPB(err)
	st := status.New(codes.Code(pe.GrpcCode), pe.Message)
	if withDetails, derr := st.WithDetails(pe); derr == nil {
		st = withDetails
	}
	return st.Err()
}

// httpStatus maps a gRPC code to the HTTP status of the JSON API.
func httpStatus(c codes.Code) int {
	switch c {
	case codes.OK:
		return http.StatusOK
	case codes.InvalidArgument:
		return http.StatusBadRequest
	case codes.NotFound:
		return http.StatusNotFound
	case codes.PermissionDenied:
		return http.StatusForbidden
	case codes.Unauthenticated:
		return http.StatusUnauthorized
	case codes.ResourceExhausted:
		return http.StatusTooManyRequests
	case codes.Unavailable:
		return http.StatusServiceUnavailable
	case codes.DeadlineExceeded:
		return http.StatusGatewayTimeout
	case codes.Canceled:
		return 499
	case codes.FailedPrecondition:
		return http.StatusConflict
	}
	return http.StatusInternalServerError
}
