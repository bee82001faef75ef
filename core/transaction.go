package core

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/producerd/producerd/plugins/sdk"
	"github.com/producerd/producerd/remoting"
)

// Transactional messages (spec rocketmq-transactions.md): a half message is stored on one
// broker and hidden from consumers until END_TRANSACTION commits it (or rolls it back). A
// broker that holds a half message longer than its transactionTimeOut (6 s) without an end
// asks a producer of the group, on that producer's own connection, with
// CHECK_TRANSACTION_STATE (39); the producer answers with END_TRANSACTION marked
// fromTransactionCheck. Both END_TRANSACTION directions are oneway, as in Java: nothing
// tells the producer whether a commit arrived. A lost END_TRANSACTION (connection reset,
// broker restart) therefore leaves the half message pending, and the broker's check-back
// resolves it: every transactionCheckInterval (30 s on 5.3.3) the broker asks again, up to
// transactionCheckMax (15) times, then moves the message to TRANS_CHECK_MAX_TIME_TOPIC,
// where it is never delivered.

// Property names of transactional messages.
const (
	// PropertyProducerGroup (PGROUP) names the group the broker checks back.
	PropertyProducerGroup = "PGROUP"
	// PropertyCheckImmunity (CHECK_IMMUNITY_TIME_IN_SECONDS) delays a message's first
	// check-back; a user property, so Message.Properties may set it.
	PropertyCheckImmunity = "CHECK_IMMUNITY_TIME_IN_SECONDS"
	// PropertyCheckTimes (TRANSACTION_CHECK_TIMES) counts a message's check-backs so far.
	PropertyCheckTimes = "TRANSACTION_CHECK_TIMES"
	// halfTopic is where the broker keeps half messages; a check names it as its topic.
	halfTopic = "RMQ_SYS_TRANS_HALF_TOPIC"
)

// sysFlagPrepared marks a half message (MessageSysFlag.TRANSACTION_PREPARED_TYPE).
const sysFlagPrepared = 0x4

// TransactionCheckTimeout bounds one call of a TransactionChecker; a checker that has not
// answered by then counts as UNKNOWN (the broker asks again later).
const TransactionCheckTimeout = 30 * time.Second

// MaxChecksInFlight bounds the check-backs of one client instance being answered at a
// time (Java's checkRequestHoldMax, 2000). A check beyond it is dropped and logged; the
// broker asks again at its next round.
const MaxChecksInFlight = 2000

// TransactionState is the resolution of a transaction; its value is END_TRANSACTION's
// commitOrRollback field.
type TransactionState int32

// Transaction states (MessageSysFlag transaction types).
const (
	// TransactionUnknown leaves the half message pending: the broker checks it back later.
	TransactionUnknown TransactionState = 0
	// TransactionCommit delivers the message to the real topic.
	TransactionCommit TransactionState = 8
	// TransactionRollback discards it.
	TransactionRollback TransactionState = 12
)

func (s TransactionState) String() string {
	switch s {
	case TransactionUnknown:
		return "UNKNOWN"
	case TransactionCommit:
		return "COMMIT"
	case TransactionRollback:
		return "ROLLBACK"
	}
	return "TransactionState(" + strconv.Itoa(int(s)) + ")"
}

// Transaction is a half message stored on one broker, waiting for EndTransaction. Its
// fields are what END_TRANSACTION needs; they are bound to that broker (the transaction
// cannot move).
type Transaction struct {
	// ID is the transaction id: the broker's transactionId, which is the UNIQ_KEY.
	ID string
	// MsgID is the message's UNIQ_KEY; OffsetMsgID the broker's id of the half record.
	MsgID       string
	OffsetMsgID string
	// Topic is the real topic (without namespace); Group the producer group (likewise).
	Topic string
	Group string
	// Broker is the broker holding the half message; Queue the queue asked for.
	Broker string
	Queue  sdk.Queue
	// TranStateTableOffset is the half record's offset in the half queue and
	// CommitLogOffset its commit-log offset, decoded from OffsetMsgID.
	TranStateTableOffset int64
	CommitLogOffset      int64
	// Keys are the message's keys, for the application's own lookups.
	Keys []string
	// Born is when the half message was acknowledged.
	Born time.Time
}

