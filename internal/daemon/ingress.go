package daemon

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"strings"
	"sync"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

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
	}
	d.met.requestLatency.WithLabelValues(api, outcome).Observe(time.Since(start).Seconds())
	if attempts > 1 {
		d.met.retries.WithLabelValues(g.name, topic).Add(float64(attempts - 1))
	}
}

// send sends one message for the unary gRPC and HTTP APIs.
func (d *Daemon) send(ctx context.Context, api string, m *producerdpb.Message) (*producerdpb.SendResult, error) {
	if m == nil {
		return nil, d.reject(api, fmt.Errorf("%w: no message", core.ErrInvalidMessage))
	}
	g, err := d.lookup(m.GetProducerGroup())
	if err != nil {
		return nil, d.reject(api, err)
	}
	size := int64(len(m.GetBody()))
	if err := d.limit.acquire(1, size); err != nil {
		return nil, d.reject(api, err)
	}
	defer d.limit.release(1, size)
	start := time.Now()
	cm := toCore(m)
	if m.GetMode() == producerdpb.SendMode_SEND_MODE_ONEWAY {
		err := g.prod.SendOneway(ctx, cm)
		d.finished(api, g, cm.Topic, start, 1, err)
		return nil, err
	}
	res, err := g.prod.Send(ctx, cm)
	attempts := 0
	if res != nil {
		attempts = res.Attempts
	}
	d.finished(api, g, cm.Topic, start, attempts, err)
	if err != nil {
		return nil, err
	}
	return resultToPB(res), nil
}

// sendBatch sends messages of one topic as one RocketMQ batch.
func (d *Daemon) sendBatch(ctx context.Context, api, groupName, topic string, msgs []*producerdpb.Message) ([]*producerdpb.SendResult, error) {
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
		cm := toCore(m)
		cm.Topic = topic
		cms[i] = cm
		size += int64(len(m.GetBody()))
	}
	g, err := d.lookup(groupName)
	if err != nil {
		return nil, d.reject(api, err)
	}
	if len(msgs) > math.MaxInt32 {
		return nil, d.reject(api, fmt.Errorf("%w: batch too large", core.ErrInvalidMessage))
	}
	if err := d.limit.acquire(len(msgs), size); err != nil {
		return nil, d.reject(api, err)
	}
	defer d.limit.release(len(msgs), size)
	start := time.Now()
	res, err := g.prod.SendBatch(ctx, cms)
	attempts := 0
	if res != nil {
		attempts = res.Attempts
	}
	d.finished(api, g, topic, start, attempts, err)
	if err != nil {
		return nil, err
	}
	return splitBatchResult(res, len(msgs)), nil
}

// splitBatchResult turns a batch's result (comma-separated ids, the first queue
// offset) into one result per message.
func splitBatchResult(r *core.SendResult, n int) []*producerdpb.SendResult {
	ids := strings.Split(r.MsgID, ",")
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
	res, err := s.d.send(ctx, apiGRPC, req.GetMessage())
	if err != nil {
		return nil, grpcError(err)
	}
	return &producerdpb.SendResponse{Result: res}, nil
}

func (s *ingress) SendBatch(ctx context.Context, req *producerdpb.SendBatchRequest) (*producerdpb.SendBatchResponse, error) {
	res, err := s.d.sendBatch(ctx, apiBatch, req.GetProducerGroup(), req.GetTopic(), req.GetMessages())
	if err != nil {
		return nil, grpcError(err)
	}
	return &producerdpb.SendBatchResponse{Results: res}, nil
}

// SendStream pipelines sends with core's async send: a reader goroutine accepts
// messages and starts them, callbacks queue acknowledgements, and this goroutine's
// writer sends them. The stream ends when the client closes its side and every message
// was answered, or when the daemon shuts down; a message still unanswered when the
// shutdown deadline passes is answered with UNAVAILABLE before the stream ends.
func (s *ingress) SendStream(stream producerdpb.Ingress_SendStreamServer) error {
	d := s.d
	ss := &streamSession{
		d: d, stream: stream, ctx: stream.Context(),
		wake: make(chan struct{}, 1), pend: make(map[uint64]string),
		idle: make(chan struct{}),
	}
	close(ss.idle)
	writerDone := make(chan error, 1)
	go func() { writerDone <- ss.writer() }()
	readerDone := make(chan error, 1)
	go func() { readerDone <- ss.reader() }()

	var rerr error
	stopping := false
	select {
	case rerr = <-readerDone:
	case <-d.stopping:
		stopping = true
	case err := <-writerDone:
		// The client stopped reading acknowledgements (or the stream broke).
		return err
	}
	// Wait for the callbacks of accepted messages.
	select {
	case <-ss.idleChan():
	case <-d.hardStop:
	case <-ss.ctx.Done():
	}
	ss.finish()
	if werr := <-writerDone; werr != nil && rerr == nil {
		rerr = werr
	}
	switch {
	case stopping:
		return status.Error(codes.Unavailable, "producerd is shutting down")
	case rerr == nil || errors.Is(rerr, io.EOF):
		return nil
	}
	return rerr
}

// streamSession is one SendStream call.
//
// Acknowledgements go through an unbounded queue: they are queued by send callbacks,
// which run on the broker connection's goroutine and must never block (a blocked
// reader would stall every request on that connection). The queue cannot grow past the
// daemon's in-flight bound, since each entry is a message that held a slot.
type streamSession struct {
	d      *Daemon
	stream producerdpb.Ingress_SendStreamServer
	ctx    context.Context

	mu     sync.Mutex
	closed bool                     // no more acks are queued
	queue  []*producerdpb.StreamAck // acks waiting for the writer
	wake   chan struct{}            // cap 1: the writer has work or must stop
	seq    uint64
	pend   map[uint64]string // seq -> client id, messages awaiting their callback
	idle   chan struct{}     // closed while pend is empty
}

