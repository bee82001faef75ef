package daemon

import (
	"strings"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/producerd/producerd/api/producerdpb"
)

// TestGRPCTimerFieldsChecked: review finding 15. Timestamps and durations protobuf
// calls invalid are refused on Send, SendBatch, SendStream and BeginTransaction instead
// of being turned into some other time; nothing is stored.
func TestGRPCTimerFieldsChecked(t *testing.T) {
	c := startCluster(t)
	h := start(t, c, "rr", 1000)
	ctx := callCtx(t)
	const topic = "TimerCheckTopic"
	for _, tc := range []struct {
		name string
		m    *producerdpb.Message
		want string
	}{
		{"deliver_at seconds 1e15", &producerdpb.Message{DeliverAt: &timestamppb.Timestamp{Seconds: 1e15}}, "deliver_at"},
		{"deliver_at nanos -5", &producerdpb.Message{DeliverAt: &timestamppb.Timestamp{Seconds: 1, Nanos: -5}}, "deliver_at"},
		{"deliver_at nanos 1e9", &producerdpb.Message{DeliverAt: &timestamppb.Timestamp{Seconds: 1, Nanos: 1e9}}, "deliver_at"},
		{"delay {1,-1}", &producerdpb.Message{Delay: &durationpb.Duration{Seconds: 1, Nanos: -1}}, "delay"},
		{"delay 1e12 s", &producerdpb.Message{Delay: &durationpb.Duration{Seconds: 1e12}}, "delay"},
	} {
		tc.m.Topic, tc.m.Body = topic, []byte("x")
		_, err := h.ingress.Send(ctx, &producerdpb.SendRequest{Message: tc.m})
		if status.Code(err) != codes.InvalidArgument || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Send %s: %v, want INVALID_ARGUMENT naming %s", tc.name, err, tc.want)
		}
		_, err = h.ingress.SendBatch(ctx, &producerdpb.SendBatchRequest{Topic: topic, Messages: []*producerdpb.Message{{Body: []byte("a")}, tc.m}})
		if status.Code(err) != codes.InvalidArgument {
			t.Errorf("SendBatch %s: %v, want INVALID_ARGUMENT", tc.name, err)
		}
		_, err = h.ingress.BeginTransaction(ctx, &producerdpb.BeginTransactionRequest{Message: tc.m})
		if status.Code(err) != codes.InvalidArgument {
			t.Errorf("BeginTransaction %s: %v, want INVALID_ARGUMENT", tc.name, err)
		}
		st, err := h.ingress.SendStream(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if err := st.Send(&producerdpb.StreamRequest{Id: "t", Message: tc.m}); err != nil {
			t.Fatal(err)
		}
		ack, err := st.Recv()
		if err != nil || ack.GetError().GetGrpcCode() != int32(codes.InvalidArgument) {
			t.Errorf("SendStream %s: %v %v, want an INVALID_ARGUMENT ack", tc.name, ack, err)
		}
		_ = st.CloseSend()
	}
	if n := len(stored(c, topic)); n != 0 {
		t.Fatalf("%d messages stored", n)
	}
}
