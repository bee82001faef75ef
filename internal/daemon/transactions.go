package daemon

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/producerd/producerd/api/producerdpb"
	"github.com/producerd/producerd/core"
)

// Transactions through the daemon. An application begins a transaction (the daemon
// sends the half message and keeps the core.Transaction under its id) and ends it with
// commit or rollback (the daemon forgets the id at once, so a second end is refused
// instead of delivering the message twice, and remembers the decision for a while). A
// broker's check-back reaches the daemon's producer of the group (core), which asks
// txRouter.route: a remembered decision answers it at once (the app's END_TRANSACTION was
// lost); otherwise one of the group's checker streams, round-robin, gets the check and
// has its deadline to answer. A stream that ends hands its unanswered checks to another
// checker of the group; no checker, a missed deadline or an UNKNOWN answer end as
// UNKNOWN, which leaves the half message to the broker's next check.

// Transaction limits of the daemon.
const (
	// txHandleTTL is how long a begun transaction's handle is kept: longer than the
	// broker's check-backs last (15 checks, about 7.5 min at 5.3.3's 30 s interval).
	txHandleTTL = time.Hour
	// txMaxPending bounds the handles kept; BeginTransaction beyond it is RESOURCE_EXHAUSTED.
	txMaxPending = 100_000
	// txRememberTTL is how long an end's decision answers check-backs.
	txRememberTTL = 15 * time.Minute
	// txMaxRemembered bounds the decisions kept (about 200 B each: 20 MB); past it the
	// oldest is forgotten first, and its check-back goes to a checker like one of a
	// transaction begun elsewhere.
	txMaxRemembered = 100_000
	// txSweepEvery is how often (at most) the maps are swept, on a begin or end.
	txSweepEvery = time.Minute
	// defaultCheckDeadline and maxCheckDeadline bound a checker's answer time; core stops
	// waiting after core.TransactionCheckTimeout.
	defaultCheckDeadline = 5 * time.Second
	maxCheckDeadline     = 25 * time.Second
	// checkerQueue is how many checks wait to be written on one checker stream.
	checkerQueue = 256
)

// Transaction errors.
var (
	// ErrUnknownTransaction: an end names a transaction this daemon does not hold.
	ErrUnknownTransaction = errors.New("daemon: unknown transaction")
	errTooManyTx          = errors.New("daemon: too many open transactions; end some first")
)

// txRouter holds begun transactions and the checker streams, per group.
type txRouter struct {
	d *Daemon

	mu       sync.Mutex
	pending  map[string]*txEntry       // handle -> begun, not ended
	handles  map[string]string         // transaction id -> handle, of the pending ones
	ended    map[string]txDecision     // transaction id -> decision, answers lost ends
	endOrder []endedID                 // ended's ids, oldest first (with stale entries)
	checkers map[string][]*checkerConn // group -> streams, in registration order
	// v2check, when the v2 ingress serves transactions, asks its clients (rmqv2tx.go).
	v2check   func(ctx context.Context, c *core.TransactionCheck, client string) (core.TransactionState, bool)
	rr        map[string]int
	lastSweep time.Time
	seq       uint64
	forgotten uint64 // decisions dropped by txMaxRemembered before their TTL

	checks   *prometheus.CounterVec // group, result
	txs      *prometheus.CounterVec // group, action
	checkerN *prometheus.GaugeVec   // group
}

type txEntry struct {
	group string
	tx    *core.Transaction
	born  time.Time
	// origin is rmqv2Origin + the client id for a v2 client's transaction, "" for the
	// daemon's own API: it decides who answers the check-backs (rmqv2tx.go).
	origin string
}

type txDecision struct {
	state core.TransactionState
	at    time.Time
	seq   uint64 // matches the endOrder entry that drops it
}

type endedID struct {
	id  string
	seq uint64
}