func (ss *streamSession) idleChan() <-chan struct{} {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	return ss.idle
}

// push queues an ack; ss.mu is held.
func (ss *streamSession) push(ack *producerdpb.StreamAck) {
	if ss.closed {
		return
	}
	ss.queue = append(ss.queue, ack)
	select {
	case ss.wake <- struct{}{}:
	default:
	}
}

// enqueue queues an ack unless the session ended. It never blocks.
func (ss *streamSession) enqueue(ack *producerdpb.StreamAck) {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	ss.push(ack)
}

// begin records a message awaiting its callback.
func (ss *streamSession) begin(id string) uint64 {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	ss.seq++
	if len(ss.pend) == 0 {
		ss.idle = make(chan struct{})
	}
	ss.pend[ss.seq] = id
	return ss.seq
}

// done acks a message and forgets it; the ack is queued before the message counts as
// answered, so an idle session has queued every ack. It never blocks.
func (ss *streamSession) done(seq uint64, ack *producerdpb.StreamAck) {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	if _, ok := ss.pend[seq]; !ok {
		return // finish answered it already
	}
	ss.push(ack)
	delete(ss.pend, seq)
	if len(ss.pend) == 0 {
		close(ss.idle)
	}
}

// finish answers what is still pending with UNAVAILABLE and stops the queue; the
// writer sends what is queued and returns.
func (ss *streamSession) finish() {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	if len(ss.pend) > 0 {
		for seq, id := range ss.pend {
			ss.push(errorAck(id, fmt.Errorf("%w: the shutdown deadline passed before the broker answered; the message may or may not be stored", errDraining)))
			delete(ss.pend, seq)
		}
		close(ss.idle)
	}
	ss.closed = true
	select {
	case ss.wake <- struct{}{}:
	default:
	}
}

// writer sends queued acks until finish and an empty queue; after a send error it
// keeps taking acks off the queue without sending them.
func (ss *streamSession) writer() error {
	var err error
	for {
		ss.mu.Lock()
		batch, closed := ss.queue, ss.closed
		ss.queue = nil
		ss.mu.Unlock()
		for _, ack := range batch {
			if err == nil {
				err = ss.stream.Send(ack)
			}
		}
		if closed && len(batch) == 0 {
			return err
		}
		if len(batch) == 0 {
			select {
			case <-ss.wake:
			case <-ss.ctx.Done():
				// The stream is gone: keep draining until finish.
				<-ss.wake
			}
		}
	}
}

func errorAck(id string, err error) *producerdpb.StreamAck {
	return &producerdpb.StreamAck{Id: id, Outcome: &producerdpb.StreamAck_Error{Error: errorToPB(err)}}
}

func (ss *streamSession) reader() error {
	d := ss.d
	for {
		req, err := ss.stream.Recv()
		if err != nil {
			return err
		}
		ss.start(d, req)
	}
}

// start accepts one message and starts its send; every path answers it exactly once.
func (ss *streamSession) start(d *Daemon, req *producerdpb.StreamRequest) {
	id, m := req.GetId(), req.GetMessage()
	if m == nil {
		ss.enqueue(errorAck(id, d.reject(apiStream, fmt.Errorf("%w: no message", core.ErrInvalidMessage))))
		return
	}
	g, err := d.lookup(m.GetProducerGroup())
	if err != nil {
		ss.enqueue(errorAck(id, d.reject(apiStream, err)))
		return
	}
	size := int64(len(m.GetBody()))
	if err := d.limit.acquire(1, size); err != nil {
		ss.enqueue(errorAck(id, d.reject(apiStream, err)))
		return
	}
	start := time.Now()
	cm := toCore(m)
	seq := ss.begin(id)
	// The first attempt's queue decision runs in the caller of SendAsync (and
	// SendOneway) and may be a plugin round trip: start each send on its own goroutine
	// so that the stream pipelines (the limiter bounds how many there are).
	if m.GetMode() == producerdpb.SendMode_SEND_MODE_ONEWAY {
		go ss.oneway(d, g, cm, id, seq, size, start)
		return
	}
	go ss.launch(d, g, cm, id, seq, size, start)
}

func (ss *streamSession) oneway(d *Daemon, g *group, cm *core.Message, id string, seq uint64, size int64, start time.Time) {
	err := g.prod.SendOneway(ss.ctx, cm)
	d.finished(apiStream, g, cm.Topic, start, 1, err)
	if err != nil {
		ss.done(seq, errorAck(id, err))
	} else {
		ss.done(seq, &producerdpb.StreamAck{Id: id, Outcome: &producerdpb.StreamAck_Result{Result: &producerdpb.SendResult{Topic: cm.Topic}}})
	}
	d.limit.release(1, size)
}

func (ss *streamSession) launch(d *Daemon, g *group, cm *core.Message, id string, seq uint64, size int64, start time.Time) {
	err := g.prod.SendAsync(ss.ctx, cm, func(res *core.SendResult, err error) {
		attempts := 0
		if res != nil {
			attempts = res.Attempts
		}
		d.finished(apiStream, g, cm.Topic, start, attempts, err)
		var ack *producerdpb.StreamAck
		if err != nil {
			ack = errorAck(id, err)
		} else {
			ack = &producerdpb.StreamAck{Id: id, Outcome: &producerdpb.StreamAck_Result{Result: resultToPB(res)}}
		}
		ss.done(seq, ack)
		d.limit.release(1, size)
	})
	if err != nil {
		d.finished(apiStream, g, cm.Topic, start, 0, err)
		ss.done(seq, errorAck(id, err))
		d.limit.release(1, size)
	}
}
