package rmqv2

import (
	"bytes"
	"compress/gzip"
	"context"
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/emptypb"
	"google.golang.org/protobuf/types/known/timestamppb"

	pb "github.com/producerd/producerd/api/rmqv2"
	"github.com/producerd/producerd/core"
	"github.com/producerd/producerd/devbroker"
	"github.com/producerd/producerd/remoting"
)

const topic = "V2Topic"

// fixture is a dev broker, a core producer, the service on a loopback listener and a
// client of the generated bindings.
type fixture struct {
	cluster *devbroker.Cluster
	conn    *grpc.ClientConn
	client  pb.MessagingServiceClient
	addr    *net.TCPAddr
}

func start(t *testing.T) *fixture {
	t.Helper()
	ctx := context.Background()
	c, err := devbroker.Start(ctx, devbroker.Config{Brokers: []string{"broker-a", "broker-b"}, Topics: map[string]int{topic: 4}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	p, err := core.NewProducer(core.ProducerConfig{Group: "v2test", Client: core.ClientConfig{NameServers: []string{c.NameServerAddr()}},
		NoAutoCreate: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = p.Close(context.Background()) })
	_, addr := listen(t, Options{Sender: p})
	conn := dial(t, addr)
	tcp, err := net.ResolveTCPAddr("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	return &fixture{cluster: c, conn: conn, client: pb.NewMessagingServiceClient(conn), addr: tcp}
}

// call returns a context with the headers the SDKs send and a deadline.
func call(t *testing.T) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	t.Cleanup(cancel)
	return metadata.AppendToOutgoingContext(ctx, "x-mq-client-id", "test@1@0@abc", "x-mq-language", "GO", "x-mq-protocol", "v2")
}

// stored returns the message with UNIQ_KEY id on any broker, waiting for it.
func (f *fixture) stored(t *testing.T, id string) devbroker.Message {
	t.Helper()
	for _, b := range f.cluster.Brokers() {
		for _, m := range b.Messages(topic) {
			if m.Properties[core.PropertyUniqKey] == id {
				return m
			}
		}
	}
	t.Fatalf("no stored message with UNIQ_KEY %s", id)
	return devbroker.Message{}
}

func msg(id string) *pb.Message {
	return &pb.Message{Topic: &pb.Resource{Name: topic}, Body: []byte("body " + id),
		SystemProperties: &pb.SystemProperties{MessageId: id, MessageType: pb.MessageType_NORMAL, BodyEncoding: pb.Encoding_IDENTITY}}
}

func TestSendMessageMapsSystemProperties(t *testing.T) {
	t.Parallel()
	f := start(t)
	born := time.Now().Add(-time.Second).Truncate(time.Millisecond)
	deliver := time.Now().Add(time.Minute).Truncate(time.Millisecond)
	tag := "TagA"
	m := msg("01AABBCCDDEEFF00112233445566778899")
	m.UserProperties = map[string]string{"color": "blue"}
	sp := m.SystemProperties
	sp.Tag, sp.Keys, sp.BornHost = &tag, []string{"k1", "k2"}, "app-host"
	sp.BornTimestamp, sp.DeliveryTimestamp = timestamppb.New(born), timestamppb.New(deliver)
	sp.MessageType = pb.MessageType_DELAY
	resp, err := f.client.SendMessage(call(t), &pb.SendMessageRequest{Messages: []*pb.Message{m}})
	if err != nil {
		t.Fatal(err)
	}
	if resp.GetStatus().GetCode() != pb.Code_OK || len(resp.GetEntries()) != 1 || resp.Entries[0].GetStatus().GetCode() != pb.Code_OK {
		t.Fatalf("response %v", resp)
	}
	e := resp.Entries[0]
	if e.GetMessageId() != sp.MessageId {
		t.Errorf("entry message id %q, want the client's %q", e.GetMessageId(), sp.MessageId)
	}
	got := f.stored(t, sp.MessageId)
	if e.GetOffset() != got.QueueOffset {
		t.Errorf("entry offset %d, stored at %d", e.GetOffset(), got.QueueOffset)
	}
	want := map[string]string{
		core.PropertyTags: "TagA", core.PropertyKeys: "k1 k2", "color": "blue",
		core.PropertyTimerDeliverMS: strconv.FormatInt(deliver.UnixMilli(), 10),
		core.PropertyBornHost:       "app-host", core.PropertyBornTimestamp: strconv.FormatInt(born.UnixMilli(), 10),
	}
	for k, v := range want {
		if got.Properties[k] != v {
			t.Errorf("stored property %s = %q, want %q (all: %q)", k, got.Properties[k], v, got.Properties)
		}
	}
	if string(got.Body) != "body "+sp.MessageId {
		t.Errorf("stored body %q", got.Body)
	}
}

func TestSendMessageFIFOAndGzip(t *testing.T) {
	t.Parallel()
	f := start(t)
	group := "order-42"
	m := msg("fifo-1")
	m.SystemProperties.MessageGroup, m.SystemProperties.MessageType = &group, pb.MessageType_FIFO
	var zb bytes.Buffer
	zw := gzip.NewWriter(&zb)
	_, _ = zw.Write([]byte("inflated body"))
	_ = zw.Close()
	m.Body, m.SystemProperties.BodyEncoding = zb.Bytes(), pb.Encoding_GZIP
	resp, err := f.client.SendMessage(call(t), &pb.SendMessageRequest{Messages: []*pb.Message{m}})
	if err != nil || resp.GetStatus().GetCode() != pb.Code_OK {
		t.Fatalf("SendMessage: %v %v", resp, err)
	}
	got := f.stored(t, "fifo-1")
	if got.Properties[core.PropertyShardingKey] != group {
		t.Errorf("__SHARDINGKEY = %q, want the message group %q", got.Properties[core.PropertyShardingKey], group)
	}
	if body, _ := got.PlainBody(); string(body) != "inflated body" {
		t.Errorf("stored body %q, want the inflated gzip body", body)
	}
	if got.Properties[core.PropertyBornHost] == "" {
		t.Error("no __BORNHOST: the client's address should fill a blank born host")
	}
}

func TestSendMessageBatchAnswersEveryMessage(t *testing.T) {
	t.Parallel()
	f := start(t)
	req := &pb.SendMessageRequest{}
	for i := range 3 {
		req.Messages = append(req.Messages, msg(fmt.Sprintf("batch-%d", i)))
	}
	resp, err := f.client.SendMessage(call(t), req)
	if err != nil || resp.GetStatus().GetCode() != pb.Code_OK {
		t.Fatalf("SendMessage: %v %v", resp, err)
	}
	if len(resp.GetEntries()) != 3 {
		t.Fatalf("%d entries for 3 messages", len(resp.GetEntries()))
	}
	for i, e := range resp.Entries {
		id := fmt.Sprintf("batch-%d", i)
		got := f.stored(t, id)
		if e.GetMessageId() != id || e.GetOffset() != got.QueueOffset || e.GetStatus().GetCode() != pb.Code_OK {
			t.Errorf("entry %d = %v; stored offset %d", i, e, got.QueueOffset)
		}
	}
}

func TestMalformedRequestsGetDocumentedCodes(t *testing.T) {
	t.Parallel()
	f := start(t)
	tooLate := timestamppb.New(time.Now().Add(48 * time.Hour))
	group := "g"
	tests := []struct {
		name string
		req  func() []*pb.Message
		want pb.Code
	}{
		{"no messages", func() []*pb.Message { return nil }, pb.Code_MESSAGE_CORRUPTED},
		{"illegal topic", func() []*pb.Message { m := msg("a"); m.Topic.Name = "bad topic"; return []*pb.Message{m} }, pb.Code_ILLEGAL_TOPIC},
		{"mixed topics", func() []*pb.Message {
			m := msg("b")
			m.Topic = &pb.Resource{Name: "Other"}
			return []*pb.Message{msg("a"), m}
		}, pb.Code_MESSAGE_CORRUPTED},
		{"blank message id", func() []*pb.Message { return []*pb.Message{msg(" ")} }, pb.Code_ILLEGAL_MESSAGE_ID},
		{"no system properties", func() []*pb.Message { m := msg("a"); m.SystemProperties = nil; return []*pb.Message{m} }, pb.Code_ILLEGAL_MESSAGE_ID},
		{"empty body", func() []*pb.Message { m := msg("a"); m.Body = nil; return []*pb.Message{m} }, pb.Code_MESSAGE_BODY_EMPTY},
		{"body too large", func() []*pb.Message {
			m := msg("a")
			m.Body = make([]byte, core.DefaultMaxMessageSize+1)
			return []*pb.Message{m}
		}, pb.Code_MESSAGE_BODY_TOO_LARGE},
		{"reserved user property", func() []*pb.Message {
			m := msg("a")
			m.UserProperties = map[string]string{"UNIQ_KEY": "x"}
			return []*pb.Message{m}
		}, pb.Code_ILLEGAL_MESSAGE_PROPERTY_KEY},
		{"tag with bar", func() []*pb.Message {
			m := msg("a")
			tag := "a|b"
			m.SystemProperties.Tag = &tag
			return []*pb.Message{m}
		}, pb.Code_ILLEGAL_MESSAGE_TAG},
		{"key with space", func() []*pb.Message {
			m := msg("a")
			m.SystemProperties.Keys = []string{"a b"}
			return []*pb.Message{m}
		}, pb.Code_ILLEGAL_MESSAGE_KEY},
		{"delivery a day ahead", func() []*pb.Message {
			m := msg("a")
			m.SystemProperties.DeliveryTimestamp, m.SystemProperties.MessageType = tooLate, pb.MessageType_DELAY
			return []*pb.Message{m}
		}, pb.Code_ILLEGAL_DELIVERY_TIME},
		{"group and delivery", func() []*pb.Message {
			m := msg("a")
			m.SystemProperties.MessageGroup, m.SystemProperties.DeliveryTimestamp = &group, timestamppb.Now()
			m.SystemProperties.MessageType = pb.MessageType_FIFO
			return []*pb.Message{m}
		}, pb.Code_MESSAGE_PROPERTY_CONFLICT_WITH_TYPE},
		{"FIFO without group", func() []*pb.Message {
			m := msg("a")
			m.SystemProperties.MessageType = pb.MessageType_FIFO
			return []*pb.Message{m}
		}, pb.Code_MESSAGE_PROPERTY_CONFLICT_WITH_TYPE},
		{"transactional", func() []*pb.Message {
			m := msg("a")
			m.SystemProperties.MessageType = pb.MessageType_TRANSACTION
			return []*pb.Message{m}
		}, pb.Code_UNSUPPORTED},
		{"wrong digest", func() []*pb.Message {
			m := msg("a")
			m.SystemProperties.BodyDigest = &pb.Digest{Type: pb.DigestType_CRC32, Checksum: "1234"}
			return []*pb.Message{m}
		}, pb.Code_MESSAGE_CORRUPTED},
		{"corrupt gzip", func() []*pb.Message {
			m := msg("a")
			m.SystemProperties.BodyEncoding = pb.Encoding_GZIP
			return []*pb.Message{m}
		}, pb.Code_MESSAGE_CORRUPTED},
		{"unknown topic", func() []*pb.Message { m := msg("a"); m.Topic.Name = "NoSuchTopic"; return []*pb.Message{m} }, pb.Code_TOPIC_NOT_FOUND},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp, err := f.client.SendMessage(call(t), &pb.SendMessageRequest{Messages: tt.req()})
			if err != nil {
				t.Fatalf("gRPC error %v; errors belong in the response status", err)
			}
			if got := resp.GetStatus().GetCode(); got != tt.want {
				t.Fatalf("code %v (%q), want %v", got, resp.GetStatus().GetMessage(), tt.want)
			}
			if len(resp.GetEntries()) != 0 {
				t.Errorf("a failed request carries entries: %v", resp.GetEntries())
			}
		})
	}
	t.Run("no client id", func(t *testing.T) {
		resp, err := f.client.SendMessage(context.Background(), &pb.SendMessageRequest{Messages: []*pb.Message{msg("a")}})
		if err != nil || resp.GetStatus().GetCode() != pb.Code_CLIENT_ID_REQUIRED {
			t.Fatalf("got %v %v, want CLIENT_ID_REQUIRED", resp, err)
		}
	})
	t.Run("right digest passes", func(t *testing.T) {
		m := msg("digest-ok")
		m.SystemProperties.BodyDigest = &pb.Digest{Type: pb.DigestType_MD5, Checksum: "5d41402abc4b2a76b9719d911017c592"}
		m.Body = []byte("hello")
		resp, err := f.client.SendMessage(call(t), &pb.SendMessageRequest{Messages: []*pb.Message{m}})
		if err != nil || resp.GetStatus().GetCode() != pb.Code_OK {
			t.Fatalf("got %v %v", resp, err)
		}
	})
}

