package daemon

import (
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"

	"github.com/producerd/producerd/api/producerdpb"
	"github.com/producerd/producerd/core"
	"github.com/producerd/producerd/internal/rmqtest"
	"github.com/producerd/producerd/internal/rmqtest/readback"
)

// TestIntegrationTracing: against the real cluster, the caller's trace id is on the
// send and attempt spans (in-memory exporter) and in the traceparent property of the
// message read back from the broker.
func TestIntegrationTracing(t *testing.T) {
	c := rmqtest.Require(t)
	const topic = "IT_Daemon"
	rc := readback.Client(t)
	from := readback.Mark(t, rc, c, topic, 4)
	d, exp := startTraced(t, configText(c.NameServer, "it-tracing", "rr", 100))
	grpcAddr, _, _ := d.Addrs()
	cc, err := grpc.NewClient(grpcAddr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer cc.Close()
	ctx := metadata.AppendToOutgoingContext(callCtx(t), "traceparent", callerTP)
	res, err := producerdpb.NewIngressClient(cc).Send(ctx, &producerdpb.SendRequest{Message: &producerdpb.Message{
		Topic: topic, Body: []byte("traced on the real broker")}})
	if err != nil {
		t.Fatal(err)
	}
	id := res.GetResult().GetMsgId()
	m := readback.Find(t, rc, topic, from, func(m *core.MessageExt) bool { return m.UniqKey() == id })
	checkSendTrace(t, exp, id, m.Properties["traceparent"])
	t.Logf("stored %s on %s with traceparent %s", id, res.GetResult().GetBroker(), m.Properties["traceparent"])
}
