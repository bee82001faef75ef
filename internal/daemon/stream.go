package daemon

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"time"

	"go.opentelemetry.io/otel/trace"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/producerd/producerd/api/producerdpb"
	"github.com/producerd/producerd/core"
)

// maxUnwrittenAcks bounds the acknowledgements of one stream that wait for the client
// to read them and hold no in-flight slot (refusals). Past it the stream stops reading
// until the client reads its acks, so a client that never reads cannot grow them.
const maxUnwrittenAcks = 1024

// SendStream pipelines sends with core's async send: a reader goroutine accepts
// messages and starts them, callbacks queue acknowledgements, and a writer goroutine
// sends them.
//
// Flow control: a message holds its in-flight slot (and bytes) until its ack is written
// to the stream or the stream is gone. When the daemon's bound is used up the reader
// waits for room instead of refusing (the client is held back by gRPC flow control);
// it also waits while maxUnwrittenAcks refusals wait for the client.
//
// Acks: every message the reader took off the stream gets exactly one ack before the
// stream ends, whatever ends it (the client closing its side, a frame that does not
// decode, drain, shutdown), unless the stream itself broke. A message that gets no ack
// was never handed to a broker. When the shutdown deadline passes before the broker
// answered, the ack is UNAVAILABLE ("may or may not be stored").
func (s *ingress) SendStream(stream producerdpb.Ingress_SendStreamServer) error {
	d := s.d
	ss := newStreamSession(d, stream)
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
	case <-ss.ctx.Done():
		rerr = ss.ctx.Err()
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
	if _, ok := status.FromError(rerr); !ok {
		rerr = status.Error(codes.Canceled, rerr.Error())
	}
	return rerr
}

// queuedAck is an ack waiting for the writer and the in-flight share its message holds
// until the ack is written (0 for refusals).
type queuedAck struct {
	ack  *producerdpb.StreamAck
	size int64
	slot bool
}

// pendingSend is a message handed to core and awaiting its callback.
type pendingSend struct {
	id       string
	size     int64
	answered bool // finish answered it; the callback only releases its slot
}

// streamSession is one SendStream call.
//
// Acknowledgements go through a queue: they are queued by send callbacks, which run on
// the broker connection's goroutine and must never block (a blocked reader would stall
// every request on that connection). The queue cannot grow without bound: acks of sent
// messages hold in-flight slots until written, and refusals are capped by
// maxUnwrittenAcks (the reader waits).
type streamSession struct {
	d      *Daemon
	stream producerdpb.Ingress_SendStreamServer
	ctx    context.Context

	mu        sync.Mutex
	closed    bool        // no more acks are queued, no more sends start
	queue     []queuedAck // acks waiting for the writer
	unwritten int         // refusals queued or being written
	held      int         // messages of this stream holding an in-flight slot
	maxHeld   int         // limits.max_stream_inflight
	wake      chan struct{}
	room      chan struct{} // cap 1: the writer wrote refusals or a slot was released
	seq       uint64
	pend      map[uint64]*pendingSend
	waiting   int           // pend entries not answered yet
	idle      chan struct{} // closed while waiting == 0
}

func newStreamSession(d *Daemon, stream producerdpb.Ingress_SendStreamServer) *streamSession {
	ss := &streamSession{
		d: d, stream: stream, ctx: stream.Context(),
		wake: make(chan struct{}, 1), room: make(chan struct{}, 1),
		pend: make(map[uint64]*pendingSend), idle: make(chan struct{}),
		maxHeld: d.streamInflight(),
	}
	close(ss.idle)
	return ss
}

func (ss *streamSession) idleChan() <-chan struct{} {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	return ss.idle
}

// push queues an ack; ss.mu is held. After finish an ack is dropped and its slot
// released.
func (ss *streamSession) push(qa queuedAck) {
	if ss.closed {
		if qa.slot {
			ss.releaseLocked(qa.size)
		}
		return
	}
	if !qa.slot {
		ss.unwritten++
	}
	ss.queue = append(ss.queue, qa)
	select {
	case ss.wake <- struct{}{}:
	default:
	}
}

// refuse queues the ack of a message that was not sent. It never blocks.
func (ss *streamSession) refuse(id string, err error) {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	ss.push(queuedAck{ack: errorAck(id, err)})
}