func TestConsumerRPCsAreUnimplemented(t *testing.T) {
	t.Parallel()
	f := start(t)
	for _, method := range []string{"ReceiveMessage", "AckMessage", "ChangeInvisibleDuration", "QueryAssignment"} {
		err := f.conn.Invoke(call(t), "/apache.rocketmq.v2.MessagingService/"+method, &emptypb.Empty{}, &emptypb.Empty{})
		if status.Code(err) != codes.Unimplemented {
			t.Errorf("%s: %v, want UNIMPLEMENTED", method, err)
			continue
		}
		if msg := status.Convert(err).Message(); !bytes.Contains([]byte(msg), []byte("producer endpoint")) {
			t.Errorf("%s: message %q does not say producerd is a producer endpoint", method, msg)
		}
	}
}

func TestQueryRoutePointsAtTheCalledAddress(t *testing.T) {
	t.Parallel()
	f := start(t)
	ep := &pb.Endpoints{Scheme: pb.AddressScheme_DOMAIN_NAME, Addresses: []*pb.Address{{Host: "producerd.local", Port: 8081}}}
	resp, err := f.client.QueryRoute(call(t), &pb.QueryRouteRequest{Topic: &pb.Resource{Name: topic}, Endpoints: ep})
	if err != nil || resp.GetStatus().GetCode() != pb.Code_OK || len(resp.GetMessageQueues()) == 0 {
		t.Fatalf("QueryRoute: %v %v", resp, err)
	}
	for _, q := range resp.MessageQueues {
		if q.GetPermission() != pb.Permission_WRITE || q.GetBroker().GetId() != 0 ||
			q.GetBroker().GetEndpoints().GetAddresses()[0].GetHost() != "producerd.local" || len(q.GetAcceptMessageTypes()) == 0 {
			t.Errorf("queue %v", q)
		}
	}
	resp, err = f.client.QueryRoute(call(t), &pb.QueryRouteRequest{Topic: &pb.Resource{Name: topic}})
	if err != nil || resp.GetStatus().GetCode() != pb.Code_OK {
		t.Fatalf("QueryRoute without endpoints: %v %v", resp, err)
	}
	a := resp.MessageQueues[0].GetBroker().GetEndpoints().GetAddresses()[0]
	if a.GetHost() != "127.0.0.1" || int(a.GetPort()) != f.addr.Port {
		t.Errorf("without endpoints the route names %v, want the listener %v", a, f.addr)
	}
	resp, err = f.client.QueryRoute(call(t), &pb.QueryRouteRequest{Topic: &pb.Resource{Name: "bad topic"}, Endpoints: ep})
	if err != nil || resp.GetStatus().GetCode() != pb.Code_ILLEGAL_TOPIC {
		t.Fatalf("bad topic: %v %v", resp, err)
	}
}

