package rmqv2

import (
	"bytes"
	"compress/gzip"
	"context"
	"strconv"
	"sync/atomic"
	"testing"

	pb "github.com/producerd/producerd/api/rmqv2"
	"github.com/producerd/producerd/core"
)

// Tests of a hostile client: requests the SDKs never send, each answered with a clear
// code and without harm to the daemon (memory bounded, nothing sent that should not be).

// countingSender answers every send at once and counts the messages it was given.
type countingSender struct{ msgs atomic.Int64 }

func (c *countingSender) Send(_ context.Context, m *core.Message) (*core.SendResult, error) {
	c.msgs.Add(1)
	return &core.SendResult{Status: core.SendOK, MsgID: m.UniqKey}, nil
}

func (c *countingSender) SendBatch(_ context.Context, msgs []*core.Message) (*core.SendResult, error) {
	c.msgs.Add(int64(len(msgs)))
	return &core.SendResult{Status: core.SendOK}, nil
}

// gzipped compresses n zero bytes: about a thousandth of n on the wire.
func gzipped(t *testing.T, n int) []byte {
	t.Helper()
	var b bytes.Buffer
	zw := gzip.NewWriter(&b)
	if _, err := zw.Write(make([]byte, n)); err != nil {
		t.Fatal(err)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

// TestHostileGzipBatchIsBounded: every gzip body of a batch may inflate to the body limit,
// but a batch is one broker message, bounded by that limit as a whole. A request of many
// small gzip bodies (a 4.6 MiB request of 4 KiB bombs inflates to over 4 GiB) is refused
// once the inflated bodies pass the limit, before anything more is inflated or sent.
func TestHostileGzipBatchIsBounded(t *testing.T) {
	t.Parallel()
	const limit = 64 << 10
	sender := &countingSender{}
	_, client := serve(t, Options{Sender: sender, MaxBodySize: limit})
	bomb := gzipped(t, limit)
	var msgs []*pb.Message
	for i := range 64 {
		m := msg("bomb-" + strconv.Itoa(i))
		m.Body, m.SystemProperties.BodyEncoding = bomb, pb.Encoding_GZIP
		msgs = append(msgs, m)
	}
	resp, err := client.SendMessage(call(t), &pb.SendMessageRequest{Messages: msgs})
	if err != nil {
		t.Fatal(err)
	}
	if got := resp.GetStatus().GetCode(); got != pb.Code_PAYLOAD_TOO_LARGE {
		t.Errorf("code %v (%q), want PAYLOAD_TOO_LARGE", got, resp.GetStatus().GetMessage())
	}
	if n := sender.msgs.Load(); n != 0 {
		t.Errorf("%d messages sent of a batch that inflates to %d bytes", n, 64*limit)
	}
	// One bomb alone, inflating to exactly the limit, is a valid message.
	one := msgs[0]
	resp, err = client.SendMessage(call(t), &pb.SendMessageRequest{Messages: []*pb.Message{one}})
	if err != nil || resp.GetStatus().GetCode() != pb.Code_OK {
		t.Fatalf("one gzip body of the limit: %v %v", resp.GetStatus(), err)
	}
}

// TestHostileSystemTopics: the Proxy refuses RocketMQ's system topics (TopicValidator:
// the rmq_sys_ prefix and its system topic set) with ILLEGAL_TOPIC; writing to them
// (the broker's revive log, timer wheel, trace topic, TBW102) would feed the broker's own
// machinery with a client's bytes. A namespaced listener does not wrap them (system
// resources are never namespaced), so they would also leave the namespace.
func TestHostileSystemTopics(t *testing.T) {
	t.Parallel()
	sender := &countingSender{}
	_, client := serve(t, Options{Sender: sender, Transactions: &fakeTx{}, Namespace: "ns1"})
	for _, name := range []string{"rmq_sys_REVIVE_LOG_DefaultCluster", "rmq_sys_wheel_timer", "TBW102",
		"RMQ_SYS_TRACE_TOPIC", "BenchmarkTest", "SCHEDULE_TOPIC_XXXX", "RMQ_SYS_TRANS_HALF_TOPIC"} {
		m := msg("sys-" + name)
		m.Topic.Name = name
		resp, err := client.SendMessage(call(t), &pb.SendMessageRequest{Messages: []*pb.Message{m}})
		if err != nil || resp.GetStatus().GetCode() != pb.Code_ILLEGAL_TOPIC {
			t.Errorf("send to %s: %v %v, want ILLEGAL_TOPIC", name, resp.GetStatus(), err)
		}
		tx := txMsg("systx-" + name)
		tx.Topic.Name = name
		resp, err = client.SendMessage(call(t), &pb.SendMessageRequest{Messages: []*pb.Message{tx}})
		if err != nil || resp.GetStatus().GetCode() != pb.Code_ILLEGAL_TOPIC {
			t.Errorf("transactional send to %s: %v %v, want ILLEGAL_TOPIC", name, resp.GetStatus(), err)
		}
		r, err := client.QueryRoute(call(t), &pb.QueryRouteRequest{Topic: &pb.Resource{Name: name}})
		if err != nil || r.GetStatus().GetCode() != pb.Code_ILLEGAL_TOPIC {
			t.Errorf("route of %s: %v %v, want ILLEGAL_TOPIC", name, r.GetStatus(), err)
		}
	}
	if n := sender.msgs.Load(); n != 0 {
		t.Errorf("%d messages sent to system topics", n)
	}
	// Names that only look alike are ordinary topics.
	m := msg("not-sys")
	m.Topic.Name = "my_rmq_sys_topic"
	if resp, err := client.SendMessage(call(t), &pb.SendMessageRequest{Messages: []*pb.Message{m}}); err != nil || resp.GetStatus().GetCode() != pb.Code_OK {
		t.Errorf("send to my_rmq_sys_topic: %v %v", resp.GetStatus(), err)
	}
}
