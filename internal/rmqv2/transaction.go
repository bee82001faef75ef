package rmqv2

import (
	"context"
	"crypto/md5" //nolint:gosec // the body digest the SDKs check, not a security check
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	pb "github.com/producerd/producerd/api/rmqv2"
	"github.com/producerd/producerd/core"
	"github.com/producerd/producerd/remoting"
)

// Transactional messages over v2. A TRANSACTION message is sent as a half message through
// Transactions.Begin (the daemon's transaction machinery: the same handles, limits and
// memory of ended transactions as its own API). The transaction id answered to the client
// is that handle, not the UNIQ_KEY the Proxy answers: it is unguessable, so no other
// client can end a transaction it did not begin. EndTransaction ends it and answers only
// after the broker accepted the end (the Proxy answers once its oneway request is
// written). A broker's check-back of a v2 client's transaction reaches the client as
// RecoverOrphanedTransactionCommand on its Telemetry stream, under a transaction id made
// for that check; the client's EndTransaction (source SERVER_CHECK) for that id answers
// the check, and is answered once the broker accepted that end.

// Transactions keeps the v2 clients' transactions. The daemon implements it over its own
// transaction machinery; Service.CheckTransaction is its way back to the clients.
type Transactions interface {
	// Begin sends m as a half message for the client with the given x-mq-client-id and
	// keeps the transaction under a new handle, which is returned; it is the transaction
	// id answered to the client.
	Begin(ctx context.Context, client string, m *core.Message) (handle string, tx *core.Transaction, err error)
	// End commits or rolls back the transaction under handle, of topic, begun by client,
	// and returns once the broker accepted the end. The handle is gone afterwards, also
	// after an error (the decision is kept for the broker's check-back). An unknown handle,
	// or one another client (or another API) began, wraps ErrUnknownTransaction.
	End(ctx context.Context, client, handle, topic string, state core.TransactionState) error
}

// DefaultCheckTimeout is how long a check-back waits for a v2 client's EndTransaction after
// the RecoverOrphanedTransactionCommand was written; then it is answered UNKNOWN and the
// broker asks again later. The Java SDK runs its checker on one thread per client.
const DefaultCheckTimeout = 15 * time.Second

// sessionQueue is how many commands wait to be written on one Telemetry stream; a check
// that finds it full goes to another session or is answered UNKNOWN.
const sessionQueue = 256

// maxRecoverySeconds is the Proxy's maxTransactionRecoverySecond.
const maxRecoverySeconds = 3600

// session is one client's Telemetry stream, the way commands reach the client.
type session struct {
	client string
	out    chan *pb.TelemetryCommand
	done   chan struct{} // closed when the stream ended
	topics map[string]bool
}

// orphanCheck is a check-back waiting for a client's EndTransaction.
type orphanCheck struct {
	topic  string
	answer chan core.TransactionState // buffered 1
	result chan error                 // buffered 1: the broker's verdict on the answer
	gone   chan struct{}              // closed when the check stopped waiting
}

// txState keeps the sessions and the waiting checks.
type txState struct {
	mu       sync.Mutex
	sessions map[string]*session     // client id -> its latest Telemetry stream
	checks   map[string]*orphanCheck // check transaction id -> waiting check
	rr       int
	streams  int            // open Telemetry streams
	perConn  map[string]int // client address -> its open Telemetry streams
}

// acquireStream counts a Telemetry stream of the connection from addr; it returns why
// the stream is refused, "" when it may open.
func (s *Service) acquireStream(addr string) string {
	s.tx.mu.Lock()
	defer s.tx.mu.Unlock()
	switch {
	case s.tx.streams >= s.opts.MaxTelemetryStreams:
		return fmt.Sprintf("producerd serves at most %d telemetry streams; try again later", s.opts.MaxTelemetryStreams)
	case s.tx.perConn[addr] >= maxTelemetryPerConn:
		return fmt.Sprintf("at most %d telemetry streams per connection", maxTelemetryPerConn)
	}
	s.tx.streams++
	s.tx.perConn[addr]++
	return ""
}

func (s *Service) releaseStream(addr string) {
	s.tx.mu.Lock()
	defer s.tx.mu.Unlock()
	s.tx.streams--
	if s.tx.perConn[addr]--; s.tx.perConn[addr] <= 0 {
		delete(s.tx.perConn, addr)
	}
}

// openSession registers client's Telemetry stream; it replaces an older one of the client.
func (s *Service) openSession(client string) *session {
	ss := &session{client: client, out: make(chan *pb.TelemetryCommand, sessionQueue), done: make(chan struct{}), topics: map[string]bool{}}
	s.tx.mu.Lock()
	s.tx.sessions[client] = ss
	s.tx.mu.Unlock()
	return ss
}