// begin records a message about to be handed to core; false when the session is over
// (the caller then must not send it).
func (ss *streamSession) begin(id string, size int64) (uint64, bool) {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	if ss.closed {
		return 0, false
	}
	ss.seq++
	ss.held++
	if ss.waiting == 0 {
		ss.idle = make(chan struct{})
	}
	ss.waiting++
	ss.pend[ss.seq] = &pendingSend{id: id, size: size}
	return ss.seq, true
}

// done queues a sent message's ack, which keeps the message's slot until written; if
// finish answered it already, the slot is released now. It never blocks.
func (ss *streamSession) done(seq uint64, ack *producerdpb.StreamAck) {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	p, ok := ss.pend[seq]
	if !ok {
		return
	}
	delete(ss.pend, seq)
	if p.answered {
		ss.releaseLocked(p.size)
		return
	}
	ss.push(queuedAck{ack: ack, size: p.size, slot: true})
	ss.waiting--
	if ss.waiting == 0 {
		close(ss.idle)
	}
}

// finish answers what is still pending with UNAVAILABLE and stops the queue; the
// writer sends what is queued and returns.
func (ss *streamSession) finish() {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	if ss.closed {
		return
	}
	if ss.waiting > 0 {
		for _, p := range ss.pend {
			if !p.answered {
				p.answered = true
				ss.push(queuedAck{ack: errorAck(p.id, fmt.Errorf("%w: the shutdown deadline passed before the broker answered; the message may or may not be stored", errDraining))})
			}
		}
		ss.waiting = 0
		close(ss.idle)
	}
	ss.closed = true
	select {
	case ss.wake <- struct{}{}:
	default:
	}
}

