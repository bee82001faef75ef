package daemon

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/producerd/producerd/api/producerdpb"
	"github.com/producerd/producerd/core"
)

// counterValue reads one counter or gauge of the daemon's registry by name and label values.
func counterValue(d *Daemon, name string, labels map[string]string) float64 {
	mfs, err := d.met.reg.Gather()
	if err != nil {
		return -1
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	next:
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if v, ok := labels[l.GetName()]; ok && v != l.GetValue() {
					continue next
				}
			}
			return m.GetCounter().GetValue() + m.GetGauge().GetValue()
		}
	}
	return 0
}

// txReason returns the gRPC code and the Error detail's reason of err.
func txReason(err error) (codes.Code, string) {
	st := status.Convert(err)
	for _, d := range st.Details() {
		if pe, ok := d.(*producerdpb.Error); ok {
			return st.Code(), pe.GetReason()
		}
	}
	return st.Code(), ""
}

// TestTransactionHandles: begin stores a half message; commit and rollback end a handle
// once; a second end, an unknown handle and a bad request are clear errors (gRPC and HTTP).
func TestTransactionHandles(t *testing.T) {
	c := startCluster(t)
	h := start(t, c, "rr", 1000)
	ctx := callCtx(t)

	begin := func(body string) *producerdpb.BeginTransactionResponse {
		t.Helper()
		resp, err := h.ingress.BeginTransaction(ctx, &producerdpb.BeginTransactionRequest{Message: &producerdpb.Message{
			Topic: testTopic, Body: []byte(body), Keys: []string{"order-1"}}})
		if err != nil {
			t.Fatalf("begin: %v", err)
		}
		return resp
	}
	resp := begin("half")
	m, ok := stored(c, testTopic)[resp.GetResult().GetMsgId()]
	if !ok || m.Properties["TRAN_MSG"] != "true" || m.Properties["PGROUP"] != "g1" || m.SysFlag&0x4 == 0 ||
		resp.GetResult().GetMsgId() == resp.GetTransactionId() || len(resp.GetTransactionId()) < 22 {
		t.Fatalf("half message %+v (stored %v), response %v: want TRAN_MSG=true, PGROUP=g1, sysFlag 0x4, an opaque handle", m, ok, resp)
	}
	end := func(id string, r producerdpb.TransactionResolution) error {
		_, err := h.ingress.EndTransaction(ctx, &producerdpb.EndTransactionRequest{TransactionId: id, Resolution: r})
		return err
	}
	commit := producerdpb.TransactionResolution_TRANSACTION_RESOLUTION_COMMIT
	if err := end(resp.GetTransactionId(), commit); err != nil {
		t.Fatalf("commit: %v", err)
	}
	waitFor(t, "END_TRANSACTION at the broker", func() bool {
		n := int64(0)
		for _, b := range c.Brokers() {
			n += b.Stats().ByCode[37]
		}
		return n == 1
	})
	for _, tc := range []struct {
		name   string
		id     string
		res    producerdpb.TransactionResolution
		code   codes.Code
		reason string
	}{
		{"second commit", resp.GetTransactionId(), commit, codes.NotFound, "UNKNOWN_TRANSACTION"},
		{"unknown handle", "C0FFEE", commit, codes.NotFound, "UNKNOWN_TRANSACTION"},
		// The UNIQ_KEY is sequential: it must not end a transaction (review finding 12).
		{"the message id", begin("guess").GetResult().GetMsgId(), commit, codes.NotFound, "UNKNOWN_TRANSACTION"},
		{"unknown resolution", begin("x").GetTransactionId(), producerdpb.TransactionResolution_TRANSACTION_RESOLUTION_UNKNOWN,
			codes.InvalidArgument, "INVALID_MESSAGE"},
	} {
		code, reason := txReason(end(tc.id, tc.res))
		if code != tc.code || reason != tc.reason {
			t.Errorf("%s: %v %s, want %v %s", tc.name, code, reason, tc.code, tc.reason)
		}
	}
	_, err := h.ingress.BeginTransaction(ctx, &producerdpb.BeginTransactionRequest{Message: &producerdpb.Message{
		Topic: testTopic, Body: []byte("x"), DelayLevel: 3}})
	if code, reason := txReason(err); code != codes.InvalidArgument || reason != "INVALID_MESSAGE" {
		t.Errorf("delayed half message: %v %s, want InvalidArgument INVALID_MESSAGE", code, reason)
	}

	// HTTP: begin, rollback, then the same handle again.
	post := func(path, body string) (int, map[string]any) {
		t.Helper()
		r, err := http.Post("http://"+h.httpAddr+path, "application/json", strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		defer r.Body.Close()
		var out map[string]any
		_ = json.NewDecoder(r.Body).Decode(&out)
		return r.StatusCode, out
	}
	code, out := post("/v1/transactions", `{"topic":"`+testTopic+`","body":"via http"}`)
	id, _ := out["transaction_id"].(string)
	if code != http.StatusOK || id == "" {
		t.Fatalf("HTTP begin: %d %v", code, out)
	}
	if code, out := post("/v1/transactions/"+id+"/rollback", ""); code != http.StatusOK {
		t.Fatalf("HTTP rollback: %d %v", code, out)
	}
	if code, out := post("/v1/transactions/"+id+"/commit", ""); code != http.StatusNotFound ||
		!strings.Contains(out["error"].(map[string]any)["code"].(string), "UNKNOWN_TRANSACTION") {
		t.Fatalf("HTTP commit after rollback: %d %v, want 404 UNKNOWN_TRANSACTION", code, out)
	}
	if got := counterValue(h.d, "producerd_transactions_total", map[string]string{"group": "g1", "action": "end_unknown"}); got != 4 {
		t.Errorf("end_unknown = %v, want 4", got)
	}
}

// checker is a test application's TransactionChecks stream.
type checker struct {
	t      *testing.T
	stream producerdpb.Ingress_TransactionChecksClient
	cancel context.CancelFunc
	checks chan *producerdpb.TransactionCheck
}

func registerChecker(t *testing.T, h *harness, reg *producerdpb.TransactionCheckerRegistration) *checker {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	ctx = metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+testToken)
	st, err := h.ingress.TransactionChecks(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := st.Send(&producerdpb.TransactionChecksRequest{Request: &producerdpb.TransactionChecksRequest_Register{Register: reg}}); err != nil {
		t.Fatal(err)
	}
	first, err := st.Recv()
	if err != nil || first.GetRegistered() == nil {
		t.Fatalf("registration: %v %v", first, err)
	}
	ck := &checker{t: t, stream: st, cancel: cancel, checks: make(chan *producerdpb.TransactionCheck, 16)}
	go func() {
		for {
			m, err := st.Recv()
			if err != nil {
				close(ck.checks)
				return
			}
			ck.checks <- m.GetCheck()
		}
	}()
	return ck
}

func (ck *checker) next() *producerdpb.TransactionCheck {
	ck.t.Helper()
	select {
	case m, ok := <-ck.checks:
		if !ok {
			ck.t.Fatal("checker stream ended")
		}
		return m
	case <-time.After(20 * time.Second):
		ck.t.Fatal("no check arrived")
	}
	return nil
}

func (ck *checker) answer(c *producerdpb.TransactionCheck, r producerdpb.TransactionResolution) {
	ck.t.Helper()
	if err := ck.stream.Send(&producerdpb.TransactionChecksRequest{Request: &producerdpb.TransactionChecksRequest_Answer{
		Answer: &producerdpb.TransactionCheckAnswer{CheckId: c.GetCheckId(), TransactionId: c.GetTransactionId(), Resolution: r}}}); err != nil {
		ck.t.Fatal(err)
	}
}

// TestTransactionCheckRouting drives the daemon's check router as core does for a
// broker's check-back: no checker, round-robin over two checkers, body only when asked,
// the deadline, a stream that dies with a check pending, and a remembered end.
func TestTransactionCheckRouting(t *testing.T) {
	c := startCluster(t)
	h := start(t, c, "rr", 1000)
	r := h.d.tx
	count := func(result string) float64 {
		return counterValue(h.d, "producerd_transaction_checks_total", map[string]string{"group": "g1", "result": result})
	}
	check := func(id string) *core.TransactionCheck {
		return &core.TransactionCheck{ID: id, MsgID: id, Topic: testTopic, Group: "g1", Keys: []string{"k-" + id},
			Body: []byte("secret body"), CheckTimes: 1, Born: time.Now()}
	}
	// route runs one check as core would, in the background.
	route := func(id string) chan core.TransactionState {
		out := make(chan core.TransactionState, 1)
		go func() {
			ctx, cancel := context.WithTimeout(context.Background(), core.TransactionCheckTimeout)
			defer cancel()
			out <- r.route(ctx, "g1", check(id))
		}()
		return out
	}
	wait := func(ch chan core.TransactionState) core.TransactionState {
		t.Helper()
		select {
		case s := <-ch:
			return s
		case <-time.After(20 * time.Second):
			t.Fatal("check not answered")
		}
		return 0
	}
	commit := producerdpb.TransactionResolution_TRANSACTION_RESOLUTION_COMMIT
	rollback := producerdpb.TransactionResolution_TRANSACTION_RESOLUTION_ROLLBACK

	if s := wait(route("none")); s != core.TransactionUnknown || count("no_checker") != 1 {
		t.Fatalf("no checker: %s, no_checker %v; want UNKNOWN counted", s, count("no_checker"))
	}

	a := registerChecker(t, h, &producerdpb.TransactionCheckerRegistration{})
	b := registerChecker(t, h, &producerdpb.TransactionCheckerRegistration{IncludeBody: true})
	if n := counterValue(h.d, "producerd_transaction_checkers", map[string]string{"group": "g1"}); n != 2 {
		t.Errorf("producerd_transaction_checkers = %v, want 2", n)
	}
	got := map[*checker]int{}
	for i := range 4 {
		res := route("rr" + string(rune('0'+i)))
		var m *producerdpb.TransactionCheck
		var who *checker
		select {
		case m = <-a.checks:
			who = a
		case m = <-b.checks:
			who = b
		case <-time.After(20 * time.Second):
			t.Fatal("no checker got the check")
		}
		got[who]++
		if (who == a) != (len(m.GetBody()) == 0) || m.GetKeys()[0] != "k-"+m.GetTransactionId() || m.GetProducerGroup() != "g1" {
			t.Errorf("check %v on checker %v: want keys and group, the body only on the checker that asked", m, who == b)
		}
		who.answer(m, commit)
		if s := wait(res); s != core.TransactionCommit {
			t.Fatalf("answered commit, got %s", s)
		}
	}
	if got[a] != 2 || got[b] != 2 {
		t.Errorf("checks per checker %d/%d, want 2/2 (round-robin)", got[a], got[b])
	}

	// b dies holding a check: it goes to a, which rolls it back.
	var res chan core.TransactionState
	for {
		res = route("dies")
		select {
		case m := <-a.checks: // a's turn: answer UNKNOWN and try again
			a.answer(m, producerdpb.TransactionResolution_TRANSACTION_RESOLUTION_UNKNOWN)
			wait(res)
			continue
		case <-b.checks:
		}
		break
	}
	b.cancel()
	m := a.next()
	if m.GetTransactionId() != "dies" {
		t.Fatalf("rerouted check %v", m)
	}
	a.answer(m, rollback)
	if s := wait(res); s != core.TransactionRollback || count("rerouted") != 1 {
		t.Fatalf("rerouted: %s, rerouted %v; want ROLLBACK, 1", s, count("rerouted"))
	}

	// A checker that never answers: its deadline makes it UNKNOWN.
	a.cancel()
	waitFor(t, "checker a gone", func() bool { return r.pick("g1", nil) == nil })
	slow := registerChecker(t, h, &producerdpb.TransactionCheckerRegistration{Deadline: durationpb.New(100 * time.Millisecond)})
	res = route("slow")
	slow.next()
	if s := wait(res); s != core.TransactionUnknown || count("deadline") != 1 {
		t.Fatalf("deadline: %s, deadline %v; want UNKNOWN, 1", s, count("deadline"))
	}

	// An application's end is remembered: a check-back (its END_TRANSACTION was lost) is
	// answered without asking the checker.
	ctx := callCtx(t)
	br, err := h.ingress.BeginTransaction(ctx, &producerdpb.BeginTransactionRequest{Message: &producerdpb.Message{Topic: testTopic, Body: []byte("x")}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := h.ingress.EndTransaction(ctx, &producerdpb.EndTransactionRequest{TransactionId: br.GetTransactionId(), Resolution: commit}); err != nil {
		t.Fatal(err)
	}
	if s := wait(route(br.GetResult().GetMsgId())); s != core.TransactionCommit || count("remembered") != 1 {
		t.Fatalf("remembered: %s, %v; want COMMIT, 1", s, count("remembered"))
	}
	// A transaction resolved by a checker cannot be ended again by the application.
	br, err = h.ingress.BeginTransaction(ctx, &producerdpb.BeginTransactionRequest{Message: &producerdpb.Message{Topic: testTopic, Body: []byte("y")}})
	if err != nil {
		t.Fatal(err)
	}
	res = route(br.GetResult().GetMsgId())
	slow.answer(slow.next(), commit)
	if s := wait(res); s != core.TransactionCommit {
		t.Fatalf("checker commit: %s", s)
	}
	_, err = h.ingress.EndTransaction(ctx, &producerdpb.EndTransactionRequest{TransactionId: br.GetTransactionId(), Resolution: rollback})
	if code, reason := txReason(err); code != codes.NotFound || reason != "UNKNOWN_TRANSACTION" {
		t.Errorf("end after a check-back resolved it: %v %s, want NotFound UNKNOWN_TRANSACTION", code, reason)
	}

	// Registration errors.
	register := func(ctx context.Context, group string) error {
		st, err := h.ingress.TransactionChecks(ctx)
		if err != nil {
			t.Fatal(err)
		}
		_ = st.Send(&producerdpb.TransactionChecksRequest{Request: &producerdpb.TransactionChecksRequest_Register{
			Register: &producerdpb.TransactionCheckerRegistration{ProducerGroup: group}}})
		_, err = st.Recv()
		return err
	}
	withToken := func(tok string) context.Context {
		return metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+tok)
	}
	if err := register(withToken(testToken), "nope"); status.Code(err) != codes.InvalidArgument {
		t.Errorf("register for an unknown group: %v, want InvalidArgument", err)
	}
	st, err := h.ingress.TransactionChecks(withToken(testToken))
	if err != nil {
		t.Fatal(err)
	}
	_ = st.Send(&producerdpb.TransactionChecksRequest{Request: &producerdpb.TransactionChecksRequest_Register{
		Register: &producerdpb.TransactionCheckerRegistration{ProducerGroup: "g1", Deadline: &durationpb.Duration{Seconds: 1, Nanos: -1}}}})
	if _, err := st.Recv(); status.Code(err) != codes.InvalidArgument {
		t.Errorf("register with deadline {1s, -1ns}: %v, want InvalidArgument", err)
	}
	// Review finding 12: a checker receives the group's bodies and decides its
	// transactions, so it needs the admin token.
	if err := register(ctx, "g1"); status.Code(err) != codes.Unauthenticated {
		t.Errorf("register without the admin token: %v, want Unauthenticated", err)
	}
	if err := register(withToken("wrong"), "g1"); status.Code(err) != codes.Unauthenticated {
		t.Errorf("register with a wrong token: %v, want Unauthenticated", err)
	}
}