func (s *Service) closeSession(ss *session) {
	s.tx.mu.Lock()
	if s.tx.sessions[ss.client] == ss {
		delete(s.tx.sessions, ss.client)
	}
	s.tx.mu.Unlock()
	close(ss.done)
}

// setTopics records the topics a session's Settings publish to.
func (s *Service) setTopics(ss *session, topics []*pb.Resource) {
	m := make(map[string]bool, len(topics))
	for _, t := range topics {
		m[t.GetName()] = true
	}
	s.tx.mu.Lock()
	ss.topics = m
	s.tx.mu.Unlock()
}

// pickSession returns client's session, else one of the sessions publishing to topic,
// round-robin; nil when there is none.
func (s *Service) pickSession(client, topic string) *session {
	s.tx.mu.Lock()
	defer s.tx.mu.Unlock()
	if ss := s.tx.sessions[client]; ss != nil && client != "" {
		return ss
	}
	var cands []*session
	for _, ss := range s.tx.sessions {
		if ss.topics[topic] {
			cands = append(cands, ss)
		}
	}
	if len(cands) == 0 {
		return nil
	}
	s.tx.rr++
	return cands[s.tx.rr%len(cands)]
}

// CheckTransaction asks a v2 client about a broker's check-back: client's own Telemetry
// stream if it is connected (client is the x-mq-client-id that began the transaction, ""
// if unknown), else a client whose Settings publish to the check's topic. ok is false when
// no client session could take the check. A client that does not answer within
// Options.CheckTimeout, or answers UNKNOWN, leaves the transaction UNKNOWN. A COMMIT or
// ROLLBACK answer is sent to the broker by the caller (core) after this returns; the
// client's EndTransaction is answered with the broker's verdict.
func (s *Service) CheckTransaction(ctx context.Context, c *core.TransactionCheck, client string) (state core.TransactionState, ok bool) {
	ss := s.pickSession(client, c.Topic)
	if ss == nil {
		return core.TransactionUnknown, false
	}
	id := "check-" + rand.Text()
	w := &orphanCheck{topic: c.Topic, answer: make(chan core.TransactionState, 1), result: make(chan error, 1), gone: make(chan struct{})}
	s.tx.mu.Lock()
	s.tx.checks[id] = w
	s.tx.mu.Unlock()
	taken := false
	defer func() {
		s.tx.mu.Lock()
		delete(s.tx.checks, id)
		s.tx.mu.Unlock()
		if !taken {
			close(w.gone) // an answer arriving now is told the check stopped waiting
		}
	}()
	cmd := &pb.TelemetryCommand{Command: &pb.TelemetryCommand_RecoverOrphanedTransactionCommand{
		RecoverOrphanedTransactionCommand: &pb.RecoverOrphanedTransactionCommand{Message: checkMessage(c, s.opts.Namespace), TransactionId: id}}}
	select {
	case ss.out <- cmd:
	default:
		return core.TransactionUnknown, false // this client is behind
	}
	t := time.NewTimer(s.opts.CheckTimeout)
	defer t.Stop()
	select {
	case st := <-w.answer:
		if st != core.TransactionUnknown {
			// The client's EndTransaction waits for the broker's verdict on this answer.
			taken = true
			c.OnAnswered(func(err error) { w.result <- err })
		}
		return st, true
	case <-t.C:
	case <-ctx.Done():
	case <-ss.done:
	case <-s.done:
	}
	return core.TransactionUnknown, true
}

// checkMessage is the half message of a check as the SDKs read it (the Proxy's
// GrpcConverter fields that a check carries).
func checkMessage(c *core.TransactionCheck, ns string) *pb.Message {
	sum := md5.Sum(c.Body) //nolint:gosec // see import
	sp := &pb.SystemProperties{
		Keys: c.Keys, MessageId: c.MsgID,
		BodyDigest:    &pb.Digest{Type: pb.DigestType_MD5, Checksum: hex.EncodeToString(sum[:])},
		BodyEncoding:  pb.Encoding_IDENTITY,
		MessageType:   pb.MessageType_TRANSACTION,
		BornTimestamp: timestamppb.New(c.Born),
		QueueId:       c.QueueID,
	}
	if c.Tags != "" {
		sp.Tag = &c.Tags
	}
	return &pb.Message{Topic: &pb.Resource{ResourceNamespace: ns, Name: c.Topic}, UserProperties: c.Properties, SystemProperties: sp, Body: c.Body}
}