func newTxRouter(d *Daemon) *txRouter {
	r := &txRouter{d: d, pending: map[string]*txEntry{}, handles: map[string]string{}, ended: map[string]txDecision{},
		checkers: map[string][]*checkerConn{}, rr: map[string]int{}, lastSweep: time.Now()}
	r.checks = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "producerd_transaction_checks_total",
		Help: "Broker check-backs by group and result: commit, rollback, unknown (answered by a checker), remembered " +
			"(answered from an earlier end), no_checker, deadline, canceled (answered UNKNOWN), rerouted (a checker stream ended or was full; tried on another)."},
		[]string{"group", "result"})
	r.txs = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "producerd_transactions_total",
		Help: "Transactions by group and action: begin, begin_error, commit, rollback, end_unknown (an end for an unknown handle)."},
		[]string{"group", "action"})
	r.checkerN = prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "producerd_transaction_checkers",
		Help: "Connected TransactionChecks streams by group."}, []string{"group"})
	open := prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "producerd_transactions_open",
		Help: "Transactions begun through the daemon and not ended yet (handles kept)."}, func() float64 {
		r.mu.Lock()
		defer r.mu.Unlock()
		return float64(len(r.pending))
	})
	forgotten := prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "producerd_transaction_decisions_forgotten_total",
		Help: "Ended transactions' decisions dropped before their 15 min because 100000 were kept (a check-back for one goes to a checker)."}, func() float64 {
		r.mu.Lock()
		defer r.mu.Unlock()
		return float64(r.forgotten)
	})
	d.met.reg.MustRegister(r.checks, r.txs, r.checkerN, open, forgotten)
	return r
}

// checker is the core.TransactionChecker of a group.
func (r *txRouter) checker(group string) core.TransactionChecker {
	return core.TransactionCheckerFunc(func(ctx context.Context, c *core.TransactionCheck) (core.TransactionState, error) {
		return r.route(ctx, group, c), nil
	})
}

// sweepLocked drops expired handles and decisions, at most once per txSweepEvery.
func (r *txRouter) sweepLocked(now time.Time) {
	if now.Sub(r.lastSweep) < txSweepEvery {
		return
	}
	r.lastSweep = now
	for h, e := range r.pending {
		if now.Sub(e.born) > txHandleTTL {
			delete(r.pending, h)
			delete(r.handles, e.tx.ID)
		}
	}
	for len(r.endOrder) > 0 {
		o := r.endOrder[0]
		dec, ok := r.ended[o.id]
		if ok && dec.seq == o.seq && now.Sub(dec.at) <= txRememberTTL {
			break
		}
		if ok && dec.seq == o.seq {
			delete(r.ended, o.id)
		}
		r.endOrder = r.endOrder[1:]
	}
}

// rememberLocked records a decision for check-backs, forgetting the oldest ones past
// txMaxRemembered.
func (r *txRouter) rememberLocked(id string, state core.TransactionState, now time.Time) {
	r.seq++
	r.ended[id] = txDecision{state: state, at: now, seq: r.seq}
	r.endOrder = append(r.endOrder, endedID{id: id, seq: r.seq})
	for len(r.ended) > txMaxRemembered && len(r.endOrder) > 0 {
		o := r.endOrder[0]
		r.endOrder = r.endOrder[1:]
		if dec, ok := r.ended[o.id]; ok && dec.seq == o.seq {
			delete(r.ended, o.id)
			r.forgotten++
		}
	}
	// Stale entries (an id remembered twice) are bounded by compacting when they
	// outnumber the live ones.
	if len(r.endOrder) > 2*len(r.ended)+1024 {
		live := r.endOrder[:0:0]
		for _, o := range r.endOrder {
			if dec, ok := r.ended[o.id]; ok && dec.seq == o.seq {
				live = append(live, o)
			}
		}
		r.endOrder = live
	}
}

// newHandle returns an unguessable transaction handle: the UNIQ_KEY is sequential, so
// another application could end a transaction it did not begin by guessing it.
func newHandle() string { return rand.Text() }

