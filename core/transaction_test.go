package core_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/producerd/producerd/core"
	"github.com/producerd/producerd/devbroker"
	"github.com/producerd/producerd/internal/testwait"
	"github.com/producerd/producerd/remoting"
)

func totalStats(dev *devbroker.Cluster) (sends, ends int64) {
	for _, b := range dev.Brokers() {
		st := b.Stats()
		sends += st.Sends
		ends += st.ByCode[remoting.EndTransaction]
	}
	return sends, ends
}

// TestBeginTransactionWire: the half message carries TRAN_MSG, PGROUP and the prepared
// sysFlag; EndTransaction reaches the broker that holds it; a delayed half message is
// refused before any I/O.
func TestBeginTransactionWire(t *testing.T) {
	dev := startDev(t, devbroker.Config{})
	p := devProducer(t, dev, nil)
	ctx := context.Background()
	tx, err := p.BeginTransaction(ctx, &core.Message{Topic: "T", Body: []byte("half"), Keys: []string{"k1"}})
	if err != nil {
		t.Fatal(err)
	}
	var found *devbroker.Message
	for _, m := range dev.Broker(tx.Broker).Messages("T") {
		if m.UniqKey() == tx.MsgID {
			found = &m
		}
	}
	if found == nil || found.Properties["TRAN_MSG"] != "true" || found.Properties["PGROUP"] != p.Group() || found.SysFlag&0xC != 0x4 {
		t.Fatalf("stored half message %+v: want TRAN_MSG=true, PGROUP=%s, sysFlag prepared 0x4", found, p.Group())
	}
	if tx.ID != tx.MsgID || tx.CommitLogOffset != found.CommitLogOffset || tx.TranStateTableOffset != found.QueueOffset || tx.Keys[0] != "k1" {
		t.Fatalf("transaction %+v does not match the stored record %+v", tx, found)
	}
	if err := p.EndTransaction(ctx, tx, core.TransactionCommit); err != nil {
		t.Fatal(err)
	}
	if !testwait.Until(10*time.Second, func() bool {
		return dev.Broker(tx.Broker).Stats().ByCode[remoting.EndTransaction] == 1
	}) {
		t.Fatal("END_TRANSACTION never reached the broker holding the half message")
	}
	if err := p.EndTransaction(ctx, tx, core.TransactionState(3)); err == nil {
		t.Error("EndTransaction with state 3 succeeded")
	}
	for _, m := range []*core.Message{
		{Topic: "T", Body: []byte("x"), DelayLevel: 2},
		{Topic: "T", Body: []byte("x"), Delay: time.Minute},
	} {
		if _, err := p.BeginTransaction(ctx, m); !errors.Is(err, core.ErrInvalidMessage) {
			t.Errorf("delayed half message: %v, want ErrInvalidMessage", err)
		}
	}
}

// TestEndTransactionAcked: the acknowledged end is a request whose answer is returned (the
// dev broker does not serve END_TRANSACTION: REQUEST_CODE_NOT_SUPPORTED), and an UNKNOWN
// end, which brokers never answer, is refused before any I/O.
func TestEndTransactionAcked(t *testing.T) {
	dev := startDev(t, devbroker.Config{})
	p := devProducer(t, dev, nil)
	ctx := context.Background()
	tx, err := p.BeginTransaction(ctx, &core.Message{Topic: "T", Body: []byte("half")})
	if err != nil {
		t.Fatal(err)
	}
	if err := p.EndTransactionAcked(ctx, tx, core.TransactionUnknown); err == nil {
		t.Error("an acknowledged UNKNOWN end was sent")
	}
	var re *remoting.Error
	if err := p.EndTransactionAcked(ctx, tx, core.TransactionCommit); !errors.As(err, &re) || re.Code != remoting.RequestCodeNotSupported {
		t.Fatalf("EndTransactionAcked: %v, want the broker's REQUEST_CODE_NOT_SUPPORTED", err)
	}
	if _, ends := totalStats(dev); ends != 1 {
		t.Errorf("%d END_TRANSACTION requests, want 1", ends)
	}
}

// TestBeginTransactionRetryRule: a half message is retried on another broker only when it
// certainly was not stored; a plain send with the same failure is retried.
func TestBeginTransactionRetryRule(t *testing.T) {
	for _, tc := range []struct {
		name       string
		code       remoting.ResponseCode
		notStoreOK bool
		wantSends  int64 // of BeginTransaction
		wantEnds   int64
		wantErr    error
	}{
		{"system error may be stored", remoting.SystemError, false, 1, 0, nil},
		{"system busy is not stored", remoting.SystemBusy, false, 3, 0, nil},
		{"flush disk timeout rolls back", remoting.FlushDiskTimeout, true, 1, 1, core.ErrTransactionNotStoredOK},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dev := startDev(t, devbroker.Config{})
			for _, b := range dev.Brokers() {
				setFault(t, b, devbroker.Fault{Errors: []devbroker.InjectedError{{Code: tc.code, Rate: 1}}})
			}
			p := devProducer(t, dev, func(c *core.ProducerConfig) { c.RetryAnotherBrokerWhenNotStoreOK = tc.notStoreOK })
			ctx := context.Background()
			_, err := p.BeginTransaction(ctx, &core.Message{Topic: "T", Body: []byte("half")})
			if err == nil || (tc.wantErr != nil && !errors.Is(err, tc.wantErr)) {
				t.Fatalf("BeginTransaction: %v, want an error (%v)", err, tc.wantErr)
			}
			var sends, ends int64
			if !testwait.Until(10*time.Second, func() bool {
				sends, ends = totalStats(dev)
				return sends == tc.wantSends && ends == tc.wantEnds
			}) {
				t.Fatalf("half message: %d sends, %d END_TRANSACTION; want %d, %d", sends, ends, tc.wantSends, tc.wantEnds)
			}
			// The same failure on an ordinary send (control): retried up to 3 attempts.
			before, _ := totalStats(dev)
			res, err := p.Send(ctx, &core.Message{Topic: "T", Body: []byte("plain")})
			after, _ := totalStats(dev)
			if attempts := after - before; !tc.notStoreOK && attempts != 3 {
				t.Errorf("plain send: %d attempts (%v %v), want 3", attempts, res, err)
			}
		})
	}
}
