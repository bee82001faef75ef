package rmqv2

import (
	"context"
	"strconv"
	"sync/atomic"
	"testing"

	"google.golang.org/grpc/metadata"

	pb "github.com/producerd/producerd/api/rmqv2"
	"github.com/producerd/producerd/core"
)

// okSender answers every send at once: the benchmark measures the service and gRPC, not
// a broker.
type okSender struct{}

func (okSender) Send(_ context.Context, m *core.Message) (*core.SendResult, error) {
	return &core.SendResult{Status: core.SendOK, MsgID: m.UniqKey, QueueOffset: 7}, nil
}

func (okSender) SendBatch(_ context.Context, msgs []*core.Message) (*core.SendResult, error) {
	return &core.SendResult{Status: core.SendOK, QueueOffset: 7}, nil
}

// BenchmarkSendMessage: SendMessage of one 1 KiB message, as the Java SDK sends it (its
// headers, tag, keys, born time and host), over a loopback gRPC connection with many calls
// in flight (b.SetParallelism), against a Sender that answers at once. ns/op is the
// service's and gRPC's cost per message on both sides of the connection; allocs/op too.
// "gated" serves it behind a receive gate of 2 calls at a time (Options.RecvGate), as the
// daemon does.
func BenchmarkSendMessage(b *testing.B) {
	b.Run("ungated", func(b *testing.B) { benchSendMessage(b, Options{Sender: okSender{}}) })
	sem := make(chan struct{}, 2) // one connection: one gate
	gate := func(ctx context.Context) (func(), error) {
		select {
		case sem <- struct{}{}:
			return func() { <-sem }, nil
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	b.Run("gated", func(b *testing.B) { benchSendMessage(b, Options{Sender: okSender{}, RecvGate: gate}) })
}

func benchSendMessage(b *testing.B, opts Options) {
	_, client := serve(b, opts)
	body := make([]byte, 1024)
	tag := "bench"
	var seq atomic.Int64
	ctx := metadata.AppendToOutgoingContext(context.Background(), "x-mq-client-id", "host@1@0@abc", "x-mq-language", "JAVA",
		"x-mq-protocol", "v2", "x-mq-client-version", "5.0.8", "x-mq-date-time", "20261207T120000Z",
		"x-mq-request-id", "f5be519f-2a92-41dd-b4e1-e7919d3bf3e5", "x-mq-namespace", "")
	b.SetParallelism(64)
	b.ReportAllocs()
	b.SetBytes(int64(len(body)))
	b.ResetTimer()
	b.RunParallel(func(pbt *testing.PB) {
		for pbt.Next() {
			id := "01AABBCCDDEEFF0011" + strconv.FormatInt(seq.Add(1), 16)
			m := &pb.Message{Topic: &pb.Resource{Name: topic}, Body: body, SystemProperties: &pb.SystemProperties{
				Tag: &tag, Keys: []string{"k"}, MessageId: id, BodyEncoding: pb.Encoding_IDENTITY, MessageType: pb.MessageType_NORMAL,
				BornHost: "app-host", QueueId: 0}}
			r, err := client.SendMessage(ctx, &pb.SendMessageRequest{Messages: []*pb.Message{m}})
			if err != nil || r.GetStatus().GetCode() != pb.Code_OK {
				b.Errorf("SendMessage: %v %v", r.GetStatus(), err)
				return
			}
		}
	})
}
