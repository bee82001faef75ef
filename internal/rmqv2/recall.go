package rmqv2

import (
	"context"
	"errors"

	pb "github.com/producerd/producerd/api/rmqv2"
	"github.com/producerd/producerd/core"
	"github.com/producerd/producerd/remoting"
)

// RecallMessage recalls a timer message before its delivery with the recall handle its
// send answered (SendResultEntry.recall_handle, set by 5.3.2+ brokers for messages with a
// delivery timestamp): RECALL_MESSAGE to the broker named in the handle, through the
// Sender's producer group. A malformed handle or one of another topic is BAD_REQUEST (the
// Proxy answers INTERNAL_SERVER_ERROR for a handle it cannot decode); a broker refusal
// keeps the broker's remark: NO_PERMISSION (a broker with recallMessageEnable=false, its
// default) is FORBIDDEN, REQUEST_CODE_NOT_SUPPORTED (before 5.3.2) NOT_IMPLEMENTED, others
// INTERNAL_SERVER_ERROR.
func (s *Service) RecallMessage(ctx context.Context, req *pb.RecallMessageRequest) (*pb.RecallMessageResponse, error) {
	answer := func(st *pb.Status, id string) (*pb.RecallMessageResponse, error) {
		return &pb.RecallMessageResponse{Status: st, MessageId: id}, nil
	}
	if st := s.checkCall(ctx, req.GetTopic()); st != nil {
		return answer(st, "")
	}
	topic := req.GetTopic().GetName()
	if st := checkTopic(topic); st != nil {
		return answer(st, "")
	}
	if req.GetRecallHandle() == "" {
		return answer(newStatus(pb.Code_BAD_REQUEST, "the recall handle is empty"), "")
	}
	r, ok := s.opts.Sender.(Recaller)
	if !ok {
		return answer(newStatus(pb.Code_NOT_IMPLEMENTED, "this producerd endpoint cannot recall messages"), "")
	}
	id, err := r.RecallMessage(ctx, topic, req.GetRecallHandle())
	if err != nil {
		var (
			ve *core.ValidationError
			re *remoting.Error
		)
		switch {
		case errors.As(err, &ve):
			return answer(newStatus(pb.Code_BAD_REQUEST, "%v", err), "")
		case errors.As(err, &re) && re.Code == remoting.SystemBusy:
			return answer(newStatus(pb.Code_INTERNAL_SERVER_ERROR, "%v", err), "") // not worth a retry after a backoff
		}
		return answer(statusOf(err), "")
	}
	return answer(okStatus(), id)
}
