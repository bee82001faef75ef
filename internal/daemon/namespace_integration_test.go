package daemon

import (
	"slices"
	"testing"

	"github.com/hashicorp/go-hclog"

	"github.com/producerd/producerd/api/producerdpb"
	"github.com/producerd/producerd/core"
	"github.com/producerd/producerd/internal/rmqtest"
	"github.com/producerd/producerd/internal/rmqtest/readback"
)

// TestIntegrationNamespace: a group with namespace "ns1" sends to IT_NS through the
// daemon; the message is stored in ns1%IT_NS with INSTANCE_ID=ns1, while the API result
// and the status show IT_NS and the bare group name.
func TestIntegrationNamespace(t *testing.T) {
	c := rmqtest.Require(t)
	const topic, wire = "IT_NS", "ns1%IT_NS"
	rc := readback.Client(t)
	createTopic(t, rc, c, wire)
	from := readback.Mark(t, rc, c, wire, 4)

	h := startDaemon(t, configText(c.NameServer, "it-ns", "rr", 100)+"namespace = \"ns1\"\n", hclog.Info)
	ctx := callCtx(t)
	res, err := h.ingress.Send(ctx, &producerdpb.SendRequest{Message: &producerdpb.Message{
		Topic: topic, Body: []byte("namespaced")}})
	if err != nil {
		t.Fatal(err)
	}
	if got := res.GetResult().GetTopic(); got != topic {
		t.Errorf("result topic %q, want %q", got, topic)
	}
	id := res.GetResult().GetMsgId()
	m := readback.Find(t, rc, wire, from, func(m *core.MessageExt) bool { return m.UniqKey() == id })
	if m.Topic != wire || m.Properties[core.PropertyInstanceID] != "ns1" {
		t.Errorf("stored in %q with INSTANCE_ID %q, want %q and ns1", m.Topic, m.Properties[core.PropertyInstanceID], wire)
	}
	st := h.d.Status()
	var topics, groups []string
	for _, cs := range st.GetClients() {
		groups = append(groups, cs.GetGroups()...)
		for _, r := range cs.GetRoutes() {
			topics = append(topics, r.GetTopic())
		}
	}
	if !slices.Contains(topics, topic) || slices.Contains(topics, wire) || !slices.Contains(groups, "g1") {
		t.Errorf("status shows topics %v and groups %v, want %s and g1 without the namespace", topics, groups, topic)
	}
	t.Logf("namespace ns1: result topic %s, stored in %s (queue %d, INSTANCE_ID=%s), status topics %v groups %v",
		res.GetResult().GetTopic(), m.Topic, m.QueueID, m.Properties[core.PropertyInstanceID], topics, groups)
}