// TransactionCheck is one check-back from a broker: is this transaction committed?
type TransactionCheck struct {
	// ID is the transaction id (UNIQ_KEY) and MsgID the message id (the same UNIQ_KEY).
	ID    string
	MsgID string
	// OffsetMsgID is the broker's id of the half record being checked.
	OffsetMsgID string
	// Topic is the real topic and QueueID the queue first asked for (namespace stripped).
	Topic   string
	QueueID int32
	// Group is the producer group (namespace stripped).
	Group string
	// Broker is the checking broker's name (5.1+ brokers send it), Addr its address.
	Broker string
	Addr   string
	Keys   []string
	Tags   string
	// Properties are the user properties of the half message.
	Properties map[string]string
	// Body is the message body, decompressed.
	Body []byte
	// CheckTimes counts this broker's check-backs of the message, this one included.
	CheckTimes int
	// Born is when the producer sent the half message.
	Born time.Time

	tranStateTableOffset, commitLogOffset int64
	headerTopic                           string
	answered                              func(error)
}

// OnAnswered asks that the answer to this check be sent as a request instead of oneway,
// and that f be called with the broker's verdict (nil: it accepted the end; else the
// transport or broker error) once it is known. A checker calls it before it returns. f is
// called once for a COMMIT or ROLLBACK answer, on the check's goroutine, and never for an
// UNKNOWN one (the broker does not answer those).
func (c *TransactionCheck) OnAnswered(f func(error)) { c.answered = f }

// Answered reports the broker's verdict on this check's answer to the OnAnswered function,
// if any. core calls it; a test standing in for core may too.
func (c *TransactionCheck) Answered(err error) {
	if c.answered != nil {
		c.answered(err)
	}
}

// TransactionChecker answers check-backs. It is called on its own goroutine, at most
// MaxChecksInFlight at a time per client instance, with a context that ends after
// TransactionCheckTimeout or when the producer closes. An error or an ended context
// answers UNKNOWN.
type TransactionChecker interface {
	CheckTransaction(ctx context.Context, c *TransactionCheck) (TransactionState, error)
}

// TransactionCheckerFunc adapts a function to TransactionChecker.
type TransactionCheckerFunc func(ctx context.Context, c *TransactionCheck) (TransactionState, error)

// CheckTransaction calls f.
func (f TransactionCheckerFunc) CheckTransaction(ctx context.Context, c *TransactionCheck) (TransactionState, error) {
	return f(ctx, c)
}

// checkerBox lets an atomic.Pointer hold an interface.
type checkerBox struct{ c TransactionChecker }

// SetTransactionChecker registers the checker that answers the brokers' check-backs for
// this producer's group; nil removes it. Without a checker, every check is answered
// UNKNOWN (the broker asks again later). Safe to call at any time.
func (p *Producer) SetTransactionChecker(c TransactionChecker) {
	if c == nil {
		p.checker.Store(nil)
		return
	}
	p.checker.Store(&checkerBox{c})
}

// transactionChecker returns the registered checker, or nil.
func (p *Producer) transactionChecker() TransactionChecker {
	if b := p.checker.Load(); b != nil {
		return b.c
	}
	return nil
}

// ErrTransactionNotStoredOK means the broker stored the half message but answered
// FLUSH_DISK_TIMEOUT, FLUSH_SLAVE_TIMEOUT or SLAVE_NOT_AVAILABLE; as Java does, the
// transaction was rolled back at once.
var ErrTransactionNotStoredOK = errors.New("core: half message not stored OK; transaction rolled back")

// BeginTransaction sends m as a half message (TRAN_MSG, PGROUP, sysFlag PREPARED) and
// returns the pending transaction; end it with EndTransaction. The send uses the sync
// retry loop, but a failed attempt is retried on another broker only when the half
// message certainly was not stored (connection refused, not written, SYSTEM_BUSY): a half
// message stored twice would be checked back twice and could be committed twice. m may not
// have a delay (DelayLevel, DeliverAt, Delay): the broker does not delay transactional
// messages.
func (p *Producer) BeginTransaction(ctx context.Context, m *Message) (*Transaction, error) {
	if err := p.begin(); err != nil {
		return nil, err
	}
	defer p.inflight.Done()
	if m != nil && (m.DelayLevel > 0 || m.isTimer()) {
		return nil, invalid("transaction.delay", "a transactional message cannot be delayed")
	}
	pr := new(prepared)
	if err := p.encodeInto(pr, m, true); err != nil {
		return nil, err
	}
	res, err := p.sendLoop(ctx, pr, 1+p.cfg.Retries)
	if err != nil {
		return nil, err
	}
	tx := &Transaction{ID: res.TransactionID, MsgID: res.MsgID, OffsetMsgID: res.OffsetMsgID, Topic: res.Topic,
		Group: p.Group(), Broker: res.Queue.Broker, Queue: res.Queue, TranStateTableOffset: res.QueueOffset,
		Keys: m.Keys, Born: time.Now()}
	if tx.ID == "" { // a 4.x broker does not answer one
		tx.ID = res.MsgID
	}
	if _, tx.CommitLogOffset, err = ParseOffsetMsgID(res.OffsetMsgID); err != nil {
		// Stored, but it cannot be ended: the check-back will ask about it.
		return nil, fmt.Errorf("%w from broker %s: half message %s: %w", ErrBadResponse, tx.Broker, tx.MsgID, err)
	}
	if res.Status != SendOK {
		err := p.EndTransaction(ctx, tx, TransactionRollback)
		return nil, errors.Join(fmt.Errorf("%w: %s", ErrTransactionNotStoredOK, res.Status), err)
	}
	return tx, nil
}