func TestTelemetrySettingsHandshake(t *testing.T) {
	t.Parallel()
	f := start(t)
	stream, err := f.client.Telemetry(call(t))
	if err != nil {
		t.Fatal(err)
	}
	producer := pb.ClientType_PRODUCER
	settings := &pb.Settings{
		ClientType:     &producer,
		BackoffPolicy:  &pb.RetryPolicy{MaxAttempts: 5, Strategy: &pb.RetryPolicy_ExponentialBackoff{ExponentialBackoff: &pb.ExponentialBackoff{Multiplier: 1}}},
		RequestTimeout: durationpb.New(3 * time.Second),
		PubSub:         &pb.Settings_Publishing{Publishing: &pb.Publishing{Topics: []*pb.Resource{{Name: topic}}, ValidateMessageType: true}},
		UserAgent:      &pb.UA{Language: pb.Language_JAVA, Version: "5.0.8"},
	}
	if err := stream.Send(&pb.TelemetryCommand{Command: &pb.TelemetryCommand_Settings{Settings: settings}}); err != nil {
		t.Fatal(err)
	}
	got, err := stream.Recv()
	if err != nil {
		t.Fatal(err)
	}
	s := got.GetSettings()
	eb := s.GetBackoffPolicy().GetExponentialBackoff()
	switch {
	case got.GetStatus().GetCode() != pb.Code_OK:
		t.Errorf("status %v", got.GetStatus())
	case eb == nil || eb.GetMultiplier() != 2 || eb.GetInitial().AsDuration() != 10*time.Millisecond:
		t.Errorf("backoff %v, want exponential 10ms x2 (the SDK hangs on anything but exponential)", s.GetBackoffPolicy())
	case s.GetBackoffPolicy().GetMaxAttempts() != 5:
		t.Errorf("max attempts %d, want the client's 5", s.GetBackoffPolicy().GetMaxAttempts())
	case s.GetPublishing().GetMaxBodySize() != core.DefaultMaxMessageSize || !s.GetPublishing().GetValidateMessageType():
		t.Errorf("publishing %v", s.GetPublishing())
	case len(s.GetPublishing().GetTopics()) != 1:
		t.Errorf("topics %v", s.GetPublishing().GetTopics())
	}
	if err := stream.CloseSend(); err != nil {
		t.Fatal(err)
	}
	if _, err := stream.Recv(); err == nil {
		t.Error("the stream did not end after the client closed its side")
	}

	consumer := pb.ClientType_SIMPLE_CONSUMER
	stream, err = f.client.Telemetry(call(t))
	if err != nil {
		t.Fatal(err)
	}
	_ = stream.Send(&pb.TelemetryCommand{Command: &pb.TelemetryCommand_Settings{Settings: &pb.Settings{ClientType: &consumer}}})
	if _, err := stream.Recv(); status.Code(err) != codes.InvalidArgument {
		t.Errorf("consumer settings: %v, want INVALID_ARGUMENT", err)
	}
}

