package daemon

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	"github.com/hashicorp/go-hclog"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"

	"github.com/producerd/producerd/api/producerdpb"
)

// Caller trace contexts of the tests: W3C traceparent values.
const (
	callerTraceID = "4bf92f3577b34da6a3ce929d0e0e4736"
	callerSpanID  = "00f067aa0ba902b7"
	callerTP      = "00-" + callerTraceID + "-" + callerSpanID + "-01"
)

// startTraced runs a daemon whose spans go to an in-memory exporter.
func startTraced(t *testing.T, text string) (*Daemon, *tracetest.InMemoryExporter) {
	t.Helper()
	exp := tracetest.NewInMemoryExporter()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(exp))
	h := startDaemon(t, text, hclog.Info, func(o *Options) { o.TracerProvider = tp })
	return h.d, exp
}

// checkSendTrace checks the spans of the send of msgID: a send span in the caller's
// trace, child of the caller's span, with an attempt span under it; and the stored
// traceparent property, which names the send span.
func checkSendTrace(t *testing.T, exp *tracetest.InMemoryExporter, msgID, storedTP string) {
	t.Helper()
	var send *tracetest.SpanStub
	spans := exp.GetSpans()
	for i, s := range spans {
		for _, a := range s.Attributes {
			if a.Key == "messaging.message.id" && a.Value.AsString() == msgID {
				send = &spans[i]
			}
		}
	}
	if send == nil {
		t.Fatalf("no send span with message id %s among %d spans", msgID, len(spans))
	}
	if send.SpanContext.TraceID().String() != callerTraceID || send.Parent.SpanID().String() != callerSpanID || send.SpanKind != trace.SpanKindProducer {
		t.Errorf("send span %s: trace %s parent %s kind %v, want trace %s parent %s producer", send.Name,
			send.SpanContext.TraceID(), send.Parent.SpanID(), send.SpanKind, callerTraceID, callerSpanID)
	}
	attempts := 0
	for _, s := range spans {
		if s.Parent.SpanID() == send.SpanContext.SpanID() && strings.HasPrefix(s.Name, "attempt ") {
			attempts++
			if s.SpanContext.TraceID().String() != callerTraceID {
				t.Errorf("attempt span in trace %s", s.SpanContext.TraceID())
			}
		}
	}
	if attempts == 0 {
		t.Errorf("no attempt span under the send span")
	}
	if want := "00-" + callerTraceID + "-" + send.SpanContext.SpanID().String() + "-01"; storedTP != want {
		t.Errorf("stored traceparent %q, want %q (the send span)", storedTP, want)
	}
}

// TestTracingDevBroker: gRPC (metadata) and HTTP (header) callers' traceparent parents
// the send and attempt spans, and the stored message carries the send span's context.
func TestTracingDevBroker(t *testing.T) {
	c := startCluster(t)
	d, exp := startTraced(t, httpConfig(c.NameServerAddr(), instanceName(t), ""))
	grpcAddr, httpAddr, _ := d.Addrs()
	cc, err := grpc.NewClient(grpcAddr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer cc.Close()
	ctx := metadata.AppendToOutgoingContext(callCtx(t), "traceparent", callerTP)
	res, err := producerdpb.NewIngressClient(cc).Send(ctx, &producerdpb.SendRequest{Message: &producerdpb.Message{
		Topic: testTopic, Body: []byte("traced grpc"), Properties: map[string]string{"k": "v"}}})
	if err != nil {
		t.Fatal(err)
	}
	m := stored(c, testTopic)[res.GetResult().GetMsgId()]
	if m.Properties["k"] != "v" {
		t.Errorf("user property lost: %v", m.Properties)
	}
	checkSendTrace(t, exp, res.GetResult().GetMsgId(), m.Properties["traceparent"])

	req, _ := http.NewRequest("POST", "http://"+httpAddr+"/v1/messages", strings.NewReader(`{"topic":"TopicTest","body":"traced http"}`))
	req.Header.Set("traceparent", callerTP)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var hr HTTPResponse
	if err := jsonDecode(resp.Body, &hr); err != nil || hr.Result == nil {
		t.Fatalf("HTTP %d: %v %+v", resp.StatusCode, err, hr)
	}
	checkSendTrace(t, exp, hr.Result.MsgID, stored(c, testTopic)[hr.Result.MsgID].Properties["traceparent"])

	// Without a caller's context the send span starts a trace of its own.
	res, err = producerdpb.NewIngressClient(cc).Send(callCtx(t), &producerdpb.SendRequest{Message: &producerdpb.Message{Topic: testTopic, Body: []byte("root")}})
	if err != nil {
		t.Fatal(err)
	}
	if tp := stored(c, testTopic)[res.GetResult().GetMsgId()].Properties["traceparent"]; tp == "" || strings.Contains(tp, callerTraceID) {
		t.Errorf("root send: traceparent %q", tp)
	}
}

// TestTracingOff: without [tracing] no trace property is added.
func TestTracingOff(t *testing.T) {
	c := startCluster(t)
	h := startText(t, c, httpConfig(c.NameServerAddr(), instanceName(t), ""))
	ctx := metadata.AppendToOutgoingContext(callCtx(t), "traceparent", callerTP)
	res, err := h.ingress.Send(ctx, &producerdpb.SendRequest{Message: &producerdpb.Message{Topic: testTopic, Body: []byte("x")}})
	if err != nil {
		t.Fatal(err)
	}
	if tp, ok := stored(c, testTopic)[res.GetResult().GetMsgId()].Properties["traceparent"]; ok {
		t.Fatalf("traceparent %q with tracing off", tp)
	}
}

func jsonDecode(r interface{ Read([]byte) (int, error) }, v any) error {
	return json.NewDecoder(r).Decode(v)
}

// TestTracingStream: a streamed message's send span is in the stream's caller's trace
// and has its attempt spans; the stored message carries the send span.
func TestTracingStream(t *testing.T) {
	c := startCluster(t)
	d, exp := startTraced(t, httpConfig(c.NameServerAddr(), instanceName(t), ""))
	grpcAddr, _, _ := d.Addrs()
	cc, err := grpc.NewClient(grpcAddr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer cc.Close()
	ctx := metadata.AppendToOutgoingContext(callCtx(t), "traceparent", callerTP)
	st, err := producerdpb.NewIngressClient(cc).SendStream(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := st.Send(&producerdpb.StreamRequest{Id: "1", Message: &producerdpb.Message{Topic: testTopic, Body: []byte("streamed")}}); err != nil {
		t.Fatal(err)
	}
	ack, err := st.Recv()
	if err != nil || ack.GetResult() == nil {
		t.Fatalf("ack %v: %v", ack, err)
	}
	_ = st.CloseSend()
	id := ack.GetResult().GetMsgId()
	waitFor(t, "the attempt span", func() bool {
		for _, s := range exp.GetSpans() {
			if strings.HasPrefix(s.Name, "attempt ") {
				return true
			}
		}
		return false
	})
	checkSendTrace(t, exp, id, stored(c, testTopic)[id].Properties["traceparent"])
}
