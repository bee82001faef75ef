package rmqv2

import (
	"context"
	"errors"
	"fmt"
	"net"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/protobuf/types/known/durationpb"

	pb "github.com/producerd/producerd/api/rmqv2"
	"github.com/producerd/producerd/core"
	"github.com/producerd/producerd/remoting"
)

// fakeTx records what the service asks of the daemon's transaction machinery.
type fakeTx struct {
	mu     sync.Mutex
	begun  []*core.Message
	client string
	ends   []string // "handle topic state"
	endErr error
}

func (f *fakeTx) Begin(_ context.Context, client string, m *core.Message) (string, *core.Transaction, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.begun = append(f.begun, m)
	f.client = client
	return fmt.Sprintf("handle-%d", len(f.begun)), &core.Transaction{ID: m.UniqKey, MsgID: m.UniqKey, Topic: m.Topic, TranStateTableOffset: 42}, nil
}

func (f *fakeTx) End(_ context.Context, _, handle, topic string, state core.TransactionState) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.ends = append(f.ends, fmt.Sprintf("%s %s %s", handle, topic, state))
	return f.endErr
}

// noSender fails every plain send: the transaction tests send none.
type noSender struct{}

func (noSender) Send(context.Context, *core.Message) (*core.SendResult, error) {
	return nil, errors.New("unexpected send")
}

func (noSender) SendBatch(context.Context, []*core.Message) (*core.SendResult, error) {
	return nil, errors.New("unexpected send")
}

func startTx(t *testing.T, opts Options) (*Service, pb.MessagingServiceClient) {
	t.Helper()
	opts.Sender = noSender{}
	return serve(t, opts)
}

// serve runs the service with opts on a loopback listener and returns a client of it.
func serve(t testing.TB, opts Options) (*Service, pb.MessagingServiceClient) {
	t.Helper()
	svc, addr := listen(t, opts)
	return svc, pb.NewMessagingServiceClient(dial(t, addr))
}

// listen runs the service with opts on a loopback listener until the test ends and
// returns it with the listener's address.
func listen(t testing.TB, opts Options) (*Service, string) {
	t.Helper()
	svc, err := New(opts)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	gs := grpc.NewServer(svc.ServerOptions()...)
	svc.Register(gs)
	go func() { _ = gs.Serve(ln) }()
	t.Cleanup(func() { svc.Close(); gs.Stop() })
	return svc, ln.Addr().String()
}

// dial is a plaintext client connection to addr, closed at the end of the test.
func dial(t testing.TB, addr string) *grpc.ClientConn {
	t.Helper()
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	return conn
}

func txMsg(id string) *pb.Message {
	m := msg(id)
	m.SystemProperties.MessageType = pb.MessageType_TRANSACTION
	return m
}