func TestHeartbeatAndTermination(t *testing.T) {
	t.Parallel()
	f := start(t)
	hb, err := f.client.Heartbeat(call(t), &pb.HeartbeatRequest{ClientType: pb.ClientType_PRODUCER})
	if err != nil || hb.GetStatus().GetCode() != pb.Code_OK {
		t.Errorf("producer heartbeat: %v %v", hb, err)
	}
	hb, err = f.client.Heartbeat(call(t), &pb.HeartbeatRequest{ClientType: pb.ClientType_PUSH_CONSUMER})
	if err != nil || hb.GetStatus().GetCode() != pb.Code_UNRECOGNIZED_CLIENT_TYPE {
		t.Errorf("consumer heartbeat: %v %v", hb, err)
	}
	nt, err := f.client.NotifyClientTermination(call(t), &pb.NotifyClientTerminationRequest{})
	if err != nil || nt.GetStatus().GetCode() != pb.Code_OK {
		t.Errorf("termination: %v %v", nt, err)
	}
}

func TestStatusOf(t *testing.T) {
	t.Parallel()
	tests := []struct {
		err  error
		want pb.Code
	}{
		{fmt.Errorf("x: %w", ErrTooManyRequests), pb.Code_TOO_MANY_REQUESTS},
		{core.ErrTooManyRequests, pb.Code_TOO_MANY_REQUESTS},
		{fmt.Errorf("x: %w", core.ErrTopicNotExist), pb.Code_TOPIC_NOT_FOUND},
		{fmt.Errorf("x: %w", core.ErrNoWritableQueue), pb.Code_FORBIDDEN},
		{fmt.Errorf("x: %w", ErrUnavailable), pb.Code_INTERNAL_SERVER_ERROR},
		{&core.SendError{Last: &remoting.Error{Code: remoting.SystemBusy}}, pb.Code_TOO_MANY_REQUESTS},
		{&core.SendError{Last: &remoting.Error{Code: remoting.TopicNotExist}}, pb.Code_TOPIC_NOT_FOUND},
		{&core.SendError{Last: &remoting.Error{Code: remoting.NoPermission}}, pb.Code_FORBIDDEN},
		{&core.SendError{Last: &remoting.Error{Code: remoting.ServiceNotAvailable}}, pb.Code_INTERNAL_SERVER_ERROR},
		{&core.SendError{Timeout: true}, pb.Code_PROXY_TIMEOUT},
		{&core.ValidationError{Rule: "body.size"}, pb.Code_MESSAGE_BODY_TOO_LARGE},
		{errors.New("connection refused"), pb.Code_INTERNAL_SERVER_ERROR},
	}
	for _, tt := range tests {
		if got := statusOf(tt.err).GetCode(); got != tt.want {
			t.Errorf("statusOf(%v) = %v, want %v", tt.err, got, tt.want)
		}
	}
}

