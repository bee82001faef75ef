package daemon

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/producerd/producerd/api/producerdpb"
	"github.com/producerd/producerd/core"
)

// API names used in metrics.
const (
	apiGRPC   = "grpc"
	apiStream = "stream"
	apiBatch  = "batch"
	apiHTTP   = "http"
)

// reject counts a refused message and returns err.
func (d *Daemon) reject(api string, err error) error {
	reason := "invalid"
	switch {
	case errors.Is(err, errBusy):
		reason = "resource_exhausted"
	case errors.Is(err, errDraining):
		reason = "unavailable"
	case errors.Is(err, ErrUnknownGroup):
		reason = "unknown_group"
	}
	d.met.rejected.WithLabelValues(api, reason).Inc()
	return err
}

// finished records the outcome of an accepted send.
func (d *Daemon) finished(api string, g *group, topic string, start time.Time, attempts int, err error) {
	outcome := "ok"
	if err != nil {
		outcome = "error"
		var se *core.SendError
		if errors.As(err, &se) {
			attempts = se.Attempts
		}
		if !errors.Is(err, context.Canceled) {
			d.logFailedSend(d.log, api, g.name, topic, err)
		}
	}
	d.met.requestLatency.WithLabelValues(api, outcome).Observe(time.Since(start).Seconds())
	if attempts > 1 {
		d.met.retries.WithLabelValues(g.name, d.met.topic(topic)).Add(float64(attempts - 1))
	}
}

// admitMessage checks one message (present, its group known, valid, its topic within
// limits.max_topics) and returns its group; a refusal is counted under api.
func (d *Daemon) admitMessage(api string, m *producerdpb.Message) (*group, error) {
	if m == nil {
		return nil, d.reject(api, fmt.Errorf("%w: no message", core.ErrInvalidMessage))
	}
	g, err := d.lookup(m.GetProducerGroup())
	if err != nil {
		return nil, d.reject(api, err)
	}
	if err := validatePB(m); err != nil {
		return nil, d.reject(api, err)
	}
	if err := d.admitTopic(g, m.GetTopic()); err != nil {
		return nil, d.reject(api, err)
	}
	return g, nil
}

// send sends one message for the unary gRPC and HTTP APIs. prepaid is what the caller
// already charged to the in-flight bytes for it (the HTTP body it came in).
func (d *Daemon) send(ctx context.Context, api string, m *producerdpb.Message, prepaid int64) (*producerdpb.SendResult, error) {
	g, err := d.admitMessage(api, m)
	if err != nil {
		return nil, err
	}
	size := max(0, int64(proto.Size(m))-prepaid)
	if err := d.limit.acquire(1, size); err != nil {
		return nil, d.reject(api, err)
	}
	defer d.limit.release(1, size)
	start := time.Now()
	cm := toCore(m)
	ctx, span, props := d.trace.startSend(ctx, api, g.name, cm.Topic, 0)
	if props != nil {
		cm.Properties = withTraceProperties(m, props)
	}
	if m.GetMode() == producerdpb.SendMode_SEND_MODE_ONEWAY {
		err := g.prod.SendOneway(ctx, cm)
		d.finished(api, g, cm.Topic, start, 1, err)
		endSend(span, "", err)
		return nil, err
	}
	res, err := g.prod.Send(ctx, cm)
	attempts, msgID := 0, ""
	if res != nil {
		attempts, msgID = res.Attempts, res.MsgID
	}
	d.finished(api, g, cm.Topic, start, attempts, err)
	endSend(span, msgID, err)
	if err != nil {
		return nil, err
	}
	return resultToPB(res), nil
}