// EndTransaction commits or rolls back a transaction begun by SendMessage, or answers a
// RecoverOrphanedTransactionCommand; either way it answers after the broker accepted the
// end. A transaction id this producerd does not hold (already ended, resolved by a check,
// never begun here) is INVALID_TRANSACTION_ID; a resolution UNSPECIFIED (the Go SDK's
// UNKNOWN) ends nothing and leaves the transaction to the broker's check-back.
func (s *Service) EndTransaction(ctx context.Context, req *pb.EndTransactionRequest) (*pb.EndTransactionResponse, error) {
	answer := func(st *pb.Status) (*pb.EndTransactionResponse, error) {
		return &pb.EndTransactionResponse{Status: st}, nil
	}
	if st := s.checkCall(ctx, req.GetTopic()); st != nil {
		return answer(st)
	}
	topic := req.GetTopic().GetName()
	if st := checkTopic(topic); st != nil {
		return answer(st)
	}
	id := req.GetTransactionId()
	if id == "" {
		return answer(newStatus(pb.Code_INVALID_TRANSACTION_ID, "transaction id cannot be empty"))
	}
	var state core.TransactionState
	switch req.GetResolution() {
	case pb.TransactionResolution_COMMIT:
		state = core.TransactionCommit
	case pb.TransactionResolution_ROLLBACK:
		state = core.TransactionRollback
	case pb.TransactionResolution_TRANSACTION_RESOLUTION_UNSPECIFIED:
		state = core.TransactionUnknown
	default:
		return answer(newStatus(pb.Code_BAD_REQUEST, "unknown transaction resolution %d", req.GetResolution()))
	}
	// The answer to a check, whatever the source says (the Go SDK leaves it unset).
	s.tx.mu.Lock()
	w := s.tx.checks[id]
	if w != nil && w.topic == topic {
		delete(s.tx.checks, id)
	}
	s.tx.mu.Unlock()
	if w != nil {
		if w.topic != topic {
			return answer(newStatus(pb.Code_INVALID_TRANSACTION_ID, "transaction %s is not of topic %s", id, topic))
		}
		return answer(s.answerCheck(ctx, w, state))
	}
	if s.opts.Transactions == nil {
		return answer(newStatus(pb.Code_INVALID_TRANSACTION_ID, "unknown transaction: producerd sends no transactional messages here"))
	}
	if state == core.TransactionUnknown {
		return answer(newStatus(pb.Code_OK, "nothing ended: the broker checks the transaction back"))
	}
	if err := s.opts.Transactions.End(ctx, clientID(ctx), id, topic, state); err != nil {
		return answer(endStatus(err))
	}
	return answer(okStatus())
}

// answerCheck hands a client's answer to the waiting check and waits for the broker's
// verdict on it.
func (s *Service) answerCheck(ctx context.Context, w *orphanCheck, state core.TransactionState) *pb.Status {
	w.answer <- state
	if state == core.TransactionUnknown {
		return okStatus()
	}
	select {
	case err := <-w.result:
		if err != nil {
			return endStatus(err)
		}
		return okStatus()
	case <-w.gone:
		// The check stopped waiting just before the answer (its timeout): maybe it took
		// the answer, maybe not; a later check asks again.
		select {
		case err := <-w.result:
			if err != nil {
				return endStatus(err)
			}
			return okStatus()
		default:
		}
		return newStatus(pb.Code_PROXY_TIMEOUT, "the check-back stopped waiting for this answer; the broker asks again later")
	case <-ctx.Done():
		return newStatus(pb.Code_PROXY_TIMEOUT, "no answer from the broker before the deadline: %v", ctx.Err())
	}
}

// endStatus maps a failed end. A broker refusal is INTERNAL_SERVER_ERROR with the broker's
// remark (as the Proxy answers broker errors); the decision is kept for the check-back.
func endStatus(err error) *pb.Status {
	var re *remoting.Error
	switch {
	case errors.Is(err, ErrUnknownTransaction):
		return newStatus(pb.Code_INVALID_TRANSACTION_ID, "%v", err)
	case errors.As(err, &re):
		return newStatus(pb.Code_INTERNAL_SERVER_ERROR, "%v", err)
	}
	return statusOf(err)
}

// recoverySeconds is CHECK_IMMUNITY_TIME_IN_SECONDS for a TRANSACTION message's
// orphaned_transaction_recovery_duration ("" when unset), or a status.
func recoverySeconds(sp *pb.SystemProperties) (string, *pb.Status) {
	d := sp.GetOrphanedTransactionRecoveryDuration()
	if d == nil {
		return "", nil
	}
	if !d.IsValid() || d.GetSeconds() < 0 || d.GetSeconds() > maxRecoverySeconds {
		return "", newStatus(pb.Code_BAD_REQUEST, "orphaned transaction recovery duration must be 0 to %d s", maxRecoverySeconds)
	}
	if d.GetSeconds() == 0 {
		return "", nil
	}
	return strconv.FormatInt(d.GetSeconds(), 10), nil
}