// begin sends a half message and keeps it under a new handle. It is admitted as a send
// is: the message checks, limits.max_topics and the in-flight limiter; prepaid is what
// the caller already charged to the in-flight bytes (the HTTP body).
func (r *txRouter) begin(ctx context.Context, api string, m *producerdpb.Message, prepaid int64) (*producerdpb.BeginTransactionResponse, error) {
	d := r.d
	if m != nil && m.GetMode() != producerdpb.SendMode_SEND_MODE_SYNC {
		return nil, d.reject(api, fmt.Errorf("%w: a transactional message is sent in sync mode", core.ErrInvalidMessage))
	}
	g, err := d.admitMessage(api, m)
	if err != nil {
		return nil, err
	}
	h, tx, err := r.start(ctx, api, g, toCore(m), max(0, int64(proto.Size(m))-prepaid), "")
	if err != nil {
		return nil, err
	}
	return &producerdpb.BeginTransactionResponse{TransactionId: h, Result: &producerdpb.SendResult{
		MsgId: tx.MsgID, OffsetMsgId: tx.OffsetMsgID, Topic: tx.Topic, Broker: tx.Broker,
		QueueId: tx.Queue.ID, QueueOffset: tx.TranStateTableOffset, Attempts: 1}}, nil
}

// start sends the half message m of g, charged size in-flight bytes, and keeps it under a
// new handle with its origin ("" for the daemon's own API; see txEntry). The API's begin
// has admitted m (message checks, limits.max_topics) before.
func (r *txRouter) start(ctx context.Context, api string, g *group, m *core.Message, size int64, origin string) (string, *core.Transaction, error) {
	d := r.d
	r.mu.Lock()
	full := len(r.pending) >= txMaxPending
	r.mu.Unlock()
	if full {
		return "", nil, errTooManyTx
	}
	if err := d.limit.acquire(1, size); err != nil {
		return "", nil, d.reject(api, err)
	}
	defer d.limit.release(1, size)
	begun := time.Now()
	tx, err := g.prod.BeginTransaction(ctx, m)
	d.finished(api, g, m.Topic, begun, 1, err)
	if err != nil {
		r.txs.WithLabelValues(g.name, "begin_error").Inc()
		return "", nil, err
	}
	r.txs.WithLabelValues(g.name, "begin").Inc()
	now := time.Now()
	h := newHandle()
	r.mu.Lock()
	r.sweepLocked(now)
	r.pending[h] = &txEntry{group: g.name, tx: tx, born: now, origin: origin}
	r.handles[tx.ID] = h
	r.mu.Unlock()
	return h, tx, nil
}

// take consumes the handle of a pending transaction of g that mine accepts, remembers
// state for its check-backs and counts the decision; false (counted as end_unknown)
// when there is no such transaction.
func (r *txRouter) take(g *group, handle string, state core.TransactionState, mine func(*txEntry) bool) (*txEntry, bool) {
	now := time.Now()
	r.mu.Lock()
	r.sweepLocked(now)
	e := r.pending[handle]
	ok := e != nil && e.group == g.name && mine(e)
	if ok {
		delete(r.pending, handle)
		delete(r.handles, e.tx.ID)
		r.rememberLocked(e.tx.ID, state, now)
	}
	r.mu.Unlock()
	if !ok {
		r.txs.WithLabelValues(g.name, "end_unknown").Inc()
		return nil, false
	}
	r.txs.WithLabelValues(g.name, stateLabel(state)).Inc()
	return e, true
}

// end commits or rolls back a begun transaction; the handle is gone afterwards.
func (r *txRouter) end(ctx context.Context, groupName, id string, res producerdpb.TransactionResolution) error {
	var state core.TransactionState
	switch res {
	case producerdpb.TransactionResolution_TRANSACTION_RESOLUTION_COMMIT:
		state = core.TransactionCommit
	case producerdpb.TransactionResolution_TRANSACTION_RESOLUTION_ROLLBACK:
		state = core.TransactionRollback
	default:
		return fmt.Errorf("%w: resolution must be COMMIT or ROLLBACK, got %s", core.ErrInvalidMessage, res)
	}
	g, err := r.d.lookup(groupName)
	if err != nil {
		return err
	}
	e, ok := r.take(g, id, state, func(*txEntry) bool { return true })
	if !ok {
		// The handle is not echoed: it is a capability, and logs and proxies keep errors.
		return fmt.Errorf("%w in group %s: not begun through this daemon, already ended, resolved by a check-back, "+
			"or older than %v (a pending half message is resolved by the broker's check-back)", ErrUnknownTransaction, g.name, txHandleTTL)
	}
	// The decision is remembered even if the oneway write fails: the check-back then gets
	// it from memory, so the caller must not end the transaction again.
	if err := g.prod.EndTransaction(ctx, e.tx, state); err != nil {
		return fmt.Errorf("%w (the %s decision is kept: the broker's check-back of this transaction will apply it)", err, stateLabel(state))
	}
	return nil
}

