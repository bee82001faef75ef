package daemon

import (
	"errors"
	"fmt"
	"io"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/producerd/producerd/api/producerdpb"
)

// TestStreamFlowControl: a stream client that keeps more messages in flight than the
// daemon's bound gets every message stored and acknowledged, none refused: the stream
// waits for room instead of answering RESOURCE_EXHAUSTED (finding 1).
func TestStreamFlowControl(t *testing.T) {
	c := startCluster(t)
	h := start(t, c, "rr", 4)
	ctx := callCtx(t)
	st, err := h.ingress.SendStream(ctx)
	if err != nil {
		t.Fatal(err)
	}
	const n = 300
	sendErr := make(chan error, 1)
	go func() {
		for i := range n {
			if err := st.Send(&producerdpb.StreamRequest{Id: fmt.Sprint(i), Message: &producerdpb.Message{Topic: testTopic, Body: []byte(fmt.Sprint("m", i))}}); err != nil {
				sendErr <- err
				return
			}
			if m, _ := h.d.limit.load(); m > 4 {
				sendErr <- fmt.Errorf("%d messages in flight, bound 4", m)
				return
			}
		}
		sendErr <- st.CloseSend()
	}()
	acks := map[string]int{}
	for {
		ack, err := st.Recv()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatalf("stream: %v", err)
		}
		acks[ack.GetId()]++
		if ack.GetResult() == nil {
			t.Fatalf("ack %s: %v, want a result", ack.GetId(), ack.GetError())
		}
	}
	if err := <-sendErr; err != nil {
		t.Fatal(err)
	}
	for i := range n {
		if acks[fmt.Sprint(i)] != 1 {
			t.Fatalf("message %d got %d acks", i, acks[fmt.Sprint(i)])
		}
	}
	waitFor(t, "the slots released", func() bool { m, b := h.d.limit.load(); return m == 0 && b == 0 })
}

// rawCodec sends []byte frames as they are (to send garbage) and proto messages as
// protobuf.
type rawCodec struct{}

func (rawCodec) Marshal(v any) ([]byte, error) {
	if b, ok := v.([]byte); ok {
		return b, nil
	}
	return proto.Marshal(v.(proto.Message))
}

func (rawCodec) Unmarshal(data []byte, v any) error { return proto.Unmarshal(data, v.(proto.Message)) }

func (rawCodec) Name() string { return "proto" }

// TestStreamMalformedFrame: five good messages then a frame that does not decode: the
// five are acknowledged before the stream ends with an error, and every acknowledged
// result is stored (finding 3).
func TestStreamMalformedFrame(t *testing.T) {
	c := startCluster(t)
	h := start(t, c, "rr", 1000)
	ctx := callCtx(t)
	cc := h.dial(h.grpcAddr)
	cs, err := cc.NewStream(ctx, &grpc.StreamDesc{ServerStreams: true, ClientStreams: true},
		"/producerd.v1.Ingress/SendStream", grpc.ForceCodec(rawCodec{}))
	if err != nil {
		t.Fatal(err)
	}
	for i := range 5 {
		if err := cs.SendMsg(&producerdpb.StreamRequest{Id: fmt.Sprint(i), Message: &producerdpb.Message{Topic: testTopic, Body: []byte(fmt.Sprint("good", i))}}); err != nil {
			t.Fatal(err)
		}
	}
	// Field 2 (message), length-delimited, claiming 100 bytes that are not there.
	if err := cs.SendMsg([]byte{0x12, 100, 1, 2, 3}); err != nil {
		t.Fatal(err)
	}
	var results []*producerdpb.SendResult
	var end error
	for {
		ack := &producerdpb.StreamAck{}
		if err := cs.RecvMsg(ack); err != nil {
			end = err
			break
		}
		if ack.GetResult() == nil {
			t.Fatalf("ack %s: %v", ack.GetId(), ack.GetError())
		}
		results = append(results, ack.GetResult())
	}
	if len(results) != 5 {
		t.Fatalf("%d acks before the stream ended (%v), want 5", len(results), end)
	}
	if errors.Is(end, io.EOF) || status.Code(end) == codes.OK {
		t.Fatalf("the stream ended without an error: %v", end)
	}
	store := stored(c, testTopic)
	for _, r := range results {
		if _, ok := store[r.GetMsgId()]; !ok {
			t.Fatalf("acknowledged %s not stored", r.GetMsgId())
		}
	}
}