// TestBrokerOutcomesMapToSDKCodes injects broker answers on every broker: a message stored
// but not flushed is acknowledged (the Proxy's 50401 would make the SDK store it again), a
// busy broker is TOO_MANY_REQUESTS, which the SDKs retry after their backoff.
func TestBrokerOutcomesMapToSDKCodes(t *testing.T) {
	t.Parallel()
	tests := []struct {
		code      remoting.ResponseCode
		wantTop   pb.Code
		wantEntry bool
	}{
		{remoting.FlushDiskTimeout, pb.Code_OK, true},
		{remoting.SlaveNotAvailable, pb.Code_OK, true},
		{remoting.SystemBusy, pb.Code_TOO_MANY_REQUESTS, false},
		{remoting.NoPermission, pb.Code_FORBIDDEN, false},
	}
	for _, tt := range tests {
		t.Run(tt.code.String(), func(t *testing.T) {
			t.Parallel()
			f := start(t)
			for _, b := range f.cluster.Brokers() {
				if err := b.SetFault(devbroker.Fault{Errors: []devbroker.InjectedError{{Code: tt.code, Rate: 1}}}); err != nil {
					t.Fatal(err)
				}
			}
			id := "outcome-" + tt.code.String()
			resp, err := f.client.SendMessage(call(t), &pb.SendMessageRequest{Messages: []*pb.Message{msg(id)}})
			if err != nil {
				t.Fatal(err)
			}
			if resp.GetStatus().GetCode() != tt.wantTop {
				t.Fatalf("status %v, want %v", resp.GetStatus(), tt.wantTop)
			}
			if !tt.wantEntry {
				return
			}
			e := resp.GetEntries()
			if len(e) != 1 || e[0].GetStatus().GetCode() != pb.Code_OK || e[0].GetMessageId() != id ||
				!strings.Contains(e[0].GetStatus().GetMessage(), tt.code.String()) {
				t.Fatalf("entries %v: want OK naming %s", e, tt.code)
			}
			f.stored(t, id)
		})
	}
}

func TestRecoverUnary(t *testing.T) {
	t.Parallel()
	svc, err := New(Options{Sender: nopSender{}})
	if err != nil {
		t.Fatal(err)
	}
	_, err = svc.recoverUnary(context.Background(), nil, &grpc.UnaryServerInfo{FullMethod: "/x/Y"},
		func(context.Context, any) (any, error) { panic("boom") })
	if status.Code(err) != codes.Internal {
		t.Fatalf("a panicking handler answered %v, want INTERNAL", err)
	}
}