func stateLabel(s core.TransactionState) string {
	switch s {
	case core.TransactionCommit:
		return "commit"
	case core.TransactionRollback:
		return "rollback"
	}
	return "unknown"
}

// route answers one check-back of group: from a remembered end, else through a checker.
func (r *txRouter) route(ctx context.Context, group string, c *core.TransactionCheck) core.TransactionState {
	r.mu.Lock()
	dec, remembered := r.ended[c.ID]
	origin, known := "", false
	if e := r.pending[r.handles[c.ID]]; e != nil {
		origin, known = e.origin, true
	}
	v2check, daemonCheckers := r.v2check, len(r.checkers[group]) > 0
	r.mu.Unlock()
	if remembered {
		r.checks.WithLabelValues(group, "remembered").Inc()
		return dec.state
	}
	// A v2 client's transaction is asked of v2 clients only, and one begun through the
	// daemon's API of the daemon's checkers only (neither knows the other's, and might
	// roll it back). One of unknown origin (begun before a restart, or its handle expired)
	// goes to the daemon's checkers when the group has any, else to v2 clients.
	client, v2 := strings.CutPrefix(origin, rmqv2Origin)
	if v2check != nil && (v2 || (!known && !daemonCheckers)) {
		state, ok := v2check(ctx, c, client)
		switch {
		case !ok:
			state = core.TransactionUnknown
			r.checks.WithLabelValues(group, "no_checker").Inc()
			r.d.log.Warn("transaction check answered UNKNOWN: no RocketMQ v2 client session publishes to its topic; the broker asks again later",
				"group", group, "transaction", c.ID, "topic", c.Topic, "check_times", c.CheckTimes)
		case state != core.TransactionUnknown:
			r.checks.WithLabelValues(group, stateLabel(state)).Inc()
			r.resolved(c.ID, state)
		default:
			r.checks.WithLabelValues(group, "unknown").Inc()
		}
		return state
	}
	var tried []*checkerConn
	for {
		cc := r.pick(group, tried)
		if cc == nil {
			r.checks.WithLabelValues(group, "no_checker").Inc()
			r.d.log.Warn("transaction check answered UNKNOWN: no checker connected for the group; the broker asks again later",
				"group", group, "transaction", c.ID, "broker", c.Broker, "check_times", c.CheckTimes,
				"checkers_tried", len(tried)) // tried ones ended or had a full queue
			return core.TransactionUnknown
		}
		state, why := cc.ask(ctx, c)
		switch why {
		case "":
			r.checks.WithLabelValues(group, stateLabel(state)).Inc()
			if state != core.TransactionUnknown {
				r.resolved(c.ID, state)
			}
			return state
		case "rerouted":
			r.checks.WithLabelValues(group, why).Inc()
			tried = append(tried, cc)
			continue
		}
		r.checks.WithLabelValues(group, why).Inc()
		r.d.log.Warn("transaction check answered UNKNOWN", "group", group, "transaction", c.ID, "reason", why)
		return core.TransactionUnknown
	}
}

// resolved records a checker's decision: the handle is gone (an end now would deliver
// twice) and later checks of the same transaction get the same answer.
func (r *txRouter) resolved(id string, state core.TransactionState) {
	r.mu.Lock()
	if h, ok := r.handles[id]; ok {
		delete(r.pending, h)
		delete(r.handles, id)
	}
	r.rememberLocked(id, state, time.Now())
	r.mu.Unlock()
}

// pick chooses the next live checker of group, round-robin, skipping tried ones.
func (r *txRouter) pick(group string, tried []*checkerConn) *checkerConn {
	r.mu.Lock()
	defer r.mu.Unlock()
	list := r.checkers[group]
	for range list {
		i := r.rr[group] % len(list)
		r.rr[group] = i + 1
		cc := list[i]
		skip := false
		for _, t := range tried {
			skip = skip || t == cc
		}
		if !skip {
			return cc
		}
	}
	return nil
}

