package daemon

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/producerd/producerd/api/producerdpb"
	"github.com/producerd/producerd/core"
	"github.com/producerd/producerd/internal/rmqv2"
	"github.com/producerd/producerd/remoting"
)

// TestRMQv2TransactionsAndChecks: the v2 ingress's transactions go through the daemon's
// handles (begin, one end, the decision remembered even when the broker refuses the end),
// and check-backs are routed by origin: a v2 client's to the v2 clients (that client
// first), a daemon API one never to them, one of unknown origin to them only when the
// group has no checker of its own.
func TestRMQv2TransactionsAndChecks(t *testing.T) {
	c := startCluster(t)
	h := start(t, c, "rr", 1000)
	r := h.d.tx
	tx := &rmqv2Tx{d: h.d, group: "g1"}
	ctx := context.Background()

	type asked struct {
		id, client string
	}
	var (
		mu    sync.Mutex
		calls []asked
		reply = core.TransactionCommit
		ok    = true
	)
	r.mu.Lock()
	r.v2check = func(_ context.Context, chk *core.TransactionCheck, client string) (core.TransactionState, bool) {
		mu.Lock()
		defer mu.Unlock()
		calls = append(calls, asked{chk.ID, client})
		return reply, ok
	}
	r.mu.Unlock()
	check := func(id string) core.TransactionState {
		return r.route(ctx, "g1", &core.TransactionCheck{ID: id, MsgID: id, Topic: testTopic, Group: "g1", Born: time.Now()})
	}
	lastCall := func() asked {
		mu.Lock()
		defer mu.Unlock()
		if len(calls) == 0 {
			return asked{}
		}
		return calls[len(calls)-1]
	}
	nCalls := func() int {
		mu.Lock()
		defer mu.Unlock()
		return len(calls)
	}

	// A v2 client's transaction: its check goes to that client.
	h1, t1, err := tx.Begin(ctx, "cli-1", &core.Message{Topic: testTopic, Body: []byte("half")})
	if err != nil {
		t.Fatal(err)
	}
	if s := check(t1.ID); s != core.TransactionCommit || lastCall() != (asked{t1.ID, "cli-1"}) {
		t.Fatalf("check of a v2 transaction: %s, asked %+v; want COMMIT from cli-1", s, lastCall())
	}
	// Resolved by the check: the handle is gone, a second check is answered from memory.
	if err := tx.End(ctx, "cli-1", h1, testTopic, core.TransactionRollback); !errors.Is(err, rmqv2.ErrUnknownTransaction) {
		t.Errorf("end after a check resolved it: %v, want ErrUnknownTransaction", err)
	}
	before := nCalls()
	if s := check(t1.ID); s != core.TransactionCommit || nCalls() != before {
		t.Errorf("second check: %s after %d more v2 calls, want COMMIT from memory", s, nCalls()-before)
	}

	// End: another topic is unknown; the dev broker refuses END_TRANSACTION (it does not
	// serve code 37), which is returned, and the decision is kept for the check-back.
	h2, t2, err := tx.Begin(ctx, "cli-2", &core.Message{Topic: testTopic, Body: []byte("half 2")})
	if err != nil {
		t.Fatal(err)
	}
	if err := tx.End(ctx, "cli-2", h2, "OtherTopic", core.TransactionCommit); !errors.Is(err, rmqv2.ErrUnknownTransaction) {
		t.Errorf("end naming another topic: %v, want ErrUnknownTransaction", err)
	}
	var re *remoting.Error
	if err := tx.End(ctx, "cli-2", h2, testTopic, core.TransactionRollback); !errors.As(err, &re) || re.Code != remoting.RequestCodeNotSupported {
		t.Errorf("end refused by the broker: %v, want the broker's REQUEST_CODE_NOT_SUPPORTED", err)
	}
	before = nCalls()
	if s := check(t2.ID); s != core.TransactionRollback || nCalls() != before {
		t.Errorf("check after a refused end: %s, want ROLLBACK from memory", s)
	}

	// A transaction of the daemon's own API is never asked of a v2 client.
	resp, err := r.begin(ctx, apiGRPC, &producerdpb.Message{Topic: testTopic, Body: []byte("api")}, 0)
	if err != nil {
		t.Fatal(err)
	}
	before = nCalls()
	if s := check(resp.GetResult().GetMsgId()); s != core.TransactionUnknown || nCalls() != before {
		t.Errorf("check of a daemon API transaction without checkers: %s, %d v2 calls; want UNKNOWN, none", s, nCalls()-before)
	}

	// A handle ends only the transaction of the client that began it through this
	// listener: not one of the daemon's own API, not another v2 client's (a handle that
	// leaked, from an application log for example).
	if err := tx.End(ctx, "cli-1", resp.GetTransactionId(), testTopic, core.TransactionRollback); !errors.Is(err, rmqv2.ErrUnknownTransaction) {
		t.Errorf("v2 end of a daemon API transaction: %v, want ErrUnknownTransaction", err)
	}
	if err := r.end(ctx, "g1", resp.GetTransactionId(), producerdpb.TransactionResolution_TRANSACTION_RESOLUTION_ROLLBACK); err != nil {
		t.Errorf("the daemon API's own end after the refused v2 one: %v", err)
	}
	h3, _, err := tx.Begin(ctx, "cli-3", &core.Message{Topic: testTopic, Body: []byte("half 3")})
	if err != nil {
		t.Fatal(err)
	}
	if err := tx.End(ctx, "cli-4", h3, testTopic, core.TransactionCommit); !errors.Is(err, rmqv2.ErrUnknownTransaction) {
		t.Errorf("end by another client: %v, want ErrUnknownTransaction", err)
	}
	if err := tx.End(ctx, "cli-3", h3, testTopic, core.TransactionRollback); !errors.As(err, &re) {
		t.Errorf("end by its client after the refused one: %v, want the broker's answer", err)
	}

	// Unknown origin and no checker of the group: the v2 clients; none takes it: UNKNOWN.
	ok = false
	if s := check("UNKNOWN-ORIGIN"); s != core.TransactionUnknown || lastCall() != (asked{"UNKNOWN-ORIGIN", ""}) {
		t.Errorf("check of unknown origin: %s, asked %+v; want UNKNOWN after asking the v2 clients", s, lastCall())
	}
	if n := counterValue(h.d, "producerd_transaction_checks_total", map[string]string{"group": "g1", "result": "no_checker"}); n < 2 {
		t.Errorf("no_checker = %v, want the daemon API check and the untaken one counted", n)
	}
}
