package rmqv2

import (
	"context"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	pb "github.com/producerd/producerd/api/rmqv2"
	"github.com/producerd/producerd/core"
)

// nopSender refuses every send; the fuzz target only converts.
type nopSender struct{}

func (nopSender) Send(context.Context, *core.Message) (*core.SendResult, error) {
	return nil, core.ErrClosed
}
func (nopSender) SendBatch(context.Context, []*core.Message) (*core.SendResult, error) {
	return nil, core.ErrClosed
}

// FuzzConvert feeds arbitrary SendMessageRequest bytes through the conversion: it never
// panics, and what it accepts core accepts too (no message that would fail core's
// validation with a generic error slips through as OK).
func FuzzConvert(f *testing.F) {
	tag, group := "t", "g"
	seed := &pb.SendMessageRequest{Messages: []*pb.Message{{
		Topic: &pb.Resource{Name: "T"}, Body: []byte("b"), UserProperties: map[string]string{"k": "v"},
		SystemProperties: &pb.SystemProperties{MessageId: "01AB", Tag: &tag, Keys: []string{"k"}, MessageGroup: &group,
			BornTimestamp: timestamppb.Now(), BodyEncoding: pb.Encoding_IDENTITY, MessageType: pb.MessageType_FIFO},
	}}}
	b, _ := proto.Marshal(seed)
	f.Add(b)
	f.Add([]byte{})
	svc, err := New(Options{Sender: nopSender{}, MaxBodySize: 1 << 16})
	if err != nil {
		f.Fatal(err)
	}
	now := time.Unix(1_800_000_000, 0)
	f.Fuzz(func(t *testing.T, data []byte) {
		var req pb.SendMessageRequest
		if proto.Unmarshal(data, &req) != nil {
			return
		}
		msgs, st := svc.convert(context.Background(), req.GetMessages(), now)
		if st != nil {
			if st.GetCode() == pb.Code_OK {
				t.Fatal("a refusal with code OK")
			}
			return
		}
		for i, m := range msgs {
			if err := m.Validate(1 << 16); err != nil {
				t.Fatalf("message %d accepted by convert, refused by core: %v", i, err)
			}
		}
	})
}
