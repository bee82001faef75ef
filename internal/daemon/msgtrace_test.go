package daemon

import (
	"slices"
	"strings"
	"testing"

	"github.com/producerd/producerd/api/producerdpb"
	"github.com/producerd/producerd/core"
)

// TestMessageTraceDevBroker: a unary and a streamed (async) send of a group with
// message_trace each leave a Pub record with their message id in the trace topic, whose
// KEYS hold every id of its records.
func TestMessageTraceDevBroker(t *testing.T) {
	c := startCluster(t)
	h := startText(t, c, configText(c.NameServerAddr(), instanceName(t), "rr", 100)+"message_trace = true\n")
	var ids []string
	res, err := h.ingress.Send(callCtx(t), &producerdpb.SendRequest{Message: &producerdpb.Message{Topic: testTopic, Body: []byte("unary"), Keys: []string{"k1"}}})
	if err != nil {
		t.Fatal(err)
	}
	ids = append(ids, res.GetResult().GetMsgId())
	st, err := h.ingress.SendStream(callCtx(t))
	if err != nil {
		t.Fatal(err)
	}
	if err := st.Send(&producerdpb.StreamRequest{Id: "s", Message: &producerdpb.Message{Topic: testTopic, Body: []byte("streamed")}}); err != nil {
		t.Fatal(err)
	}
	ack, err := st.Recv()
	if err != nil || ack.GetResult() == nil {
		t.Fatalf("ack %v: %v", ack, err)
	}
	_ = st.CloseSend()
	ids = append(ids, ack.GetResult().GetMsgId())

	records := map[string]core.TraceRecord{}
	waitFor(t, "the trace records", func() bool {
		for _, m := range stored(c, core.DefaultTraceTopic) {
			recs, err := core.DecodeTraceRecords(m.Body)
			if err != nil {
				t.Fatal(err)
			}
			for _, r := range recs {
				if !slices.Contains(strings.Fields(m.Properties[core.PropertyKeys]), r.MsgID) {
					t.Errorf("KEYS %q lack %s", m.Properties[core.PropertyKeys], r.MsgID)
				}
				records[r.MsgID] = r
			}
		}
		return len(records) >= len(ids)
	})
	for _, id := range ids {
		r, ok := records[id]
		if !ok || r.Group != "g1" || r.Topic != testTopic || !r.Success {
			t.Errorf("record of %s: %+v (found %v)", id, r, ok)
		}
	}
	if got := strings.Join(records[ids[0]].Keys, " "); got != "k1" {
		t.Errorf("keys %q", got)
	}
}
