package core_test

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/producerd/producerd/core"
	"github.com/producerd/producerd/internal/rmqtest"
	"github.com/producerd/producerd/internal/rmqtest/readback"
	"github.com/producerd/producerd/remoting"
)

// txTopic is an existing topic of the test cluster (4 queues per broker); transaction
// tests find their own messages by UNIQ_KEY.
const txTopic = "IT_Send"

// checkWait is how long a test waits for a broker's check-back: the broker checks a half
// message once it is transactionTimeOut old, at its next round (every
// transactionCheckInterval), so within timeout + interval; twice that plus slack covers a
// round that was running when the message became due. Both values are read from the
// running broker (5.3.3 defaults: 6 s and 30 s).
func checkWait(t *testing.T, rc *remoting.Client, c *rmqtest.Cluster) time.Duration {
	t.Helper()
	var worst time.Duration
	for _, b := range c.Brokers {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		resp, err := rc.InvokeSync(ctx, b.Addr, remoting.NewRequest(26, nil, nil)) // GET_BROKER_CONFIG
		cancel()
		if err != nil || resp.Code != 0 {
			t.Fatalf("broker config of %s: %v %v", b.Name, err, resp)
		}
		cfg := map[string]string{}
		for _, line := range strings.Split(string(resp.Body), "\n") {
			if k, v, ok := strings.Cut(strings.TrimSpace(line), "="); ok {
				cfg[k] = v
			}
		}
		ms := func(k string) time.Duration {
			n, err := strconv.ParseInt(cfg[k], 10, 64)
			if err != nil {
				t.Fatalf("broker %s config %s = %q", b.Name, k, cfg[k])
			}
			return time.Duration(n) * time.Millisecond
		}
		if w := ms("transactionTimeOut") + 2*ms("transactionCheckInterval") + 10*time.Second; w > worst {
			worst = w
		}
	}
	return worst
}

// checks records the check-backs a checker got and answers with answer(n), n counting
// the checks of that transaction from 1.
type checks struct {
	mu     sync.Mutex
	got    map[string][]*core.TransactionCheck
	answer func(n int) core.TransactionState
	signal chan string
}

func newChecks(answer func(int) core.TransactionState) *checks {
	return &checks{got: map[string][]*core.TransactionCheck{}, answer: answer, signal: make(chan string, 64)}
}

func (c *checks) CheckTransaction(_ context.Context, chk *core.TransactionCheck) (core.TransactionState, error) {
	c.mu.Lock()
	c.got[chk.ID] = append(c.got[chk.ID], chk)
	n := len(c.got[chk.ID])
	c.mu.Unlock()
	select {
	case c.signal <- chk.ID:
	default:
	}
	return c.answer(n), nil
}

func (c *checks) count(id string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.got[id])
}