// sendBatch sends messages of one topic as one RocketMQ batch; prepaid as for send.
func (d *Daemon) sendBatch(ctx context.Context, api, groupName, topic string, msgs []*producerdpb.Message, prepaid int64) ([]*producerdpb.SendResult, error) {
	if len(msgs) == 0 {
		return nil, d.reject(api, fmt.Errorf("%w: a batch needs at least one message", core.ErrInvalidMessage))
	}
	var size int64
	cms := make([]*core.Message, len(msgs))
	for i, m := range msgs {
		if m == nil {
			return nil, d.reject(api, fmt.Errorf("%w: batch message %d is empty", core.ErrInvalidMessage, i))
		}
		if groupName == "" {
			groupName = m.GetProducerGroup()
		}
		if topic == "" {
			topic = m.GetTopic()
		}
		switch {
		case m.GetProducerGroup() != "" && m.GetProducerGroup() != groupName:
			return nil, d.reject(api, fmt.Errorf("%w: batch message %d names group %q, the batch %q", core.ErrInvalidMessage, i, m.GetProducerGroup(), groupName))
		case m.GetTopic() != "" && m.GetTopic() != topic:
			return nil, d.reject(api, fmt.Errorf("%w: batch message %d names topic %q, the batch %q", core.ErrInvalidMessage, i, m.GetTopic(), topic))
		case m.GetMode() != producerdpb.SendMode_SEND_MODE_SYNC:
			return nil, d.reject(api, fmt.Errorf("%w: batch message %d: a batch is always sent in sync mode", core.ErrInvalidMessage, i))
		}
		if err := validatePB(m); err != nil {
			return nil, d.reject(api, fmt.Errorf("batch message %d: %w", i, err))
		}
		cm := toCore(m)
		cm.Topic = topic
		cms[i] = cm
		size += int64(proto.Size(m))
	}
	g, err := d.lookup(groupName)
	if err != nil {
		return nil, d.reject(api, err)
	}
	if err := d.admitTopic(g, topic); err != nil {
		return nil, d.reject(api, err)
	}
	if maxMsgs, _ := d.limit.bounds(); int64(len(msgs)) > maxMsgs {
		// Retrying could never succeed: a permanent error, not RESOURCE_EXHAUSTED.
		return nil, d.reject(api, fmt.Errorf("%w: a batch of %d messages is larger than max_inflight_messages (%d)", core.ErrInvalidMessage, len(msgs), maxMsgs))
	}
	size = max(0, size-prepaid)
	if err := d.limit.acquire(len(msgs), size); err != nil {
		return nil, d.reject(api, err)
	}
	defer d.limit.release(len(msgs), size)
	start := time.Now()
	ctx, span, props := d.trace.startSend(ctx, api, g.name, topic, len(msgs))
	if props != nil {
		for i, cm := range cms {
			cm.Properties = withTraceProperties(msgs[i], props)
		}
	}
	res, err := g.prod.SendBatch(ctx, cms)
	attempts, msgID := 0, ""
	if res != nil {
		attempts, msgID = res.Attempts, res.MsgID
	}
	d.finished(api, g, topic, start, attempts, err)
	endSend(span, msgID, err)
	if err != nil {
		return nil, err
	}
	return splitBatchResult(res, len(msgs)), nil
}

// splitBatchResult turns a batch's result (comma-separated ids, the first queue
// offset) into one result per message.
func splitBatchResult(r *core.SendResult, n int) []*producerdpb.SendResult {
	ids := r.MsgIDs
	if ids == nil {
		ids = strings.Split(r.MsgID, ",")
	}
	offIDs := strings.Split(r.OffsetMsgID, ",")
	out := make([]*producerdpb.SendResult, n)
	for i := range n {
		pr := resultToPB(r)
		if i < len(ids) {
			pr.MsgId = ids[i]
		}
		if i < len(offIDs) {
			pr.OffsetMsgId = offIDs[i]
		}
		pr.QueueOffset = r.QueueOffset + int64(i)
		out[i] = pr
	}
	return out
}

// ingress implements producerdpb.IngressServer.
type ingress struct {
	producerdpb.UnimplementedIngressServer
	d *Daemon
}

func (s *ingress) Send(ctx context.Context, req *producerdpb.SendRequest) (*producerdpb.SendResponse, error) {
	res, err := s.d.send(ctx, apiGRPC, req.GetMessage(), 0)
	if err != nil {
		return nil, grpcError(err)
	}
	return &producerdpb.SendResponse{Result: res}, nil
}

func (s *ingress) SendBatch(ctx context.Context, req *producerdpb.SendBatchRequest) (*producerdpb.SendBatchResponse, error) {
	res, err := s.d.sendBatch(ctx, apiBatch, req.GetProducerGroup(), req.GetTopic(), req.GetMessages(), 0)
	if err != nil {
		return nil, grpcError(err)
	}
	return &producerdpb.SendBatchResponse{Results: res}, nil
}