// EndTransaction commits or rolls back tx: END_TRANSACTION (37), oneway as in Java, to
// the current master of tx.Broker, with fromTransactionCheck=false. A nil error means
// the request was written, not that the broker applied it: if it is lost, the broker's
// check-back resolves the transaction. Ending a transaction twice may deliver it twice;
// callers track which ones they ended. TransactionUnknown sends commitOrRollback=0, which
// the broker only logs.
func (p *Producer) EndTransaction(ctx context.Context, tx *Transaction, state TransactionState) error {
	return p.endTransaction(ctx, tx, state, false)
}

// EndTransactionAcked is EndTransaction sent as a request instead of oneway: it returns
// once the broker answered, with a *remoting.Error when the broker refused the end (for
// example SYSTEM_ERROR "Find prepared transaction message failed" or a producer group that
// does not match). state must be TransactionCommit or TransactionRollback: the broker does
// not answer an UNKNOWN end. A transport error leaves it open whether the end arrived.
func (p *Producer) EndTransactionAcked(ctx context.Context, tx *Transaction, state TransactionState) error {
	if state != TransactionCommit && state != TransactionRollback {
		return fmt.Errorf("core: end transaction: an acknowledged end must commit or roll back, not %s", state)
	}
	return p.endTransaction(ctx, tx, state, true)
}

func (p *Producer) endTransaction(ctx context.Context, tx *Transaction, state TransactionState, acked bool) error {
	if err := p.begin(); err != nil {
		return err
	}
	defer p.inflight.Done()
	if tx == nil {
		return errors.New("core: end transaction: nil transaction")
	}
	if state != TransactionCommit && state != TransactionRollback && state != TransactionUnknown {
		return fmt.Errorf("core: end transaction %s: invalid state %s", tx.ID, state)
	}
	ext := map[string]string{
		"producerGroup":        p.cfg.Group,
		"tranStateTableOffset": strconv.FormatInt(tx.TranStateTableOffset, 10),
		"commitLogOffset":      strconv.FormatInt(tx.CommitLogOffset, 10),
		"commitOrRollback":     strconv.Itoa(int(state)),
		"fromTransactionCheck": "false",
		"msgId":                tx.MsgID,
		"topic":                WithNamespace(p.cfg.Namespace, tx.Topic),
		"bname":                tx.Broker,
	}
	if tx.ID != "" {
		ext["transactionId"] = tx.ID
	}
	_, err := p.brokerCall(ctx, tx.Topic, tx.Broker, remoting.NewRequest(remoting.EndTransaction, ext, nil), !acked,
		fmt.Sprintf("end transaction %s (%s)", tx.ID, state))
	return err
}

// onServerRequest receives the oneway requests brokers send on this client's connections
// (remoting.Config.OnServerRequest), on a connection's reader goroutine: it only hands a
// check-back to a goroutine.
func (c *Client) onServerRequest(addr string, req *remoting.Command) {
	if remoting.RequestCode(req.Code) != remoting.CheckTransactionState {
		c.log.Debug("ignored oneway server request", "addr", addr, "code", req.RequestCode())
		return
	}
	c.mu.Lock()
	if c.closed || c.checks >= MaxChecksInFlight {
		full := !c.closed
		c.mu.Unlock()
		if full {
			c.log.Warn("transaction check dropped: too many checks in flight; the broker asks again later",
				"addr", addr, "limit", MaxChecksInFlight)
		}
		return
	}
	c.checks++
	c.wg.Add(1)
	c.mu.Unlock()
	go func() {
		defer c.wg.Done()
		defer func() { c.mu.Lock(); c.checks--; c.mu.Unlock() }()
		c.answerCheck(addr, req)
	}()
}

