package daemon

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/producerd/producerd/api/producerdpb"
	"github.com/producerd/producerd/core"
	"github.com/producerd/producerd/internal/rmqtest"
	"github.com/producerd/producerd/internal/rmqtest/readback"
	"github.com/producerd/producerd/remoting"
)

// TestIntegrationMessageTrace: with message_trace on, a message sent through the daemon
// gets a Pub record in RMQ_SYS_TRACE_TOPIC, read back from the real brokers and decoded
// as the Java client writes it (KEYS holding the message id, 14 fields), and, where the
// cluster's Java classpath is at hand, found by `mqadmin queryMsgTraceById`.
//
// The test cluster's brokers run without traceTopicEnable and refuse to create a system
// topic through UPDATE_AND_CREATE_TOPIC ("conflict with system topic"), so the trace
// topic comes from the first trace send, auto-created through TBW102
// (autoCreateTopicEnable=true), as it does for a Java producer on such a cluster.
func TestIntegrationMessageTrace(t *testing.T) {
	c := rmqtest.Require(t)
	const topic = "IT_Daemon"
	rc := readback.Client(t)
	before := traceMarks(rc, c)

	h := startDaemon(t, configText(c.NameServer, "it-msgtrace", "rr", 100)+"message_trace = true\n", hclog.Info)
	ctx := callCtx(t)
	res, err := h.ingress.Send(ctx, &producerdpb.SendRequest{Message: &producerdpb.Message{
		Topic: topic, Body: []byte("traced"), Tags: "tagA", Keys: []string{"order-1", "customer-2"}}})
	if err != nil {
		t.Fatal(err)
	}
	r := res.GetResult()
	id := r.GetMsgId()

	// The first trace send auto-creates the topic (TBW102) if it is new.
	var from readback.Marks
	waitFor(t, "a route of "+core.DefaultTraceTopic, func() bool {
		from = traceMarks(rc, c)
		return len(from) > 0
	})
	for q := range from {
		if off, ok := before[q]; ok {
			from[q] = off
		} else {
			from[q] = 0 // created by this test's send
		}
	}
	m := readback.Find(t, rc, core.DefaultTraceTopic, from, func(m *core.MessageExt) bool {
		return slices.Contains(strings.Fields(m.Properties[core.PropertyKeys]), id)
	})
	records, err := core.DecodeTraceRecords(m.Body)
	if err != nil {
		t.Fatal(err)
	}
	i := slices.IndexFunc(records, func(rec core.TraceRecord) bool { return rec.MsgID == id })
	if i < 0 {
		t.Fatalf("no record of %s in the trace message %q", id, m.Body)
	}
	rec := records[i]
	addr := c.Broker(t, r.GetBroker()).Addr
	if rec.Group != "g1" || rec.Topic != topic || rec.Tags != "tagA" || strings.Join(rec.Keys, " ") != "order-1 customer-2" ||
		rec.OffsetMsgID != r.GetOffsetMsgId() || !rec.Success || rec.StoreHost != addr || rec.BodyLength != len("traced") ||
		rec.Region == "" || rec.MsgType != core.TraceNormalMsg {
		t.Errorf("record %+v\nwant group g1, topic %s, tags tagA, keys [order-1 customer-2], offsetMsgId %s, success, host %s, 6 bytes",
			rec, topic, r.GetOffsetMsgId(), addr)
	}
	if !slices.Contains(strings.Fields(m.Properties[core.PropertyKeys]), "order-1") {
		t.Errorf("trace message KEYS %q lack the message's keys", m.Properties[core.PropertyKeys])
	}
	t.Logf("trace message %s in %s: KEYS %q, record %+v", m.UniqKey(), m.Topic, m.Properties[core.PropertyKeys], rec)
	if _, sent, _ := h.d.groupList()[0].tracer.Stats(); sent < 1 {
		t.Errorf("trace messages sent: %d", sent)
	}

	// The Java tool, when its classpath is here.
	cp, cperr := os.ReadFile(filepath.Join(filepath.Dir(c.Script), "cp.txt"))
	java, jerr := exec.LookPath("java")
	if cperr != nil || jerr != nil {
		t.Logf("mqadmin queryMsgTraceById not run (classpath: %v, java: %v)", cperr, jerr)
		return
	}
	mctx, mcancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer mcancel()
	out, err := exec.CommandContext(mctx, java, "-Xms64m", "-Xmx128m", "-XX:+UseSerialGC", "-XX:TieredStopAtLevel=1",
		"-Duser.home="+t.TempDir(), "-Drmq.logback.configurationFile=rmq.tools.logback.xml",
		"-cp", strings.TrimSpace(string(cp)), "org.apache.rocketmq.tools.command.MQAdminStartup",
		"queryMsgTraceById", "-i", id, "-n", c.NameServer).CombinedOutput()
	if err != nil {
		t.Fatalf("mqadmin: %v\n%s", err, out)
	}
	if !strings.Contains(string(out), "g1") || !strings.Contains(string(out), "Pub") {
		t.Fatalf("mqadmin queryMsgTraceById -i %s shows no Pub of g1:\n%s", id, out)
	}
	t.Logf("mqadmin queryMsgTraceById -i %s:\n%s", id, out)
}

// traceMarks returns the next offsets of the trace topic's queues on the brokers of its
// route now (empty while the topic does not exist).
func traceMarks(rc *remoting.Client, c *rmqtest.Cluster) readback.Marks {
	m := readback.Marks{}
	resp, err := rc.InvokeSync(context.Background(), c.NameServer,
		remoting.NewRequest(remoting.GetRouteInfoByTopic, map[string]string{"topic": core.DefaultTraceTopic}, nil))
	if err != nil || resp.Code != int32(remoting.Success) {
		return m
	}
	route, err := core.ParseTopicRoute(resp.Body)
	if err != nil {
		return m
	}
	for _, qd := range route.QueueDatas {
		for _, b := range c.Brokers {
			if b.Name != qd.BrokerName {
				continue
			}
			for id := range int32(qd.ReadQueueNums) {
				off, err := core.MaxOffset(context.Background(), rc, b.Addr, core.DefaultTraceTopic, id)
				if err != nil {
					return readback.Marks{}
				}
				m[readback.Queue{Broker: b.Name, Addr: b.Addr, ID: id}] = off
			}
		}
	}
	return m
}