// TestTransactionSendAndEnd: a TRANSACTION message begins a transaction whose handle is
// the answered transaction id; EndTransaction ends it through Transactions with the
// request's topic and resolution; failures map to the codes the SDKs know.
func TestTransactionSendAndEnd(t *testing.T) {
	t.Parallel()
	ft := &fakeTx{}
	_, client := startTx(t, Options{Transactions: ft})

	route, err := client.QueryRoute(call(t), &pb.QueryRouteRequest{Topic: &pb.Resource{Name: topic}})
	if err != nil || len(route.GetMessageQueues()) != 1 {
		t.Fatalf("QueryRoute: %v %v", route, err)
	}
	if types := route.MessageQueues[0].GetAcceptMessageTypes(); len(types) != 4 || types[3] != pb.MessageType_TRANSACTION {
		t.Errorf("accept types %v, want TRANSACTION among them", types)
	}

	m := txMsg("TX1")
	m.SystemProperties.OrphanedTransactionRecoveryDuration = durationpb.New(30 * time.Second)
	resp, err := client.SendMessage(call(t), &pb.SendMessageRequest{Messages: []*pb.Message{m}})
	if err != nil || resp.GetStatus().GetCode() != pb.Code_OK || len(resp.GetEntries()) != 1 {
		t.Fatalf("SendMessage: %v %v", resp, err)
	}
	e := resp.Entries[0]
	if e.GetTransactionId() != "handle-1" || e.GetMessageId() != "TX1" || e.GetOffset() != 42 {
		t.Errorf("entry %v, want transaction id handle-1, message id TX1, offset 42", e)
	}
	ft.mu.Lock()
	begun, client0 := ft.begun[0], ft.client
	ft.mu.Unlock()
	if begun.Properties[core.PropertyCheckImmunity] != "30" || client0 != "test@1@0@abc" {
		t.Errorf("begun with properties %v by %q, want CHECK_IMMUNITY_TIME_IN_SECONDS=30 by the caller", begun.Properties, client0)
	}

	end := func(id string, res pb.TransactionResolution) pb.Code {
		t.Helper()
		r, err := client.EndTransaction(call(t), &pb.EndTransactionRequest{Topic: &pb.Resource{Name: topic}, MessageId: "TX1",
			TransactionId: id, Resolution: res, Source: pb.TransactionSource_SOURCE_CLIENT})
		if err != nil {
			t.Fatalf("EndTransaction: gRPC error %v", err)
		}
		return r.GetStatus().GetCode()
	}
	if c := end("handle-1", pb.TransactionResolution_COMMIT); c != pb.Code_OK {
		t.Errorf("commit: %v", c)
	}
	if c := end("", pb.TransactionResolution_COMMIT); c != pb.Code_INVALID_TRANSACTION_ID {
		t.Errorf("blank id: %v, want INVALID_TRANSACTION_ID", c)
	}
	if c := end("handle-1", pb.TransactionResolution_TRANSACTION_RESOLUTION_UNSPECIFIED); c != pb.Code_OK {
		t.Errorf("unspecified resolution: %v, want OK (nothing ended)", c)
	}
	ft.mu.Lock()
	ft.endErr = fmt.Errorf("%w: gone", ErrUnknownTransaction)
	ft.mu.Unlock()
	if c := end("handle-1", pb.TransactionResolution_ROLLBACK); c != pb.Code_INVALID_TRANSACTION_ID {
		t.Errorf("unknown transaction: %v, want INVALID_TRANSACTION_ID", c)
	}
	ft.mu.Lock()
	ft.endErr = &remoting.Error{Addr: "b", Code: remoting.SystemError, Remark: "Find prepared transaction message failed"}
	ft.mu.Unlock()
	if c := end("handle-1", pb.TransactionResolution_ROLLBACK); c != pb.Code_INTERNAL_SERVER_ERROR {
		t.Errorf("broker refusal: %v, want INTERNAL_SERVER_ERROR", c)
	}
	ft.mu.Lock()
	ends := fmt.Sprint(ft.ends)
	ft.mu.Unlock()
	want := fmt.Sprintf("[handle-1 %[1]s COMMIT handle-1 %[1]s ROLLBACK handle-1 %[1]s ROLLBACK]", topic)
	if ends != want {
		t.Errorf("ends %s, want %s (an UNSPECIFIED resolution ends nothing)", ends, want)
	}

	for _, tc := range []struct {
		name string
		msgs func() []*pb.Message
		want pb.Code
	}{
		{"batch", func() []*pb.Message { return []*pb.Message{txMsg("a"), txMsg("b")} }, pb.Code_MESSAGE_CORRUPTED},
		{"with a group", func() []*pb.Message {
			m := txMsg("g")
			g := "grp"
			m.SystemProperties.MessageGroup = &g
			return []*pb.Message{m}
		}, pb.Code_MESSAGE_PROPERTY_CONFLICT_WITH_TYPE},
		{"recovery over an hour", func() []*pb.Message {
			m := txMsg("r")
			m.SystemProperties.OrphanedTransactionRecoveryDuration = durationpb.New(2 * time.Hour)
			return []*pb.Message{m}
		}, pb.Code_BAD_REQUEST},
	} {
		r, err := client.SendMessage(call(t), &pb.SendMessageRequest{Messages: tc.msgs()})
		if err != nil || r.GetStatus().GetCode() != tc.want {
			t.Errorf("%s: %v %v, want %v", tc.name, r.GetStatus(), err, tc.want)
		}
	}
}