// answerCheck decodes a CHECK_TRANSACTION_STATE, asks the group's checker and answers
// END_TRANSACTION to the broker that asked, with the check's offsets (the broker re-puts
// the half record for every check, so the send's offsets no longer match).
func (c *Client) answerCheck(addr string, req *remoting.Command) {
	chk, err := decodeCheck(addr, req)
	if err != nil {
		c.log.Warn("transaction check dropped: undecodable", "addr", addr, "error", err)
		return
	}
	c.mu.Lock()
	p := c.groups[chk.Group]
	c.mu.Unlock()
	if p == nil {
		c.log.Warn("transaction check dropped: no producer of its group here", "addr", addr, "group", chk.Group, "transaction", chk.ID)
		return
	}
	chk.Group = p.Group()
	chk.Topic = WithoutNamespace(p.cfg.Namespace, chk.Topic)
	ctx, cancel := context.WithTimeout(context.Background(), TransactionCheckTimeout)
	defer cancel()
	c.cancelOnStop(ctx, cancel)
	state, remark := TransactionUnknown, ""
	if ck := p.transactionChecker(); ck != nil {
		s, err := ck.CheckTransaction(ctx, chk)
		switch {
		case err != nil:
			remark = "checkLocalTransactionState Exception: " + err.Error()
		case s == TransactionCommit || s == TransactionRollback || s == TransactionUnknown:
			state = s
		default:
			remark = fmt.Sprintf("checker returned invalid state %d", s)
		}
	}
	ext := map[string]string{
		"producerGroup":        p.cfg.Group,
		"tranStateTableOffset": strconv.FormatInt(chk.tranStateTableOffset, 10),
		"commitLogOffset":      strconv.FormatInt(chk.commitLogOffset, 10),
		"commitOrRollback":     strconv.Itoa(int(state)),
		"fromTransactionCheck": "true",
		"msgId":                chk.MsgID,
	}
	if chk.ID != "" {
		ext["transactionId"] = chk.ID
	}
	if chk.headerTopic != "" {
		ext["topic"] = chk.headerTopic
	}
	if chk.Broker != "" {
		ext["bname"] = chk.Broker
	}
	end := remoting.NewRequest(remoting.EndTransaction, ext, nil)
	end.Remark = remark
	ectx, ecancel := context.WithTimeout(context.Background(), p.cfg.SendTimeout)
	defer ecancel()
	if chk.answered != nil && state != TransactionUnknown {
		_, err := c.invokeChecked(ectx, addr, end)
		if err != nil {
			c.log.Warn("transaction check answer not accepted; the broker asks again later", "addr", addr,
				"transaction", chk.ID, "state", state, "error", err)
		}
		chk.Answered(err)
		return
	}
	if err := c.rc.InvokeOneway(ectx, addr, end); err != nil {
		c.log.Warn("transaction check answer not sent; the broker asks again later", "addr", addr,
			"transaction", chk.ID, "state", state, "error", err)
	}
}

// decodeCheck reads a CHECK_TRANSACTION_STATE header and its body (the half message).
func decodeCheck(addr string, req *remoting.Command) (*TransactionCheck, error) {
	h := req.ExtFields
	tso, err1 := strconv.ParseInt(h["tranStateTableOffset"], 10, 64)
	clo, err2 := strconv.ParseInt(h["commitLogOffset"], 10, 64)
	if err := errors.Join(err1, err2); err != nil {
		return nil, fmt.Errorf("check header offsets: %w", err)
	}
	msgs, err := DecodeMessages(req.Body)
	if err != nil {
		return nil, err
	}
	if len(msgs) != 1 {
		return nil, fmt.Errorf("check body holds %d messages, want 1", len(msgs))
	}
	m := msgs[0]
	chk := &TransactionCheck{ID: h["transactionId"], MsgID: m.UniqKey(), OffsetMsgID: h["offsetMsgId"],
		Topic: m.Topic, QueueID: m.QueueID, Group: m.Properties[PropertyProducerGroup], Broker: h["bname"], Addr: addr,
		Keys: m.Keys(), Tags: m.Tags(), Properties: userProperties(m.Properties), Body: m.Body,
		Born: time.UnixMilli(m.BornTime), tranStateTableOffset: tso, commitLogOffset: clo, headerTopic: h["topic"]}
	chk.CheckTimes, _ = strconv.Atoi(m.Properties[PropertyCheckTimes])
	if chk.MsgID == "" {
		chk.MsgID = h["msgId"]
	}
	if chk.ID == "" {
		chk.ID = chk.MsgID
	}
	if chk.Group == "" {
		return nil, fmt.Errorf("half message %s has no %s property", chk.MsgID, PropertyProducerGroup)
	}
	return chk, nil
}

// userProperties drops the system properties a stored message carries: the reserved
// names and those a user may not set (userRefused: the broker's two on a half message,
// the sharding key).
func userProperties(all map[string]string) map[string]string {
	out := make(map[string]string)
	for k, v := range all {
		if !reservedProperties[k] && !userRefused[k] {
			out[k] = v
		}
	}
	return out
}