// TestGRPCValidation: what the wire accepts but RocketMQ cannot honour is refused on
// every gRPC path: an unknown send mode, delay level 19, a batch larger than
// max_inflight_messages (a permanent error, not RESOURCE_EXHAUSTED) (finding 9).
func TestGRPCValidation(t *testing.T) {
	c := startCluster(t)
	h := start(t, c, "rr", 2)
	ctx := callCtx(t)
	for _, m := range []*producerdpb.Message{
		{Topic: testTopic, Body: []byte("x"), Mode: producerdpb.SendMode(7)},
		{Topic: testTopic, Body: []byte("x"), DelayLevel: 19},
		{Topic: testTopic, Body: []byte("x"), DelayLevel: 100},
	} {
		if _, err := h.ingress.Send(ctx, &producerdpb.SendRequest{Message: m}); status.Code(err) != codes.InvalidArgument {
			t.Errorf("Send(%v) = %v, want INVALID_ARGUMENT", m, err)
		}
	}
	msgs := []*producerdpb.Message{{Body: []byte("a")}, {Body: []byte("b")}, {Body: []byte("c")}}
	if _, err := h.ingress.SendBatch(ctx, &producerdpb.SendBatchRequest{Topic: testTopic, Messages: msgs}); status.Code(err) != codes.InvalidArgument {
		t.Errorf("a batch of 3 with max_inflight_messages 2: %v, want INVALID_ARGUMENT", err)
	}
	st, err := h.ingress.SendStream(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := st.Send(&producerdpb.StreamRequest{Id: "m7", Message: &producerdpb.Message{Topic: testTopic, Body: []byte("x"), Mode: 7}}); err != nil {
		t.Fatal(err)
	}
	ack, err := st.Recv()
	if err != nil || ack.GetError().GetGrpcCode() != int32(codes.InvalidArgument) {
		t.Fatalf("stream with mode 7: %v %v", ack, err)
	}
	if n := len(stored(c, testTopic)); n != 0 {
		t.Fatalf("%d refused messages stored", n)
	}
}

// TestStreamNeverReadingDoesNotStarve: a stream client that never reads its acks holds
// at most its share of the in-flight bound (a quarter by default), so other clients
// keep sending (finding 1).
func TestStreamNeverReadingDoesNotStarve(t *testing.T) {
	c := startCluster(t)
	h := start(t, c, "rr", 8)
	ctx := callCtx(t)
	st, err := h.ingress.SendStream(ctx)
	if err != nil {
		t.Fatal(err)
	}
	body := make([]byte, 4096)
	go func() {
		for i := 0; ; i++ {
			if st.Send(&producerdpb.StreamRequest{Id: fmt.Sprint(i), Message: &producerdpb.Message{Topic: testTopic, Body: body}}) != nil {
				return
			}
		}
	}()
	waitFor(t, "the stream to hold its share", func() bool { m, _ := h.d.limit.load(); return m >= 2 })
	for i := range 20 {
		if _, err := h.ingress.Send(ctx, &producerdpb.SendRequest{Message: &producerdpb.Message{Topic: testTopic, Body: []byte(fmt.Sprint("u", i))}}); err != nil {
			t.Fatalf("unary send %d next to a never-reading stream: %v", i, err)
		}
		if m, _ := h.d.limit.load(); m > 3 {
			t.Fatalf("%d messages in flight: the stream holds more than its share of 2", m)
		}
	}
}