func (r *txRouter) add(cc *checkerConn) {
	r.mu.Lock()
	r.checkers[cc.group] = append(r.checkers[cc.group], cc)
	r.mu.Unlock()
	r.checkerN.WithLabelValues(cc.group).Inc()
}

func (r *txRouter) remove(cc *checkerConn) {
	r.mu.Lock()
	list := r.checkers[cc.group]
	for i, x := range list {
		if x == cc {
			list = append(list[:i:i], list[i+1:]...)
			break
		}
	}
	if len(list) == 0 {
		delete(r.checkers, cc.group)
	} else {
		r.checkers[cc.group] = list
	}
	r.mu.Unlock()
	r.checkerN.WithLabelValues(cc.group).Dec()
}

// checkerConn is one registered checker stream.
type checkerConn struct {
	group       string
	includeBody bool
	deadline    time.Duration
	out         chan *producerdpb.TransactionChecksResponse
	done        chan struct{} // closed when the stream ends

	mu      sync.Mutex
	nextID  uint64
	waiting map[uint64]*waitingCheck
}

type waitingCheck struct {
	id     string
	answer chan core.TransactionState // buffered 1
}

// ask sends c on the stream and waits for its answer. why is "" with an answer, else
// "rerouted" (the stream ended or is full: try another), "deadline" or "canceled".
func (cc *checkerConn) ask(ctx context.Context, c *core.TransactionCheck) (core.TransactionState, string) {
	w := &waitingCheck{id: c.ID, answer: make(chan core.TransactionState, 1)}
	cc.mu.Lock()
	cc.nextID++
	cid := cc.nextID
	cc.waiting[cid] = w
	cc.mu.Unlock()
	defer func() {
		cc.mu.Lock()
		delete(cc.waiting, cid)
		cc.mu.Unlock()
	}()
	msg := &producerdpb.TransactionCheck{CheckId: cid, ProducerGroup: c.Group, TransactionId: c.ID, MessageId: c.MsgID,
		Topic: c.Topic, Keys: c.Keys, Tags: c.Tags, Properties: c.Properties, CheckTimes: int32(c.CheckTimes),
		Broker: c.Broker, BornTime: timestamppb.New(c.Born)}
	if cc.includeBody {
		msg.Body = c.Body
	}
	select {
	case cc.out <- &producerdpb.TransactionChecksResponse{Response: &producerdpb.TransactionChecksResponse_Check{Check: msg}}:
	case <-cc.done:
		return core.TransactionUnknown, "rerouted"
	default:
		return core.TransactionUnknown, "rerouted" // this checker is behind: another may answer
	}
	t := time.NewTimer(cc.deadline)
	defer t.Stop()
	select {
	case s := <-w.answer:
		return s, ""
	case <-cc.done:
		return core.TransactionUnknown, "rerouted"
	case <-t.C:
		return core.TransactionUnknown, "deadline"
	case <-ctx.Done():
		return core.TransactionUnknown, "canceled"
	}
}

// answer delivers an application's answer; false when no such check waits.
func (cc *checkerConn) answer(a *producerdpb.TransactionCheckAnswer) bool {
	var s core.TransactionState
	switch a.GetResolution() {
	case producerdpb.TransactionResolution_TRANSACTION_RESOLUTION_COMMIT:
		s = core.TransactionCommit
	case producerdpb.TransactionResolution_TRANSACTION_RESOLUTION_ROLLBACK:
		s = core.TransactionRollback
	case producerdpb.TransactionResolution_TRANSACTION_RESOLUTION_UNKNOWN:
		s = core.TransactionUnknown
	default:
		return false
	}
	cc.mu.Lock()
	w := cc.waiting[a.GetCheckId()]
	if w != nil && a.GetTransactionId() != "" && a.GetTransactionId() != w.id {
		w = nil // an answer must name the transaction it was asked about, when it names one
	}
	if w != nil {
		delete(cc.waiting, a.GetCheckId())
	}
	cc.mu.Unlock()
	if w == nil {
		return false
	}
	w.answer <- s
	return true
}