// TestTransactionCheckReachesTelemetry: a check-back goes to a client whose Settings publish
// to its topic as RecoverOrphanedTransactionCommand; the client's EndTransaction for the
// check's transaction id answers it, and is answered with the broker's verdict. Without
// a session the check is not taken; without an answer it ends UNKNOWN.
func TestTransactionCheckReachesTelemetry(t *testing.T) {
	t.Parallel()
	// The daemon holds no transaction under a check's id.
	svc, client := startTx(t, Options{Transactions: &fakeTx{endErr: ErrUnknownTransaction}, CheckTimeout: 100 * time.Millisecond})
	ctx := context.Background()
	chk := &core.TransactionCheck{ID: "UNIQ1", MsgID: "UNIQ1", Topic: topic, Body: []byte("half"), Tags: "t",
		Properties: map[string]string{"case": "x"}, Born: time.Now()}
	if _, ok := svc.CheckTransaction(ctx, chk, ""); ok {
		t.Fatal("a check was taken with no client session")
	}

	stream, err := client.Telemetry(call(t))
	if err != nil {
		t.Fatal(err)
	}
	if err := stream.Send(&pb.TelemetryCommand{Command: &pb.TelemetryCommand_Settings{Settings: &pb.Settings{
		PubSub: &pb.Settings_Publishing{Publishing: &pb.Publishing{Topics: []*pb.Resource{{Name: topic}}}}}}}); err != nil {
		t.Fatal(err)
	}
	if _, err := stream.Recv(); err != nil { // the settings answer: the session knows its topics
		t.Fatal(err)
	}

	// Unanswered: UNKNOWN, taken.
	if st, ok := svc.CheckTransaction(ctx, chk, ""); !ok || st != core.TransactionUnknown {
		t.Fatalf("unanswered check: %v %v, want UNKNOWN taken", st, ok)
	}
	if _, err := stream.Recv(); err != nil { // its command
		t.Fatal(err)
	}

	svc.opts.CheckTimeout = time.Minute
	type result struct {
		state core.TransactionState
		ok    bool
	}
	checked := make(chan result, 1)
	go func() {
		st, ok := svc.CheckTransaction(ctx, chk, "")
		checked <- result{st, ok}
	}()
	cmd, err := stream.Recv()
	if err != nil {
		t.Fatal(err)
	}
	rec := cmd.GetRecoverOrphanedTransactionCommand()
	if rec == nil || rec.GetTransactionId() == "" || rec.GetMessage().GetSystemProperties().GetMessageId() != "UNIQ1" ||
		string(rec.GetMessage().GetBody()) != "half" || rec.GetMessage().GetUserProperties()["case"] != "x" ||
		rec.GetMessage().GetSystemProperties().GetMessageType() != pb.MessageType_TRANSACTION {
		t.Fatalf("command %v", cmd)
	}
	ended := make(chan *pb.EndTransactionResponse, 1)
	go func() {
		r, err := client.EndTransaction(call(t), &pb.EndTransactionRequest{Topic: &pb.Resource{Name: topic}, MessageId: "UNIQ1",
			TransactionId: rec.GetTransactionId(), Resolution: pb.TransactionResolution_COMMIT, Source: pb.TransactionSource_SOURCE_SERVER_CHECK})
		if err != nil {
			t.Error(err)
		}
		ended <- r
	}()
	res := <-checked
	if !res.ok || res.state != core.TransactionCommit {
		t.Fatalf("answered check: %v %v, want COMMIT", res.state, res.ok)
	}
	select {
	case r := <-ended:
		t.Fatalf("EndTransaction answered %v before the broker's verdict", r)
	default:
	}
	chk.Answered(&remoting.Error{Addr: "b", Code: remoting.SystemError, Remark: "The commit log offset wrong"})
	if r := <-ended; r.GetStatus().GetCode() != pb.Code_INTERNAL_SERVER_ERROR {
		t.Errorf("EndTransaction after a broker refusal: %v, want INTERNAL_SERVER_ERROR", r.GetStatus())
	}
	// The check's id is spent.
	r, err := client.EndTransaction(call(t), &pb.EndTransactionRequest{Topic: &pb.Resource{Name: topic},
		TransactionId: rec.GetTransactionId(), Resolution: pb.TransactionResolution_COMMIT, Source: pb.TransactionSource_SOURCE_SERVER_CHECK})
	if err != nil || r.GetStatus().GetCode() != pb.Code_INVALID_TRANSACTION_ID {
		t.Errorf("a second answer to a check: %v %v, want INVALID_TRANSACTION_ID", r.GetStatus(), err)
	}
}

// recallSender is a Sender that recalls.
type recallSender struct {
	noSender
	err error
}

func (r recallSender) RecallMessage(_ context.Context, topic, handle string) (string, error) {
	return "id-of-" + handle, r.err
}

var (
	_ Recaller = (*core.Producer)(nil)
	_ Recaller = recallSender{}
)

// TestRecallMessage: RecallMessage goes to the Sender's Recaller and answers its message
// id; an empty handle, a malformed one, a broker refusal and a Sender without recall get
// the codes the SDKs map.
func TestRecallMessage(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name   string
		sender Sender
		handle string
		want   pb.Code
	}{
		{"recalled", recallSender{}, "h1", pb.Code_OK},
		{"empty handle", recallSender{}, "", pb.Code_BAD_REQUEST},
		{"malformed handle", recallSender{err: fmt.Errorf("x: %w", &core.ValidationError{Rule: "recall.handle"})}, "h", pb.Code_BAD_REQUEST},
		{"broker refusal", recallSender{err: &remoting.Error{Code: remoting.SystemError}}, "h", pb.Code_INTERNAL_SERVER_ERROR},
		{"recall disabled", recallSender{err: &remoting.Error{Code: remoting.NoPermission, Remark: "recall failed, operation is forbidden"}}, "h", pb.Code_FORBIDDEN},
		{"old broker", recallSender{err: &remoting.Error{Code: remoting.RequestCodeNotSupported}}, "h", pb.Code_NOT_IMPLEMENTED},
		{"no recaller", noSender{}, "h", pb.Code_NOT_IMPLEMENTED},
	} {
		svc, err := New(Options{Sender: tc.sender})
		if err != nil {
			t.Fatal(err)
		}
		ctx := metadata.NewIncomingContext(context.Background(), metadata.Pairs("x-mq-client-id", "c"))
		r, err := svc.RecallMessage(ctx, &pb.RecallMessageRequest{Topic: &pb.Resource{Name: topic}, RecallHandle: tc.handle})
		if err != nil || r.GetStatus().GetCode() != tc.want {
			t.Errorf("%s: %v %v, want %v", tc.name, r.GetStatus(), err, tc.want)
		}
		if tc.want == pb.Code_OK && r.GetMessageId() != "id-of-h1" {
			t.Errorf("%s: message id %q", tc.name, r.GetMessageId())
		}
	}
}
