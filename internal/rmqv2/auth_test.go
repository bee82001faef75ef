package rmqv2

import (
	"context"
	"crypto/hmac"
	"crypto/sha1" //nolint:gosec // the SDKs' signature algorithm
	"encoding/hex"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/metadata"

	pb "github.com/producerd/producerd/api/rmqv2"
	"github.com/producerd/producerd/remoting"
)

// signed returns a call context with the headers an SDK sends, signed as the Java SDK
// (uppercase hex) or the Go SDK (Credential=AK//Rocketmq, lowercase hex) signs them.
func signed(t *testing.T, ak, secret string, goSDK bool, extra ...string) context.Context {
	t.Helper()
	date := time.Now().Format("20060102T150405Z")
	mac := hmac.New(sha1.New, []byte(secret))
	mac.Write([]byte(date))
	sig, cred := strings.ToUpper(hex.EncodeToString(mac.Sum(nil))), ak
	if goSDK {
		sig, cred = strings.ToLower(sig), ak+"//Rocketmq"
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	t.Cleanup(cancel)
	kv := append([]string{"x-mq-client-id", "test@1@0@abc", "x-mq-date-time", date,
		"authorization", "MQv2-HMAC-SHA1 Credential=" + cred + ", SignedHeaders=x-mq-date-time, Signature=" + sig}, extra...)
	return metadata.AppendToOutgoingContext(ctx, kv...)
}

// TestAuthentication: with credentials configured, every call must carry a valid SDK
// signature; a missing, malformed or wrong one is UNAUTHORIZED on every RPC, and a
// Telemetry stream gets the refusal as a command. The answer never shows the secret.
func TestAuthentication(t *testing.T) {
	t.Parallel()
	_, client := startTx(t, Options{Transactions: &fakeTx{}, Auth: &remoting.Credentials{AccessKey: "ak", SecretKey: "s3cr3t"}})
	route := func(ctx context.Context) *pb.Status {
		t.Helper()
		r, err := client.QueryRoute(ctx, &pb.QueryRouteRequest{Topic: &pb.Resource{Name: topic}})
		if err != nil {
			t.Fatal(err)
		}
		return r.GetStatus()
	}
	for name, ctx := range map[string]context.Context{"java": signed(t, "ak", "s3cr3t", false), "go": signed(t, "ak", "s3cr3t", true)} {
		if st := route(ctx); st.GetCode() != pb.Code_OK {
			t.Errorf("%s SDK signature: %v", name, st)
		}
	}
	noDate := metadata.AppendToOutgoingContext(context.Background(), "x-mq-client-id", "c",
		"authorization", "MQv2-HMAC-SHA1 Credential=ak, SignedHeaders=x-mq-date-time, Signature=00")
	for name, ctx := range map[string]context.Context{
		"no header":    call(t),
		"wrong secret": signed(t, "ak", "other", false),
		"wrong key":    signed(t, "bk", "s3cr3t", false),
		"no date":      noDate,
		"other scheme": metadata.AppendToOutgoingContext(call(t), "authorization", "Basic YWs6czNjcjN0"),
		"not hex":      metadata.AppendToOutgoingContext(call(t), "x-mq-date-time", "20260101T000000Z", "authorization", "MQv2-HMAC-SHA1 Credential=ak, Signature=zz"),
	} {
		st := route(ctx)
		if st.GetCode() != pb.Code_UNAUTHORIZED || strings.Contains(st.GetMessage(), "s3cr3t") {
			t.Errorf("%s: %v, want UNAUTHORIZED without the secret", name, st)
		}
	}
	bad := signed(t, "ak", "other", false)
	if r, err := client.SendMessage(bad, &pb.SendMessageRequest{Messages: []*pb.Message{msg("x")}}); err != nil || r.GetStatus().GetCode() != pb.Code_UNAUTHORIZED {
		t.Errorf("SendMessage: %v %v", r.GetStatus(), err)
	}
	if r, err := client.Heartbeat(bad, &pb.HeartbeatRequest{ClientType: pb.ClientType_PRODUCER}); err != nil || r.GetStatus().GetCode() != pb.Code_UNAUTHORIZED {
		t.Errorf("Heartbeat: %v %v", r.GetStatus(), err)
	}
	if r, err := client.EndTransaction(bad, &pb.EndTransactionRequest{Topic: &pb.Resource{Name: topic}, TransactionId: "h"}); err != nil || r.GetStatus().GetCode() != pb.Code_UNAUTHORIZED {
		t.Errorf("EndTransaction: %v %v", r.GetStatus(), err)
	}
	stream, err := client.Telemetry(bad)
	if err != nil {
		t.Fatal(err)
	}
	cmd, err := stream.Recv()
	if err != nil || cmd.GetStatus().GetCode() != pb.Code_UNAUTHORIZED {
		t.Errorf("Telemetry: %v %v, want an UNAUTHORIZED command", cmd, err)
	}
}

// TestNamespace: the listener serves its producer group's namespace; calls naming it or
// none pass, calls naming another are FORBIDDEN (header or resource), settings publishing
// to another namespace end the stream, and a check-back names the namespace.
func TestNamespace(t *testing.T) {
	t.Parallel()
	_, client := startTx(t, Options{Transactions: &fakeTx{}, Namespace: "ns1"})
	for _, tc := range []struct {
		name, header, resource string
		want                   pb.Code
	}{
		{"none", "", "", pb.Code_OK},
		{"served", "ns1", "ns1", pb.Code_OK},
		{"other resource", "", "ns2", pb.Code_FORBIDDEN},
		{"other header", "ns2", "ns1", pb.Code_FORBIDDEN},
	} {
		ctx := call(t)
		if tc.header != "" {
			ctx = metadata.AppendToOutgoingContext(ctx, "x-mq-namespace", tc.header)
		}
		r, err := client.QueryRoute(ctx, &pb.QueryRouteRequest{Topic: &pb.Resource{ResourceNamespace: tc.resource, Name: topic}})
		if err != nil || r.GetStatus().GetCode() != tc.want {
			t.Errorf("%s: %v %v, want %v", tc.name, r.GetStatus(), err, tc.want)
		}
		m := txMsg("n-" + tc.name)
		m.Topic.ResourceNamespace = tc.resource
		s, err := client.SendMessage(ctx, &pb.SendMessageRequest{Messages: []*pb.Message{m}})
		if err != nil || s.GetStatus().GetCode() != tc.want {
			t.Errorf("%s send: %v %v, want %v", tc.name, s.GetStatus(), err, tc.want)
		}
	}
	stream, err := client.Telemetry(call(t))
	if err != nil {
		t.Fatal(err)
	}
	if err := stream.Send(&pb.TelemetryCommand{Command: &pb.TelemetryCommand_Settings{Settings: &pb.Settings{
		PubSub: &pb.Settings_Publishing{Publishing: &pb.Publishing{Topics: []*pb.Resource{{ResourceNamespace: "ns2", Name: topic}}}}}}}); err != nil {
		t.Fatal(err)
	}
	if _, err := stream.Recv(); err == nil {
		t.Error("settings publishing to another namespace were accepted")
	}
}