// writer sends queued acks until finish and an empty queue, releasing each message's
// slot once its ack is written; after a send error it keeps taking acks off the queue
// (releasing their slots) without sending them.
func (ss *streamSession) writer() error {
	var err error
	for {
		ss.mu.Lock()
		batch, closed := ss.queue, ss.closed
		ss.queue = nil
		ss.mu.Unlock()
		for _, qa := range batch {
			if err == nil {
				err = ss.stream.Send(qa.ack)
			}
			ss.mu.Lock()
			if qa.slot {
				ss.releaseLocked(qa.size)
			} else {
				ss.unwritten--
				ss.signalRoom()
			}
			ss.mu.Unlock()
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

// releaseLocked gives a message's slot back; ss.mu is held.
func (ss *streamSession) releaseLocked(size int64) {
	ss.d.limit.release(1, size)
	ss.held--
	ss.signalRoom()
}

// signalRoom wakes a waiting reader; ss.mu is held.
func (ss *streamSession) signalRoom() {
	select {
	case ss.room <- struct{}{}:
	default:
	}
}

// waitRoom blocks while too many refusals wait for the client, or the stream holds
// its share of the in-flight bound (limits.max_stream_inflight).
func (ss *streamSession) waitRoom() error {
	for {
		ss.mu.Lock()
		full := (ss.unwritten >= maxUnwrittenAcks || ss.held >= ss.maxHeld) && !ss.closed
		ss.mu.Unlock()
		if !full {
			return nil
		}
		select {
		case <-ss.room:
		case <-ss.ctx.Done():
			return ss.ctx.Err()
		}
	}
}

func (ss *streamSession) reader() error {
	for {
		if err := ss.waitRoom(); err != nil {
			return err
		}
		var f streamFrame
		if err := ss.stream.RecvMsg(&f); err != nil {
			return err
		}
		req := &producerdpb.StreamRequest{}
		if err := proto.Unmarshal(f.b, req); err != nil {
			return status.Errorf(codes.InvalidArgument, "daemon: a SendStream frame does not decode: %v", err)
		}
		if err := ss.start(req); err != nil {
			return err
		}
	}
}

// start accepts one message and starts its send; every path answers it exactly once,
// unless the session is over (the message is then not sent). It waits for room in the
// in-flight bound; an error ends the reader (the stream's context ended).
func (ss *streamSession) start(req *producerdpb.StreamRequest) error {
	d := ss.d
	id, m := req.GetId(), req.GetMessage()
	if m == nil {
		ss.refuse(id, d.reject(apiStream, fmt.Errorf("%w: no message", core.ErrInvalidMessage)))
		return nil
	}
	g, err := d.lookup(m.GetProducerGroup())
	if err != nil {
		ss.refuse(id, d.reject(apiStream, err))
		return nil
	}
	if err := validatePB(m); err != nil {
		ss.refuse(id, d.reject(apiStream, err))
		return nil
	}
	if err := d.admitTopic(g, m.GetTopic()); err != nil {
		ss.refuse(id, d.reject(apiStream, err))
		return nil
	}
	size := int64(proto.Size(m))
	if err := d.limit.acquireWait(ss.ctx, 1, size); err != nil {
		if ss.ctx.Err() != nil {
			return err
		}
		ss.refuse(id, d.reject(apiStream, err))
		return nil
	}
	seq, ok := ss.begin(id, size)
	if !ok {
		d.limit.release(1, size) // never counted in held
		return nil
	}
	start := time.Now()
	cm := toCore(m)
	_, span, props := d.trace.startSend(ss.ctx, apiStream, g.name, cm.Topic, 0)
	if props != nil {
		cm.Properties = withTraceProperties(m, props)
	}
	// The first attempt's queue decision runs in the caller of SendAsync (and
	// SendOneway) and may be a plugin round trip: start each send on its own goroutine
	// so that the stream pipelines (the limiter bounds how many there are).
	if m.GetMode() == producerdpb.SendMode_SEND_MODE_ONEWAY {
		go ss.oneway(g, cm, id, seq, start, span)
	} else {
		go ss.launch(g, cm, id, seq, start, span)
	}
	return nil
}

func (ss *streamSession) oneway(g *group, cm *core.Message, id string, seq uint64, start time.Time, span trace.Span) {
	err := g.prod.SendOneway(ss.ctx, cm)
	ss.d.finished(apiStream, g, cm.Topic, start, 1, err)
	endSend(span, "", err)
	if err != nil {
		ss.done(seq, errorAck(id, err))
		return
	}
	ss.done(seq, &producerdpb.StreamAck{Id: id, Outcome: &producerdpb.StreamAck_Result{Result: &producerdpb.SendResult{Topic: cm.Topic}}})
}

func (ss *streamSession) launch(g *group, cm *core.Message, id string, seq uint64, start time.Time, span trace.Span) {
	d := ss.d
	// The span rides in the context so that core's attempt hook parents on it.
	err := g.prod.SendAsync(trace.ContextWithSpan(ss.ctx, span), cm, func(res *core.SendResult, err error) {
		attempts, msgID := 0, ""
		if res != nil {
			attempts, msgID = res.Attempts, res.MsgID
		}
		d.finished(apiStream, g, cm.Topic, start, attempts, err)
		endSend(span, msgID, err)
		if err != nil {
			ss.done(seq, errorAck(id, err))
			return
		}
		ss.done(seq, &producerdpb.StreamAck{Id: id, Outcome: &producerdpb.StreamAck_Result{Result: resultToPB(res)}})
	})
	if err != nil {
		d.finished(apiStream, g, cm.Topic, start, 0, err)
		endSend(span, "", err)
		ss.done(seq, errorAck(id, err))
	}
}

// streamFrame is a SendStream request as received: the stream reader decodes it itself,
// so that a frame that does not decode ends the stream only after the acks of the
// messages before it (gRPC would end the stream at once).
type streamFrame struct{ b []byte }

// ingressCodec is the ingress server's codec: protobuf, except that a *streamFrame
// receives the frame's bytes undecoded.
type ingressCodec struct{}

func (ingressCodec) Marshal(v any) ([]byte, error) {
	m, ok := v.(proto.Message)
	if !ok {
		return nil, fmt.Errorf("daemon: cannot marshal %T", v)
	}
	return proto.Marshal(m)
}

func (ingressCodec) Unmarshal(data []byte, v any) error {
	switch m := v.(type) {
	case *streamFrame:
		m.b = append(m.b[:0], data...)
		return nil
	case proto.Message:
		return proto.Unmarshal(data, m)
	}
	return fmt.Errorf("daemon: cannot unmarshal into %T", v)
}

func (ingressCodec) Name() string { return "proto" }

// streamInflight is how many messages one stream may hold in flight
// (limits.max_stream_inflight; default a quarter of max_inflight_messages), so that a
// client that never reads its acks cannot take the whole bound from the others.
func (d *Daemon) streamInflight() int {
	cfg := d.Config()
	if n := cfg.Limits.MaxStreamInflight; n > 0 {
		return n
	}
	return max(1, cfg.Daemon.MaxInflightMessages/4)
}
