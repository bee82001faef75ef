package daemon

import (
	"context"
	"fmt"

	"github.com/producerd/producerd/core"
	"github.com/producerd/producerd/internal/rmqv2"
)

// rmqv2Tx is the v2 ingress's rmqv2.Transactions: the daemon's own transaction machinery
// (txRouter: handles, limits, memory of ended transactions, check-back routing), with the
// end sent as a request so that the client's EndTransaction is answered after the broker
// accepted it.
type rmqv2Tx struct {
	d     *Daemon
	group string
}

var _ rmqv2.Transactions = (*rmqv2Tx)(nil)

// rmqv2Origin marks a transaction begun by a v2 client in txEntry.origin.
const rmqv2Origin = "rmqv2:"

// Begin sends the half message as the daemon's BeginTransaction does (admitted as a send:
// limits.max_topics and the in-flight limiter) and keeps it under a new handle, with the
// client as its origin, so that its check-backs go to that client first.
func (t *rmqv2Tx) Begin(ctx context.Context, client string, m *core.Message) (string, *core.Transaction, error) {
	g, err := t.d.admitRMQv2(t.group, m.Topic)
	if err != nil {
		return "", nil, err
	}
	h, tx, err := t.d.tx.start(ctx, apiRMQv2, g, m, messageSize(m), rmqv2Origin+client)
	if err != nil {
		return "", nil, rmqv2Refusal(err)
	}
	return h, tx, nil
}

// End consumes the handle, remembers the decision for check-backs and sends
// END_TRANSACTION as a request: it returns the broker's verdict. Only the v2 client that
// began the transaction ends it: a handle of the daemon's own API, or one that leaked
// to another client, is unknown here.
func (t *rmqv2Tx) End(ctx context.Context, client, handle, topic string, state core.TransactionState) error {
	r := t.d.tx
	g, err := t.d.lookup(t.group)
	if err != nil {
		return err
	}
	e, ok := r.take(g, handle, state, func(e *txEntry) bool { return e.tx.Topic == topic && e.origin == rmqv2Origin+client })
	if !ok {
		return fmt.Errorf("%w of topic %s: not begun by this client through this producerd, already ended, resolved by a check-back, "+
			"or older than %v (a pending half message is resolved by the broker's check-back)", rmqv2.ErrUnknownTransaction, topic, txHandleTTL)
	}
	if err := g.prod.EndTransactionAcked(ctx, e.tx, state); err != nil {
		return fmt.Errorf("%w (the %s decision is kept: the broker's check-back of this transaction will apply it)", err, stateLabel(state))
	}
	return nil
}
