package daemon

import (
	"fmt"
	"net/http"
	"runtime"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/producerd/producerd/api/producerdpb"
	"github.com/producerd/producerd/core"
)

// TestTransactionAdmission: review finding 9. A transaction is admitted as a send is:
// limits.max_topics (HTTP and gRPC), and the message checks of a send (a bad delay level
// is INVALID_ARGUMENT before any half message is sent).
func TestTransactionAdmission(t *testing.T) {
	c := startCluster(t)
	h := startText(t, c, httpConfig(c.NameServerAddr(), instanceName(t), "max_topics = 1"))
	url := "http://" + h.httpAddr + "/v1/transactions"
	if code, body := post(t, url, `{"topic":"`+testTopic+`","body":"x"}`); code != http.StatusOK {
		t.Fatalf("first topic: %d %s", code, body)
	}
	for i := range 3 {
		topic := fmt.Sprintf("TxMany%d", i)
		if code, body := post(t, url, `{"topic":"`+topic+`","body":"x"}`); code != http.StatusTooManyRequests || !strings.Contains(body, "max_topics") {
			t.Fatalf("HTTP begin on topic %s past max_topics: %d %s, want 429 naming max_topics", topic, code, body)
		}
		_, err := h.ingress.BeginTransaction(callCtx(t), &producerdpb.BeginTransactionRequest{Message: &producerdpb.Message{Topic: topic, Body: []byte("x")}})
		if status.Code(err) != codes.ResourceExhausted || !strings.Contains(err.Error(), "max_topics") {
			t.Fatalf("gRPC begin on topic %s past max_topics: %v, want RESOURCE_EXHAUSTED naming max_topics", topic, err)
		}
		if n := len(stored(c, topic)); n != 0 {
			t.Fatalf("%d half messages stored in %s", n, topic)
		}
	}
	_, err := h.ingress.BeginTransaction(callCtx(t), &producerdpb.BeginTransactionRequest{Message: &producerdpb.Message{
		Topic: testTopic, Body: []byte("x"), Mode: producerdpb.SendMode(7)}})
	if status.Code(err) != codes.InvalidArgument {
		t.Fatalf("begin with send mode 7: %v, want INVALID_ARGUMENT", err)
	}
}

// TestTransactionDecisionsBounded: review finding 10. The decisions kept to answer
// check-backs after a lost end are bounded by count (oldest forgotten first), not only by
// their 15 min TTL: at 8k transactions/s the TTL alone kept 7.2M of them.
func TestTransactionDecisionsBounded(t *testing.T) {
	t.Parallel()
	r := &txRouter{pending: map[string]*txEntry{}, handles: map[string]string{}, ended: map[string]txDecision{}, lastSweep: time.Now()}
	now := time.Now()
	const n = txMaxRemembered + 50_000
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	r.mu.Lock()
	for i := range n {
		r.rememberLocked(fmt.Sprintf("TX%08d", i), core.TransactionCommit, now)
		if i%1000 == 0 { // an id remembered twice (an end, then a check-back's decision)
			r.rememberLocked(fmt.Sprintf("TX%08d", i), core.TransactionRollback, now)
		}
	}
	r.mu.Unlock()
	runtime.GC()
	runtime.ReadMemStats(&after)
	t.Logf("%d decisions kept: heap %+d KiB", len(r.ended), (int64(after.HeapAlloc)-int64(before.HeapAlloc))>>10)
	if len(r.ended) != txMaxRemembered || len(r.endOrder) > 2*txMaxRemembered+1024 {
		t.Fatalf("%d decisions kept (%d in order), want %d", len(r.ended), len(r.endOrder), txMaxRemembered)
	}
	if _, ok := r.ended["TX00000001"]; ok {
		t.Fatal("the oldest decision is still kept")
	}
	if dec, ok := r.ended[fmt.Sprintf("TX%08d", n-1000)]; !ok || dec.state != core.TransactionRollback {
		t.Fatalf("the newest decisions: %v %v, want the later ROLLBACK", dec, ok)
	}
	if r.forgotten != n-txMaxRemembered {
		t.Fatalf("forgotten %d, want %d", r.forgotten, n-txMaxRemembered)
	}
	// The TTL sweep still drops expired ones.
	r.mu.Lock()
	r.sweepLocked(now.Add(txRememberTTL + 2*txSweepEvery))
	r.mu.Unlock()
	if len(r.ended) != 0 || len(r.endOrder) != 0 {
		t.Fatalf("after the TTL: %d decisions, %d in order", len(r.ended), len(r.endOrder))
	}
}