// waitCheck waits until the checker saw n checks of id.
func (c *checks) waitCheck(t *testing.T, id string, n int, within time.Duration) *core.TransactionCheck {
	t.Helper()
	deadline := time.After(within)
	for c.count(id) < n {
		select {
		case <-c.signal:
		case <-deadline:
			t.Fatalf("transaction %s: %d check-backs within %v, want %d", id, c.count(id), within, n)
		}
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.got[id][n-1]
}

func txMessage(tag string) *core.Message {
	return &core.Message{Topic: txTopic, Body: []byte("tx body " + tag), Tags: "tx", Keys: []string{"k-" + tag},
		Properties: map[string]string{"app": tag}}
}

// TestIntegrationTransactionCommitRollback: a committed transaction is delivered once, a
// rolled-back one never, and a half message is invisible until its commit.
func TestIntegrationTransactionCommitRollback(t *testing.T) {
	t.Parallel()
	c := rmqtest.Require(t)
	// A checker that would commit everything: the rolled-back message must stay
	// undelivered even if a check-back comes.
	ck := newChecks(func(int) core.TransactionState { return core.TransactionCommit })
	p := newProducer(t, c, nil)
	p.SetTransactionChecker(ck)
	rc := p.Client().Remoting()
	marks := readback.Mark(t, rc, c, txTopic, 4)
	ctx := context.Background()

	commit, err := p.BeginTransaction(ctx, txMessage("commit"))
	if err != nil {
		t.Fatalf("begin: %v", err)
	}
	rollback, err := p.BeginTransaction(ctx, txMessage("rollback"))
	if err != nil {
		t.Fatalf("begin: %v", err)
	}
	if commit.ID != commit.MsgID || commit.CommitLogOffset <= 0 || commit.Broker == "" {
		t.Fatalf("transaction %+v: want ID = MsgID (a 5.x broker answers the UNIQ_KEY), a commit-log offset and a broker", commit)
	}
	// The half message is stored, but not in the real topic.
	if readback.Scan(t, rc, txTopic, marks, func(m *core.MessageExt) bool { return m.UniqKey() == commit.MsgID }) {
		t.Fatalf("half message %s is readable in %s before its commit", commit.MsgID, txTopic)
	}
	if err := p.EndTransaction(ctx, commit, core.TransactionCommit); err != nil {
		t.Fatalf("commit: %v", err)
	}
	if err := p.EndTransaction(ctx, rollback, core.TransactionRollback); err != nil {
		t.Fatalf("rollback: %v", err)
	}
	// A marker committed after the rollback: once it is readable, both ends were applied
	// (they go to their brokers in order on one connection each; the marker makes sure the
	// scan does not run too early on the rollback's broker either).
	marker, err := p.BeginTransaction(ctx, txMessage("marker"))
	if err != nil {
		t.Fatalf("begin marker: %v", err)
	}
	if err := p.EndTransaction(ctx, marker, core.TransactionCommit); err != nil {
		t.Fatalf("commit marker: %v", err)
	}
	if n := readback.Missing(t, rc, txTopic, marks, []string{commit.MsgID, marker.MsgID}); n != 0 {
		t.Fatalf("%d of 2 committed transactions not delivered", n)
	}
	got := map[string]int{}
	readback.Scan(t, rc, txTopic, marks, func(m *core.MessageExt) bool {
		switch m.UniqKey() {
		case commit.MsgID, rollback.MsgID, marker.MsgID:
			got[m.UniqKey()]++
			// A 5.3.3 broker keeps TRAN_MSG=true on the committed message (measured; the
			// spec says it is dropped): only the sysFlag says "committed".
			if m.Properties["app"] == "" || m.SysFlag&0xC != 0x8 || m.Properties["PGROUP"] != p.Group() {
				t.Errorf("delivered %s: app %q sysFlag %#x PGROUP %q, want app kept, commit type 0x8, the group",
					m.UniqKey(), m.Properties["app"], m.SysFlag, m.Properties["PGROUP"])
			}
		}
		return false
	})
	t.Logf("read back: commit %d, rollback %d, marker %d", got[commit.MsgID], got[rollback.MsgID], got[marker.MsgID])
	if got[commit.MsgID] != 1 || got[marker.MsgID] != 1 || got[rollback.MsgID] != 0 {
		t.Fatalf("read back commit %d marker %d rollback %d, want 1 1 0", got[commit.MsgID], got[marker.MsgID], got[rollback.MsgID])
	}
	if n := ck.count(commit.ID) + ck.count(rollback.ID); n != 0 {
		t.Errorf("%d check-backs for transactions ended at once, want 0", n)
	}
}

// TestIntegrationTransactionCheckBackAfterCrash: a producer begins a transaction and
// "crashes" (closes without ending it); the broker checks the group back on another
// producer instance of the group, whose checker commits: the message is delivered once.
func TestIntegrationTransactionCheckBackAfterCrash(t *testing.T) {
	t.Parallel()
	c := rmqtest.Require(t)
	group := fmt.Sprintf("it_tx_crash_%d", time.Now().UnixNano())
	crashing := newProducer(t, c, func(cfg *core.ProducerConfig) { cfg.Group = group })
	rc := crashing.Client().Remoting()
	wait := checkWait(t, rc, c)
	survivor := newProducer(t, c, func(cfg *core.ProducerConfig) { cfg.Group = group })
	ck := newChecks(func(int) core.TransactionState { return core.TransactionCommit })
	survivor.SetTransactionChecker(ck)
	src := survivor.Client().Remoting()
	marks := readback.Mark(t, src, c, txTopic, 4)
	// The survivor must be known to both brokers before the check: a send to each does it.
	for range 4 {
		if _, err := survivor.Send(context.Background(), txMessage("warm")); err != nil {
			t.Fatalf("warm-up send: %v", err)
		}
	}
	m := txMessage("crash")
	tx, err := crashing.BeginTransaction(context.Background(), m)
	if err != nil {
		t.Fatalf("begin: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := crashing.Close(ctx); err != nil {
		t.Fatalf("close (crash): %v", err)
	}
	start := time.Now()
	chk := ck.waitCheck(t, tx.ID, 1, wait)
	t.Logf("check-back %v after the crash: %+v", time.Since(start).Round(time.Second), chk)
	if chk.MsgID != tx.MsgID || chk.Topic != txTopic || chk.Group != group || chk.Broker != tx.Broker ||
		strings.Join(chk.Keys, " ") != "k-crash" || string(chk.Body) != "tx body crash" || chk.CheckTimes < 1 ||
		chk.Properties["app"] != "crash" || chk.Properties["UNIQ_KEY"] != "" {
		t.Errorf("check %+v does not describe transaction %+v", chk, tx)
	}
	if n := readback.Missing(t, src, txTopic, marks, []string{tx.MsgID}); n != 0 {
		t.Fatalf("transaction committed by its check-back not delivered")
	}
	delivered := 0
	readback.Scan(t, src, txTopic, marks, func(x *core.MessageExt) bool {
		if x.UniqKey() == tx.MsgID {
			delivered++
		}
		return false
	})
	if delivered != 1 {
		t.Fatalf("delivered %d times, want 1", delivered)
	}
}

// TestIntegrationTransactionUnknownThenCommit: a checker that answers UNKNOWN (or fails)
// leaves the transaction pending; the broker asks again and the next answer commits it.
func TestIntegrationTransactionUnknownThenCommit(t *testing.T) {
	t.Parallel()
	c := rmqtest.Require(t)
	p := newProducer(t, c, nil)
	ck := newChecks(func(n int) core.TransactionState {
		if n == 1 {
			return core.TransactionUnknown
		}
		return core.TransactionCommit
	})
	p.SetTransactionChecker(ck)
	rc := p.Client().Remoting()
	wait := checkWait(t, rc, c)
	marks := readback.Mark(t, rc, c, txTopic, 4)
	tx, err := p.BeginTransaction(context.Background(), txMessage("unknown"))
	if err != nil {
		t.Fatalf("begin: %v", err)
	}
	first := ck.waitCheck(t, tx.ID, 1, wait)
	if readback.Scan(t, rc, txTopic, marks, func(m *core.MessageExt) bool { return m.UniqKey() == tx.MsgID }) {
		t.Fatalf("delivered after an UNKNOWN answer")
	}
	second := ck.waitCheck(t, tx.ID, 2, wait)
	if second.CheckTimes <= first.CheckTimes {
		t.Errorf("check times %d then %d, want increasing", first.CheckTimes, second.CheckTimes)
	}
	if n := readback.Missing(t, rc, txTopic, marks, []string{tx.MsgID}); n != 0 {
		t.Fatalf("not delivered after the second check committed it")
	}
}
