package rmqv2

import (
	"bytes"
	"compress/gzip"
	"context"
	"crypto/md5" //nolint:gosec // the body digest the SDKs write
	"encoding/hex"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	pb "github.com/producerd/producerd/api/rmqv2"
	"github.com/producerd/producerd/core"
	"github.com/producerd/producerd/internal/testwait"
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

// openTelemetry opens a Telemetry stream on conn, sends a producer's Settings and returns
// the stream and the first command answered.
func openTelemetry(t *testing.T, client pb.MessagingServiceClient, s *pb.Settings) (pb.MessagingService_TelemetryClient, *pb.TelemetryCommand, error) {
	t.Helper()
	ctx, cancel := context.WithCancel(call(t))
	t.Cleanup(cancel)
	stream, err := client.Telemetry(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := stream.Send(&pb.TelemetryCommand{Command: &pb.TelemetryCommand_Settings{Settings: s}}); err != nil {
		t.Fatal(err)
	}
	cmd, err := stream.Recv()
	return stream, cmd, err
}

func producerSettings(topics ...string) *pb.Settings {
	producer := pb.ClientType_PRODUCER
	var rs []*pb.Resource
	for _, n := range topics {
		rs = append(rs, &pb.Resource{Name: n})
	}
	return &pb.Settings{ClientType: &producer, PubSub: &pb.Settings_Publishing{Publishing: &pb.Publishing{Topics: rs}}}
}

// serveAt is serve that also returns the listener's address, for more connections.
func serveAt(t *testing.T, opts Options) (pb.MessagingServiceClient, string) {
	t.Helper()
	_, addr := listen(t, opts)
	return newClient(t, addr), addr
}

func newClient(t *testing.T, addr string) pb.MessagingServiceClient {
	t.Helper()
	return pb.NewMessagingServiceClient(dial(t, addr))
}

// TestHostileTelemetryStreamsAreBounded: every Telemetry stream holds goroutines, its
// session and, while its client does not read, the client's Settings and their answer
// (measured: 20 streams that never read, with Settings of 30 000 topics, held 434 MiB).
// Streams are bounded in all (Options.MaxTelemetryStreams) and per connection (an SDK
// client opens one per endpoint), and Settings by size and topic count; a refused stream
// gets TOO_MANY_REQUESTS as a status command, as a refused call gets its status.
func TestHostileTelemetryStreamsAreBounded(t *testing.T) {
	t.Parallel()
	client, addr := serveAt(t, Options{Sender: &countingSender{}, MaxTelemetryStreams: 6, MaxTopics: 10})
	var open []pb.MessagingService_TelemetryClient
	for i := range maxTelemetryPerConn {
		st, cmd, err := openTelemetry(t, client, producerSettings(topic))
		if err != nil || cmd.GetStatus().GetCode() != pb.Code_OK {
			t.Fatalf("stream %d: %v %v", i, cmd.GetStatus(), err)
		}
		open = append(open, st)
	}
	_, cmd, err := openTelemetry(t, client, producerSettings(topic))
	if err != nil || cmd.GetStatus().GetCode() != pb.Code_TOO_MANY_REQUESTS {
		t.Fatalf("stream %d on one connection: %v %v, want TOO_MANY_REQUESTS", maxTelemetryPerConn+1, cmd.GetStatus(), err)
	}
	other := newClient(t, addr)
	for i := maxTelemetryPerConn; i < 6; i++ {
		if _, cmd, err := openTelemetry(t, other, producerSettings(topic)); err != nil || cmd.GetStatus().GetCode() != pb.Code_OK {
			t.Fatalf("stream %d on a second connection: %v %v", i, cmd.GetStatus(), err)
		}
	}
	if _, cmd, err := openTelemetry(t, newClient(t, addr), producerSettings(topic)); err != nil || cmd.GetStatus().GetCode() != pb.Code_TOO_MANY_REQUESTS {
		t.Fatalf("stream 7 of at most 6: %v %v, want TOO_MANY_REQUESTS", cmd.GetStatus(), err)
	}
	// A stream that ends frees its place.
	if err := open[0].CloseSend(); err != nil {
		t.Fatal(err)
	}
	if _, err := open[0].Recv(); err == nil {
		t.Fatal("the stream did not end")
	}
	testwait.For(t, 10*time.Second, "a freed Telemetry place", func() bool {
		_, cmd, err := openTelemetry(t, newClient(t, addr), producerSettings(topic))
		return err == nil && cmd.GetStatus().GetCode() == pb.Code_OK
	})

	// Settings: more topics than MaxTopics, or larger than maxCommandSize, end the stream.
	_, client2 := serve(t, Options{Sender: &countingSender{}, MaxTopics: 10})
	many := make([]string, 11)
	for i := range many {
		many[i] = "T" + strconv.Itoa(i)
	}
	if _, _, err := openTelemetry(t, client2, producerSettings(many...)); status.Code(err) != codes.InvalidArgument {
		t.Errorf("settings of 11 topics (limit 10): %v, want INVALID_ARGUMENT", err)
	}
	big := producerSettings(topic)
	big.UserAgent = &pb.UA{Hostname: strings.Repeat("h", maxCommandSize)}
	if _, _, err := openTelemetry(t, client2, big); status.Code(err) != codes.InvalidArgument {
		t.Errorf("settings of %d bytes: %v, want INVALID_ARGUMENT", maxCommandSize, err)
	}
	if _, cmd, err := openTelemetry(t, client2, producerSettings(many[:10]...)); err != nil || cmd.GetStatus().GetCode() != pb.Code_OK {
		t.Errorf("settings of 10 topics: %v %v", cmd.GetStatus(), err)
	}
}

// TestHostileBatchCountIsBounded: a request of 100 000 one-byte messages (4 MiB on the
// wire) cost 183 MiB of conversion before core refused the encoded batch; a batch of more
// messages than Options.MaxBatch (the daemon's in-flight bound, which it could never pass)
// is refused before any conversion, with a code the SDKs do not retry after a backoff.
func TestHostileBatchCountIsBounded(t *testing.T) {
	t.Parallel()
	sender := &countingSender{}
	_, client := serve(t, Options{Sender: sender, MaxBatch: 10})
	var msgs []*pb.Message
	for i := range 11 {
		msgs = append(msgs, msg("n-"+strconv.Itoa(i)))
	}
	resp, err := client.SendMessage(call(t), &pb.SendMessageRequest{Messages: msgs})
	if err != nil || resp.GetStatus().GetCode() != pb.Code_PAYLOAD_TOO_LARGE {
		t.Errorf("batch of 11 (limit 10): %v %v, want PAYLOAD_TOO_LARGE", resp.GetStatus(), err)
	}
	if n := sender.msgs.Load(); n != 0 {
		t.Errorf("%d messages sent", n)
	}
	resp, err = client.SendMessage(call(t), &pb.SendMessageRequest{Messages: msgs[:10]})
	if err != nil || resp.GetStatus().GetCode() != pb.Code_OK || len(resp.GetEntries()) != 10 {
		t.Errorf("batch of 10: %v %v", resp.GetStatus(), err)
	}
}

// TestGzipDigestIsOfTheCarriedBody: the protocol's body digest is of the body as carried
// (the Java SDK's MessageViewImpl checks it before it inflates a GZIP body), so a GZIP
// message whose digest covers the compressed bytes is intact; producerd checked only the
// inflated body and refused it as corrupted, which every SDK retry repeated. A digest of
// the inflated body is still accepted; one of neither is corrupted.
func TestGzipDigestIsOfTheCarriedBody(t *testing.T) {
	t.Parallel()
	sender := &countingSender{}
	_, client := serve(t, Options{Sender: sender})
	raw := []byte("a body worth compressing, a body worth compressing")
	var b bytes.Buffer
	zw := gzip.NewWriter(&b)
	_, _ = zw.Write(raw)
	_ = zw.Close()
	hexOf := func(p []byte) string { s := md5.Sum(p); return hex.EncodeToString(s[:]) }
	for _, tc := range []struct {
		name, sum string
		want      pb.Code
	}{
		{"digest of the carried bytes", hexOf(b.Bytes()), pb.Code_OK},
		{"digest of the inflated body", hexOf(raw), pb.Code_OK},
		{"digest of neither", hexOf([]byte("other")), pb.Code_MESSAGE_CORRUPTED},
	} {
		m := msg("gz-" + strings.ReplaceAll(tc.name, " ", "-"))
		m.Body, m.SystemProperties.BodyEncoding = b.Bytes(), pb.Encoding_GZIP
		m.SystemProperties.BodyDigest = &pb.Digest{Type: pb.DigestType_MD5, Checksum: tc.sum}
		resp, err := client.SendMessage(call(t), &pb.SendMessageRequest{Messages: []*pb.Message{m}})
		if err != nil || resp.GetStatus().GetCode() != tc.want {
			t.Errorf("%s: %v %v, want %v", tc.name, resp.GetStatus(), err, tc.want)
		}
	}
}

// TestHostileCheckImmunityProperty: a TRANSACTION message's check immunity comes from
// orphaned_transaction_recovery_duration, capped at 3600 s; the same broker property
// given as a user property went through uncapped (a half message the broker would not
// check back for years). It is refused on a TRANSACTION message.
func TestHostileCheckImmunityProperty(t *testing.T) {
	t.Parallel()
	tx := &fakeTx{}
	_, client := startTx(t, Options{Transactions: tx})
	m := txMsg("immune")
	m.UserProperties = map[string]string{core.PropertyCheckImmunity: "999999999"}
	resp, err := client.SendMessage(call(t), &pb.SendMessageRequest{Messages: []*pb.Message{m}})
	if err != nil || resp.GetStatus().GetCode() != pb.Code_ILLEGAL_MESSAGE_PROPERTY_KEY {
		t.Errorf("user %s on a TRANSACTION message: %v %v, want ILLEGAL_MESSAGE_PROPERTY_KEY", core.PropertyCheckImmunity, resp.GetStatus(), err)
	}
	tx.mu.Lock()
	defer tx.mu.Unlock()
	if len(tx.begun) != 0 {
		t.Errorf("%d transactions begun", len(tx.begun))
	}
}

// TestHostileHeadersAreBounded: grpc-go accepts 16 MiB of headers per call by default,
// held for the call's life (a Telemetry stream's is its whole life). The SDKs send under
// 1 KiB; the listener takes at most maxHeaderListSize.
func TestHostileHeadersAreBounded(t *testing.T) {
	t.Parallel()
	_, client := serve(t, Options{Sender: &countingSender{}})
	ctx := metadata.AppendToOutgoingContext(call(t), "x-mq-padding", strings.Repeat("p", 2*maxHeaderListSize))
	if resp, err := client.SendMessage(ctx, &pb.SendMessageRequest{Messages: []*pb.Message{msg("hdr")}}); err == nil {
		t.Errorf("a call with %d bytes of headers was served: %v", 2*maxHeaderListSize, resp.GetStatus())
	}
	if resp, err := client.SendMessage(call(t), &pb.SendMessageRequest{Messages: []*pb.Message{msg("hdr-ok")}}); err != nil || resp.GetStatus().GetCode() != pb.Code_OK {
		t.Errorf("a call with the SDK's headers: %v %v", resp.GetStatus(), err)
	}
}

// TestHostileClientIDIsBounded: the client id is kept with every open transaction (up to
// 100 000 of them) and keys the Telemetry sessions; with headers of up to 64 KiB a client
// could make each transaction hold 64 KiB. SDK ids are host@pid@index@time, under 300
// bytes; longer ones are refused as no valid client id.
func TestHostileClientIDIsBounded(t *testing.T) {
	t.Parallel()
	tx := &fakeTx{}
	_, client := startTx(t, Options{Transactions: tx})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	long := metadata.AppendToOutgoingContext(ctx, "x-mq-client-id", strings.Repeat("c", maxClientIDLength+1))
	resp, err := client.SendMessage(long, &pb.SendMessageRequest{Messages: []*pb.Message{txMsg("long-id")}})
	if err != nil || resp.GetStatus().GetCode() != pb.Code_CLIENT_ID_REQUIRED {
		t.Errorf("send with a %d-byte client id: %v %v, want CLIENT_ID_REQUIRED", maxClientIDLength+1, resp.GetStatus(), err)
	}
	stream, err := client.Telemetry(long)
	if err != nil {
		t.Fatal(err)
	}
	if cmd, err := stream.Recv(); err != nil || cmd.GetStatus().GetCode() != pb.Code_CLIENT_ID_REQUIRED {
		t.Errorf("telemetry with a long client id: %v %v, want CLIENT_ID_REQUIRED", cmd.GetStatus(), err)
	}
	ok := metadata.AppendToOutgoingContext(ctx, "x-mq-client-id", strings.Repeat("c", maxClientIDLength))
	if resp, err := client.SendMessage(ok, &pb.SendMessageRequest{Messages: []*pb.Message{txMsg("max-id")}}); err != nil || resp.GetStatus().GetCode() != pb.Code_OK {
		t.Errorf("send with a %d-byte client id: %v %v", maxClientIDLength, resp.GetStatus(), err)
	}
	tx.mu.Lock()
	defer tx.mu.Unlock()
	if len(tx.begun) != 1 {
		t.Errorf("%d transactions begun, want the one with a valid id", len(tx.begun))
	}
}
