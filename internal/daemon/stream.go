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
	"github.com/producerd/producerd/internal/config"
)

// maxUnwrittenAcks and maxUnwrittenAckBytes bound the acknowledgements of one stream
// that wait for the client to read them. Past either the stream stops reading until
// the client reads its acks, so a client that never reads cannot grow them.
const (
	maxUnwrittenAcks     = 1024
	maxUnwrittenAckBytes = 1 << 20
)

// SendStream pipelines sends with core's async send: a reader goroutine accepts
// messages and starts them, callbacks queue acknowledgements, and a writer goroutine
// sends them.
//
// Flow control: a frame is charged to the in-flight bound (one message, its bytes)
// before it is decoded, and the message holds that slot until the broker answered;
// its ack then holds its own bytes until written. When the daemon's bound is used up
// the reader waits for room instead of refusing (the client is held back by gRPC flow
// control); it also waits while the stream holds limits.max_stream_inflight messages,
// or maxUnwrittenAcks (maxUnwrittenAckBytes) acks wait for the client. A client that
// never reads its acks therefore stalls itself: its messages leave the in-flight bound
// as the brokers answer, and only its few unwritten acks stay charged.
//
// Acks: every message the reader took off the stream gets exactly one ack before the
// stream ends, whatever ends it (the client closing its side, a frame that does not
// decode, drain, shutdown), unless the stream itself broke: the client cancelled, the
// connection failed, or the client read no ack for limits.stream_ack_timeout (the
// daemon then ends the stream with DEADLINE_EXCEEDED without waiting for the writer).
// A message that gets no ack in those cases may or may not be stored; otherwise a
// message that gets no ack was never handed to a broker. When the shutdown deadline
// passes before the broker answered, the ack is UNAVAILABLE ("may or may not be
// stored").
func (s *ingress) SendStream(stream producerdpb.Ingress_SendStreamServer) error {
	d := s.d
	ss := newStreamSession(d, stream)
	writerDone := make(chan error, 1)
	go func() { writerDone <- ss.writer() }()
	readerDone := make(chan error, 1)
	go func() { readerDone <- ss.reader() }()

	var rerr error
	stopping, stalled := false, false
	select {
	case rerr = <-readerDone:
	case <-d.stopping:
		stopping = true
	case <-ss.ctx.Done():
		rerr = ss.ctx.Err()
	case <-ss.stalled:
		stalled = true
	}
	if !stalled {
		// Wait for the callbacks of accepted messages.
		select {
		case <-ss.idleChan():
		case <-d.hardStop:
		case <-ss.ctx.Done():
		case <-ss.stalled:
			stalled = true
		}
	}
	ss.finish()
	if !stalled {
		// The writer sends what is queued; a client that does not read it is cut off
		// after stream_ack_timeout (also during shutdown, which stops the server at
		// its deadline anyway).
		select {
		case werr := <-writerDone:
			if werr != nil && rerr == nil {
				rerr = werr
			}
		case <-ss.stalled:
			stalled = true
		}
	}
	switch {
	case stalled:
		// Returning ends the stream; the writer's blocked Send then fails and it
		// releases what is still queued.
		d.log.Warn("SendStream ended: the client read no ack for limits.stream_ack_timeout", "timeout", ss.ackTimeout)
		return status.Errorf(codes.DeadlineExceeded, "producerd: the client read no ack for %s (limits.stream_ack_timeout): stream ended; messages without an ack may or may not be stored", ss.ackTimeout)
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

// queuedAck is an ack waiting for the writer and the in-flight bytes charged for it.
type queuedAck struct {
	ack  *producerdpb.StreamAck
	size int64
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
// every request on that connection). The queue cannot grow without bound: the reader
// waits while maxUnwrittenAcks or maxUnwrittenAckBytes acks are queued, and every
// queued ack is one of at most max_stream_inflight messages answered since.
type streamSession struct {
	d          *Daemon
	stream     producerdpb.Ingress_SendStreamServer
	ctx        context.Context
	ackTimeout time.Duration // limits.stream_ack_timeout
	stalled    chan struct{} // closed when one ack's Send took longer than ackTimeout
	stallOnce  sync.Once

	mu             sync.Mutex
	closed         bool        // no more acks are queued, no more sends start
	queue          []queuedAck // acks waiting for the writer
	unwritten      int         // acks queued or being written
	unwrittenBytes int64       // their charged bytes
	held           int         // messages of this stream holding an in-flight slot
	maxHeld        int         // limits.max_stream_inflight
	wake           chan struct{}
	room           chan struct{} // cap 1: the writer wrote acks or a slot was released
	seq            uint64
	pend           map[uint64]*pendingSend
	waiting        int           // pend entries not answered yet
	idle           chan struct{} // closed while waiting == 0
}

func newStreamSession(d *Daemon, stream producerdpb.Ingress_SendStreamServer) *streamSession {
	ss := &streamSession{
		d: d, stream: stream, ctx: stream.Context(),
		ackTimeout: d.Config().Limits.StreamAckTimeout, stalled: make(chan struct{}),
		wake: make(chan struct{}, 1), room: make(chan struct{}, 1),
		pend: make(map[uint64]*pendingSend), idle: make(chan struct{}),
		maxHeld: d.streamInflight(),
	}
	if ss.ackTimeout <= 0 {
		ss.ackTimeout = config.DefaultStreamAckTimeout
	}
	close(ss.idle)
	return ss
}

func (ss *streamSession) idleChan() <-chan struct{} {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	return ss.idle
}

// push queues an ack, charging its bytes to the in-flight bound until it is written;
// ss.mu is held. After finish an ack is dropped.
func (ss *streamSession) push(ack *producerdpb.StreamAck) {
	if ss.closed {
		return
	}
	size := int64(proto.Size(ack))
	ss.d.limit.charge(size)
	ss.unwritten++
	ss.unwrittenBytes += size
	ss.queue = append(ss.queue, queuedAck{ack: ack, size: size})
	select {
	case ss.wake <- struct{}{}:
	default:
	}
}

// refuse queues the ack of a message that was not sent. It never blocks.
func (ss *streamSession) refuse(id string, err error) {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	ss.push(errorAck(id, err))
}

// begin records a message about to be handed to core, which holds an in-flight slot
// of size bytes; false when the session is over (the caller then must not send it and
// releases the slot).
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

// done releases a sent message's slot and queues its ack (unless finish answered it
// already). It never blocks.
func (ss *streamSession) done(seq uint64, ack *producerdpb.StreamAck) {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	p, ok := ss.pend[seq]
	if !ok {
		return
	}
	delete(ss.pend, seq)
	ss.d.limit.release(1, p.size)
	ss.held--
	ss.signalRoom()
	if p.answered {
		return
	}
	ss.push(ack)
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
				ss.push(errorAck(p.id, fmt.Errorf("%w: the shutdown deadline passed before the broker answered; the message may or may not be stored", errDraining)))
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

// stall ends the session: an ack's Send took longer than ackTimeout.
func (ss *streamSession) stall() { ss.stallOnce.Do(func() { close(ss.stalled) }) }

// writer sends queued acks until finish and an empty queue, releasing each ack's bytes
// once it is written; after a send error it keeps taking acks off the queue (releasing
// them) without sending them. A Send blocked longer than ackTimeout (the client reads
// nothing) stalls the session.
func (ss *streamSession) writer() error {
	var err error
	timer := time.AfterFunc(time.Hour, ss.stall)
	timer.Stop()
	defer timer.Stop()
	for {
		ss.mu.Lock()
		batch, closed := ss.queue, ss.closed
		ss.queue = nil
		ss.mu.Unlock()
		for _, qa := range batch {
			if err == nil {
				timer.Reset(ss.ackTimeout)
				err = ss.stream.Send(qa.ack)
				timer.Stop()
			}
			ss.mu.Lock()
			ss.d.limit.release(0, qa.size)
			ss.unwritten--
			ss.unwrittenBytes -= qa.size
			ss.signalRoom()
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

// signalRoom wakes a waiting reader; ss.mu is held.
func (ss *streamSession) signalRoom() {
	select {
	case ss.room <- struct{}{}:
	default:
	}
}

// waitRoom blocks while too many acks wait for the client, or the stream holds its
// share of the in-flight bound (limits.max_stream_inflight).
func (ss *streamSession) waitRoom() error {
	for {
		ss.mu.Lock()
		full := (ss.unwritten >= maxUnwrittenAcks || ss.unwrittenBytes >= maxUnwrittenAckBytes || ss.held >= ss.maxHeld) && !ss.closed
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
	d := ss.d
	for {
		if err := ss.waitRoom(); err != nil {
			return err
		}
		var f streamFrame
		if err := ss.stream.RecvMsg(&f); err != nil {
			return err
		}
		// The frame takes its in-flight slot and bytes before it is decoded: while the
		// bound is used up the stream waits here holding one received frame.
		size := int64(len(f.b))
		aerr := d.limit.acquireWait(ss.ctx, 1, size)
		if aerr != nil && ss.ctx.Err() != nil {
			return aerr
		}
		req := &producerdpb.StreamRequest{}
		err := proto.Unmarshal(f.b, req)
		f.b = nil
		if err != nil {
			if aerr == nil {
				d.limit.release(1, size)
			}
			return status.Errorf(codes.InvalidArgument, "daemon: a SendStream frame does not decode: %v", err)
		}
		if aerr != nil {
			ss.refuse(req.GetId(), d.reject(apiStream, aerr))
			continue
		}
		ss.start(req, size)
	}
}

// start starts the send of one message holding an in-flight slot of size bytes; every
// path answers it exactly once and releases the slot, unless the session is over (the
// message is then not sent).
func (ss *streamSession) start(req *producerdpb.StreamRequest, size int64) {
	d := ss.d
	id, m := req.GetId(), req.GetMessage()
	g, err := d.admitMessage(apiStream, m) // a refusal is counted there
	if err != nil {
		d.limit.release(1, size)
		ss.refuse(id, err)
		return
	}
	seq, ok := ss.begin(id, size)
	if !ok {
		d.limit.release(1, size)
		return
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

// streamInflight is how many messages one stream may have at the brokers
// (limits.max_stream_inflight; default a quarter of max_inflight_messages), so that one
// stream cannot take the whole bound from the others.
func (d *Daemon) streamInflight() int {
	cfg := d.Config()
	if n := cfg.Limits.MaxStreamInflight; n > 0 {
		return n
	}
	return max(1, cfg.Daemon.MaxInflightMessages/4)
}
