package daemon

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/producerd/producerd/api/producerdpb"
	"github.com/producerd/producerd/core"
	"github.com/producerd/producerd/internal/rmqtest"
	"github.com/producerd/producerd/internal/rmqtest/readback"
	"github.com/producerd/producerd/internal/testwait"
	"github.com/producerd/producerd/remoting"
)

const txITTopic = "IT_Daemon"

// realTxDaemon starts a daemon in front of the real cluster with a producer group of its
// own (so no other test's daemon is asked this group's check-backs).
func realTxDaemon(t *testing.T, c *rmqtest.Cluster) (*harness, string) {
	t.Helper()
	group := fmt.Sprintf("it_tx_%s_%d", strings.ToLower(t.Name()[len("TestIntegrationDaemonTx"):]), time.Now().UnixNano()%1e9)
	h := startDaemon(t, strings.Replace(configText(c.NameServer, group, "rr", 1000), `group = "g1"`, "group = "+strconv.Quote(group), 1), hclog.Info)
	return h, group
}

// brokerCheckWait reads transactionTimeOut and transactionCheckInterval from the running
// brokers: a check-back comes within timeout + interval; twice the interval plus slack
// covers a round that was already running.
func brokerCheckWait(t *testing.T, rc *remoting.Client, c *rmqtest.Cluster) time.Duration {
	t.Helper()
	var worst time.Duration
	for _, b := range c.Brokers {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		resp, err := rc.InvokeSync(ctx, b.Addr, remoting.NewRequest(26, nil, nil)) // GET_BROKER_CONFIG
		cancel()
		if err != nil || resp.Code != 0 {
			t.Fatalf("broker config of %s: %v %v", b.Name, err, resp)
		}
		ms := map[string]time.Duration{}
		for _, line := range strings.Split(string(resp.Body), "\n") {
			if k, v, ok := strings.Cut(strings.TrimSpace(line), "="); ok {
				if n, err := strconv.ParseInt(v, 10, 64); err == nil {
					ms[k] = time.Duration(n) * time.Millisecond
				}
			}
		}
		if w := ms["transactionTimeOut"] + 2*ms["transactionCheckInterval"] + 10*time.Second; w > worst {
			worst = w
		}
	}
	t.Logf("check-back wait %v (from the brokers' transactionTimeOut and transactionCheckInterval)", worst)
	return worst
}

// deliveredCount counts the messages of topic since m with each UNIQ_KEY of ids.
func deliveredCount(t *testing.T, rc *remoting.Client, m readback.Marks, ids ...string) map[string]int {
	t.Helper()
	out := map[string]int{}
	readback.Scan(t, rc, txITTopic, m, func(x *core.MessageExt) bool {
		for _, id := range ids {
			if x.UniqKey() == id {
				out[id]++
			}
		}
		return false
	})
	return out
}

// TestIntegrationDaemonTxCommitRollback: through the daemon's gRPC API, a committed
// transaction is delivered once and a rolled-back one never.
func TestIntegrationDaemonTxCommitRollback(t *testing.T) {
	t.Parallel()
	c := rmqtest.Require(t)
	h, _ := realTxDaemon(t, c)
	rc := readback.Client(t)
	marks := readback.Mark(t, rc, c, txITTopic, 4)
	ctx := callCtx(t)
	var ids []string
	for i, res := range []producerdpb.TransactionResolution{
		producerdpb.TransactionResolution_TRANSACTION_RESOLUTION_COMMIT,
		producerdpb.TransactionResolution_TRANSACTION_RESOLUTION_ROLLBACK,
		producerdpb.TransactionResolution_TRANSACTION_RESOLUTION_COMMIT, // the marker
	} {
		b, err := h.ingress.BeginTransaction(ctx, &producerdpb.BeginTransactionRequest{Message: &producerdpb.Message{
			Topic: txITTopic, Body: fmt.Appendf(nil, "daemon tx %d", i)}})
		if err != nil {
			t.Fatalf("begin: %v", err)
		}
		if _, err := h.ingress.EndTransaction(ctx, &producerdpb.EndTransactionRequest{TransactionId: b.GetTransactionId(), Resolution: res}); err != nil {
			t.Fatalf("end: %v", err)
		}
		ids = append(ids, b.GetResult().GetMsgId())
	}
	if n := readback.Missing(t, rc, txITTopic, marks, []string{ids[0], ids[2]}); n != 0 {
		t.Fatalf("%d committed transactions not delivered", n)
	}
	got := deliveredCount(t, rc, marks, ids...)
	t.Logf("read back: committed %d, rolled back %d, marker %d", got[ids[0]], got[ids[1]], got[ids[2]])
	if got[ids[0]] != 1 || got[ids[1]] != 0 || got[ids[2]] != 1 {
		t.Fatalf("read back %v, want 1 0 1", got)
	}
}