// checks serves one TransactionChecks stream.
func (r *txRouter) serveChecks(stream producerdpb.Ingress_TransactionChecksServer) error {
	if err := r.d.checkerAuth(stream.Context()); err != nil {
		return err
	}
	first, err := stream.Recv()
	if err != nil {
		return err
	}
	reg := first.GetRegister()
	if reg == nil {
		return status.Error(codes.InvalidArgument, "daemon: the first TransactionChecks request must be register")
	}
	g, err := r.d.lookup(reg.GetProducerGroup())
	if err != nil {
		return grpcError(err)
	}
	deadline := defaultCheckDeadline
	if reg.GetDeadline() != nil {
		if err := reg.GetDeadline().CheckValid(); err != nil {
			return status.Errorf(codes.InvalidArgument, "daemon: checker deadline is not a valid duration: %v", err)
		}
		deadline = reg.GetDeadline().AsDuration()
		if deadline <= 0 || deadline > maxCheckDeadline {
			return status.Errorf(codes.InvalidArgument, "daemon: checker deadline %v is not in (0, %v]", deadline, maxCheckDeadline)
		}
	}
	cc := &checkerConn{group: g.name, includeBody: reg.GetIncludeBody(), deadline: deadline,
		out: make(chan *producerdpb.TransactionChecksResponse, checkerQueue), done: make(chan struct{}),
		waiting: map[uint64]*waitingCheck{}}
	if err := stream.Send(&producerdpb.TransactionChecksResponse{Response: &producerdpb.TransactionChecksResponse_Registered{
		Registered: &producerdpb.TransactionCheckerRegistered{ProducerGroup: g.name}}}); err != nil {
		return err
	}
	r.add(cc)
	r.d.log.Info("transaction checker registered", "group", g.name, "deadline", deadline, "include_body", cc.includeBody)
	defer r.d.log.Info("transaction checker gone", "group", g.name)
	// The reader owns done: when the stream's receive side ends (client gone, stream
	// cancelled), waiting checks are re-routed at once.
	readErr := make(chan error, 1)
	go func() {
		defer close(cc.done)
		defer r.remove(cc)
		for {
			req, err := stream.Recv()
			if err != nil {
				readErr <- err
				return
			}
			if a := req.GetAnswer(); a != nil {
				if !cc.answer(a) {
					r.d.log.Debug("transaction check answer for no waiting check (late or unknown)",
						"group", g.name, "check_id", a.GetCheckId(), "transaction", a.GetTransactionId())
				}
				continue
			}
			readErr <- status.Error(codes.InvalidArgument, "daemon: only answers may follow the registration")
			return
		}
	}()
	for {
		select {
		case m := <-cc.out:
			if err := stream.Send(m); err != nil {
				// The reader ends too once the stream's context is done.
				<-cc.done
				return err
			}
		case <-cc.done:
			err := <-readErr
			if errors.Is(err, io.EOF) {
				return nil
			}
			return err
		case <-r.d.stopping:
			return status.Error(codes.Unavailable, "daemon: shutting down")
		}
	}
}

// BeginTransaction implements the Ingress RPC.
func (s *ingress) BeginTransaction(ctx context.Context, req *producerdpb.BeginTransactionRequest) (*producerdpb.BeginTransactionResponse, error) {
	resp, err := s.d.tx.begin(ctx, apiGRPC, req.GetMessage(), 0)
	if err != nil {
		return nil, grpcError(err)
	}
	return resp, nil
}

// EndTransaction implements the Ingress RPC.
func (s *ingress) EndTransaction(ctx context.Context, req *producerdpb.EndTransactionRequest) (*producerdpb.EndTransactionResponse, error) {
	if err := s.d.tx.end(ctx, req.GetProducerGroup(), req.GetTransactionId(), req.GetResolution()); err != nil {
		return nil, grpcError(err)
	}
	return &producerdpb.EndTransactionResponse{}, nil
}

// TransactionChecks implements the Ingress RPC.
func (s *ingress) TransactionChecks(stream producerdpb.Ingress_TransactionChecksServer) error {
	return s.d.tx.serveChecks(stream)
}