// TestIntegrationDaemonTxCrashCheckBack: an application begins a transaction and dies
// (its connection closes) before ending it; the broker's check-back reaches the checker
// another instance registered through producerd, which commits: delivered once.
func TestIntegrationDaemonTxCrashCheckBack(t *testing.T) {
	t.Parallel()
	c := rmqtest.Require(t)
	h, group := realTxDaemon(t, c)
	rc := readback.Client(t)
	wait := brokerCheckWait(t, rc, c)
	marks := readback.Mark(t, rc, c, txITTopic, 4)
	ck := registerChecker(t, h, &producerdpb.TransactionCheckerRegistration{Deadline: nil})

	app, err := grpc.NewClient(h.grpcAddr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	b, err := producerdpb.NewIngressClient(app).BeginTransaction(callCtx(t), &producerdpb.BeginTransactionRequest{Message: &producerdpb.Message{
		Topic: txITTopic, Body: []byte("crash"), Keys: []string{"order-crash"}}})
	if err != nil {
		t.Fatalf("begin: %v", err)
	}
	app.Close() // the application is gone
	// The transaction id checks name is the message id (the handle is opaque).
	id := b.GetResult().GetMsgId()
	start := time.Now()
	var m *producerdpb.TransactionCheck
	for m == nil {
		select {
		case x, ok := <-ck.checks:
			if !ok {
				t.Fatal("checker stream ended")
			}
			if x.GetTransactionId() == id {
				m = x
			} else {
				ck.answer(x, producerdpb.TransactionResolution_TRANSACTION_RESOLUTION_UNKNOWN)
			}
		case <-time.After(wait):
			t.Fatalf("no check-back for %s within %v", id, wait)
		}
	}
	t.Logf("check-back after %v: %v", time.Since(start).Round(time.Second), m)
	if m.GetProducerGroup() != group || m.GetKeys()[0] != "order-crash" || m.GetTopic() != txITTopic || len(m.GetBody()) != 0 {
		t.Errorf("check %v: want group %s, keys, topic, no body", m, group)
	}
	ck.answer(m, producerdpb.TransactionResolution_TRANSACTION_RESOLUTION_COMMIT)
	if n := readback.Missing(t, rc, txITTopic, marks, []string{id}); n != 0 {
		t.Fatal("the transaction committed by the check-back is not delivered")
	}
	got := deliveredCount(t, rc, marks, id)
	t.Logf("read back: %d", got[id])
	if got[id] != 1 {
		t.Fatalf("delivered %d times, want 1", got[id])
	}
	if n := counterValue(h.d, "producerd_transaction_checks_total", map[string]string{"group": group, "result": "commit"}); n != 1 {
		t.Errorf("commit checks %v, want 1", n)
	}
}

// TestIntegrationDaemonTxNoChecker: with no checker connected, a check-back is answered
// UNKNOWN and counted; once a checker connects and commits at the next check-back, the
// message is delivered.
func TestIntegrationDaemonTxNoChecker(t *testing.T) {
	t.Parallel()
	c := rmqtest.Require(t)
	h, group := realTxDaemon(t, c)
	rc := readback.Client(t)
	wait := brokerCheckWait(t, rc, c)
	marks := readback.Mark(t, rc, c, txITTopic, 4)
	b, err := h.ingress.BeginTransaction(callCtx(t), &producerdpb.BeginTransactionRequest{Message: &producerdpb.Message{
		Topic: txITTopic, Body: []byte("nobody checks")}})
	if err != nil {
		t.Fatalf("begin: %v", err)
	}
	id := b.GetResult().GetMsgId() // the transaction id checks name
	noChecker := func() float64 {
		return counterValue(h.d, "producerd_transaction_checks_total", map[string]string{"group": group, "result": "no_checker"})
	}
	if !testwait.Until(wait, func() bool { return noChecker() >= 1 }) {
		t.Fatalf("no check-back answered UNKNOWN within %v", wait)
	}
	if !strings.Contains(h.log.String(), "no checker connected") {
		t.Error("the UNKNOWN answer was not logged")
	}
	if got := deliveredCount(t, rc, marks, id); got[id] != 0 {
		t.Fatalf("delivered before any checker answered")
	}
	ck := registerChecker(t, h, &producerdpb.TransactionCheckerRegistration{})
	for {
		select {
		case x, ok := <-ck.checks:
			if !ok {
				t.Fatal("checker stream ended")
			}
			if x.GetTransactionId() != id {
				ck.answer(x, producerdpb.TransactionResolution_TRANSACTION_RESOLUTION_UNKNOWN)
				continue
			}
			if x.GetCheckTimes() < 2 {
				t.Errorf("check times %d, want >= 2 (the first was answered UNKNOWN)", x.GetCheckTimes())
			}
			ck.answer(x, producerdpb.TransactionResolution_TRANSACTION_RESOLUTION_COMMIT)
		case <-time.After(wait):
			t.Fatalf("no second check-back within %v", wait)
		}
		break
	}
	if n := readback.Missing(t, rc, txITTopic, marks, []string{id}); n != 0 {
		t.Fatal("not delivered after the checker committed")
	}
	got := deliveredCount(t, rc, marks, id)
	t.Logf("read back: %d; no_checker answers %v", got[id], noChecker())
	if got[id] != 1 {
		t.Fatalf("delivered %d times, want 1", got[id])
	}
}

// TestIntegrationDaemonTxLostEnd: the application commits, but the END_TRANSACTION never
// reaches the broker (simulated: the daemon records the decision without sending it). The
// broker's check-back is answered from the daemon's memory of the commit, without asking
// any checker: delivered once.
func TestIntegrationDaemonTxLostEnd(t *testing.T) {
	t.Parallel()
	c := rmqtest.Require(t)
	h, group := realTxDaemon(t, c)
	rc := readback.Client(t)
	wait := brokerCheckWait(t, rc, c)
	marks := readback.Mark(t, rc, c, txITTopic, 4)
	b, err := h.ingress.BeginTransaction(callCtx(t), &producerdpb.BeginTransactionRequest{Message: &producerdpb.Message{
		Topic: txITTopic, Body: []byte("lost end")}})
	if err != nil {
		t.Fatalf("begin: %v", err)
	}
	id := b.GetResult().GetMsgId()
	r := h.d.tx
	r.mu.Lock()
	// What end does before its oneway write, which is "lost" here.
	delete(r.pending, b.GetTransactionId())
	delete(r.handles, id)
	r.rememberLocked(id, core.TransactionCommit, time.Now())
	r.mu.Unlock()
	remembered := func() float64 {
		return counterValue(h.d, "producerd_transaction_checks_total", map[string]string{"group": group, "result": "remembered"})
	}
	if !testwait.Until(wait, func() bool { return remembered() >= 1 }) {
		t.Fatalf("no check-back answered from memory within %v", wait)
	}
	if n := readback.Missing(t, rc, txITTopic, marks, []string{id}); n != 0 {
		t.Fatal("the commit whose END_TRANSACTION was lost is not delivered after the check-back")
	}
	got := deliveredCount(t, rc, marks, id)
	t.Logf("read back: %d (check-back answered from memory)", got[id])
	if got[id] != 1 {
		t.Fatalf("delivered %d times, want 1", got[id])
	}
}
