package core

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/producerd/producerd/plugins/sdk"
	"github.com/producerd/producerd/remoting"
)

// Defaults of ProducerConfig (spec §5).
const (
	DefaultSendTimeout      = 3 * time.Second
	DefaultRetries          = 2
	DefaultAsyncRetries     = 2
	DefaultCreateTopicKey   = "TBW102"
	DefaultTopicQueueNums   = 4
	DefaultMaxAsyncInFlight = 10000
)

// DefaultRetryCodes are the broker response codes after which a sync send tries again:
// the Java 5.3 set {1, 2, 14, 16, 17, 204, 205}.
var DefaultRetryCodes = []remoting.ResponseCode{
	remoting.SystemError, remoting.SystemBusy, remoting.ServiceNotAvailable, remoting.NoPermission,
	remoting.TopicNotExist, remoting.NoBuyerID, remoting.NotInCurrentUnit,
}

// ProducerConfig configures one producer group. Zero values take the documented defaults.
type ProducerConfig struct {
	// Group is the producer group name; required.
	Group string
	// Client configures the client instance; producers with the same client id share one.
	Client ClientConfig
	// SendTimeout is the budget of one send across all its attempts; default 3s.
	SendTimeout time.Duration
	// Retries is how many more attempts a sync or batch send makes after the first; default 2.
	// Set NoRetries to make zero explicit (it does not touch AsyncRetries).
	Retries   int
	NoRetries bool
	// AsyncRetries is how many more attempts an async send makes after a transport
	// failure (never after a broker error code); default 2. Set NoAsyncRetries to make
	// zero explicit.
	AsyncRetries   int
	NoAsyncRetries bool
	// AttemptTimeout is the liveness check of every attempt but the last: each
	// AttemptTimeout, the broker must have shown a sign of life (an answer, bytes read
	// from its connection, or an answer to a heartbeat probe sent shortly before), or the
	// attempt is abandoned with ErrBrokerSilent and the send retried on another broker.
	// A broker that is only slow keeps its attempt until the budget ends, so it is not
	// sent a duplicate. Default SendTimeout/(1+Retries), i.e. 1s of the 3s budget. A
	// negative value disables the check (the Java behaviour: one hung broker can eat the
	// whole budget).
	AttemptTimeout time.Duration
	// RetryAnotherBrokerWhenNotStoreOK makes a sync send try again when the broker stored
	// the message but answered FLUSH_DISK_TIMEOUT, FLUSH_SLAVE_TIMEOUT or
	// SLAVE_NOT_AVAILABLE (this can duplicate the message). Default false: such results are
	// returned as they are.
	RetryAnotherBrokerWhenNotStoreOK bool
	// RetryCodes replaces DefaultRetryCodes when non-nil.
	RetryCodes []remoting.ResponseCode
	// MaxMessageSize is the body limit in bytes, checked before compression; default 4 MiB.
	MaxMessageSize int
	// CompressThreshold: bodies of at least this many bytes are zlib-compressed; default
	// 4096. Negative disables compression.
	CompressThreshold int
	// CompressLevel is the zlib level, 1..9; default 5.
	CompressLevel int
	// CreateTopicKey is the default topic used to auto-create unknown topics; default
	// "TBW102". Set NoAutoCreate to disable the fallback.
	CreateTopicKey string
	NoAutoCreate   bool
	// DefaultTopicQueueNums is the queue count asked for auto-created topics; default 4.
	DefaultTopicQueueNums int
	// MaxAsyncInFlight bounds async sends in flight; SendAsync waits for room until its
	// context ends. Default 10000.
	MaxAsyncInFlight int
	// Strategy selects queues and observes outcomes. Default: in-process round-robin from
	// a random start, avoiding the last broker on a retry. If it has an
	// Acquire() (sdk.Selector, func()) method (host.Provider), each send acquires one
	// generation for its whole retry loop.
	Strategy sdk.Selector
	// UseV1Header sends SEND_MESSAGE (10) with long header names instead of
	// SEND_MESSAGE_V2 (310).
	UseV1Header bool
	// Hooks observe sends (for metrics).
	Hooks ProducerHooks
	// Ordering and KeyHash place messages with a ShardingKey (core/order.go): the key's
	// queue, whatever the Strategy; defaults OrderingStrict and KeyHashJava.
	Ordering Ordering
	KeyHash  KeyHash
	// MaxDelayLevel is the highest DelayLevel accepted: the length of the brokers'
	// messageDelayLevel table; default MaxDelayLevel (18).
	MaxDelayLevel int
	// Namespace, when set, is Java's ClientConfig.namespace (core/namespace.go): topics
	// become "ns%topic" and the group "ns%group" on the wire; results show the bare names.
	Namespace string
}

// ProducerHooks observe a producer; each is optional and must not block.
type ProducerHooks struct {
	// OnAttempt is called after every attempt of every send.
	OnAttempt func(topic string, o sdk.Outcome)
	// OnAttemptContext is OnAttempt with the send's context (its deadline and the
	// caller's values, such as a trace span); o.Latency ends now.
	OnAttemptContext func(ctx context.Context, topic string, o sdk.Outcome)
	// OnDecision is called after every strategy decision; fallback is true when the
	// strategy failed and in-process round-robin decided.
	OnDecision func(latency time.Duration, fallback bool, err error)
	// OnKeyedQueueCountChange is called when a topic's queue count differs from what the
	// previous keyed send saw (keys move to other queues).
	OnKeyedQueueCountChange func(topic string, old, new int)
	// OnStored is called with the message-trace record of every stored attempt
	// (msgtrace.go) when the broker's answer allows tracing (TRACE_ON not "false").
	OnStored func(TraceRecord)
}

func (c *ProducerConfig) withDefaults() ProducerConfig {
	out := *c
	if out.SendTimeout == 0 {
		out.SendTimeout = DefaultSendTimeout
	}
	if out.Retries == 0 && !out.NoRetries {
		out.Retries = DefaultRetries
	}
	if out.AsyncRetries == 0 && !out.NoAsyncRetries {
		out.AsyncRetries = DefaultAsyncRetries
	}
	if out.AttemptTimeout == 0 {
		out.AttemptTimeout = out.SendTimeout / time.Duration(1+out.Retries)
	}
	if out.RetryCodes == nil {
		out.RetryCodes = DefaultRetryCodes
	}
	if out.MaxMessageSize == 0 {
		out.MaxMessageSize = DefaultMaxMessageSize
	}
	if out.CompressThreshold == 0 {
		out.CompressThreshold = DefaultCompressThreshold
	}
	if out.CompressLevel == 0 {
		out.CompressLevel = DefaultCompressLevel
	}
	if out.CreateTopicKey == "" {
		out.CreateTopicKey = DefaultCreateTopicKey
	}
	if out.NoAutoCreate {
		out.CreateTopicKey = ""
	}
	if out.DefaultTopicQueueNums == 0 {
		out.DefaultTopicQueueNums = DefaultTopicQueueNums
	}
	if out.MaxDelayLevel == 0 {
		out.MaxDelayLevel = MaxDelayLevel
	}
	if out.MaxAsyncInFlight == 0 {
		out.MaxAsyncInFlight = DefaultMaxAsyncInFlight
	}
	return out
}

func (c *ProducerConfig) validate() error {
	var errs []error
	if err := ValidateGroup(c.Group); err != nil {
		errs = append(errs, fmt.Errorf("%w: Group: %w", ErrInvalidConfig, err))
	} else if err := ValidateNamespace(c.Namespace, c.Group); err != nil {
		errs = append(errs, fmt.Errorf("%w: Namespace: %w", ErrInvalidConfig, err))
	}
	check := func(ok bool, format string, args ...any) {
		if !ok {
			errs = append(errs, fmt.Errorf("%w: "+format, append([]any{ErrInvalidConfig}, args...)...))
		}
	}
	check(c.SendTimeout > 0, "SendTimeout must be positive, got %v", c.SendTimeout)
	check(c.Retries >= 0 && c.Retries <= 16, "Retries must be in 0..16, got %d", c.Retries)
	check(c.AsyncRetries >= 0 && c.AsyncRetries <= 16, "AsyncRetries must be in 0..16, got %d", c.AsyncRetries)
	check(c.MaxMessageSize > 0 && c.MaxMessageSize <= remoting.MaxFrameSize-64<<10,
		"MaxMessageSize must be in 1..%d, got %d", remoting.MaxFrameSize-64<<10, c.MaxMessageSize)
	check(c.CompressLevel >= 1 && c.CompressLevel <= 9, "CompressLevel must be in 1..9, got %d", c.CompressLevel)
	check(c.DefaultTopicQueueNums > 0, "DefaultTopicQueueNums must be positive, got %d", c.DefaultTopicQueueNums)
	check(c.MaxDelayLevel > 0 && c.MaxDelayLevel <= 1000, "MaxDelayLevel must be in 1..1000, got %d", c.MaxDelayLevel)
	check(c.Ordering == OrderingStrict || c.Ordering == OrderingRelaxed, "Ordering %d is unknown", c.Ordering)
	check(c.KeyHash == KeyHashJava || c.KeyHash == KeyHashFNV, "KeyHash %d is unknown", c.KeyHash)
	check(c.MaxAsyncInFlight > 0, "MaxAsyncInFlight must be positive, got %d", c.MaxAsyncInFlight)
	if c.CreateTopicKey != "" {
		if err := ValidateTopic(c.CreateTopicKey); err != nil {
			errs = append(errs, fmt.Errorf("%w: CreateTopicKey: %w", ErrInvalidConfig, err))
		}
	}
	return errors.Join(errs...)
}

// SendStatus is the outcome of a send that stored the message.
type SendStatus int

// Send statuses (Java SendStatus).
const (
	SendOK SendStatus = iota
	FlushDiskTimeout
	FlushSlaveTimeout
	SlaveNotAvailable
)

func (s SendStatus) String() string {
	switch s {
	case SendOK:
		return "SEND_OK"
	case FlushDiskTimeout:
		return "FLUSH_DISK_TIMEOUT"
	case FlushSlaveTimeout:
		return "FLUSH_SLAVE_TIMEOUT"
	case SlaveNotAvailable:
		return "SLAVE_NOT_AVAILABLE"
	}
	return "SendStatus(" + strconv.Itoa(int(s)) + ")"
}

// SendResult describes a stored message.
type SendResult struct {
	Status SendStatus
	// MsgID is the client-generated UNIQ_KEY (comma-separated for a batch).
	MsgID string
	// MsgIDs are a batch's UNIQ_KEYs, one per message in order (nil for one message):
	// MsgID split without parsing it.
	MsgIDs []string
	// OffsetMsgID is the broker's id: store address and commit log offset (comma-separated
	// for a batch).
	OffsetMsgID string
	Topic       string
	Queue       sdk.Queue
	QueueOffset int64
	// TransactionID, RegionID and TraceOn are copied from the broker's answer.
	TransactionID string
	RegionID      string
	TraceOn       bool
	// RecallHandle is the broker's handle for recalling a timer message before it is
	// delivered (5.3.2+ brokers, timer messages only; Producer.RecallMessage), else "".
	RecallHandle string
	// Attempts is how many attempts the send took.
	Attempts int
}

// Producer sends messages for one producer group. Safe for concurrent use.
type Producer struct {
	cfg        ProducerConfig
	client     *Client
	retryCodes map[remoting.ResponseCode]bool
	// Header values that are the same for every send, rendered once.
	defaultTopic, defaultQueueNums string
	asyncSem                       chan struct{}
	order                          orderState
	checker                        atomic.Pointer[checkerBox] // transaction.go

	// closeMu orders begin's inflight.Add with Close's inflight.Wait (a WaitGroup may not
	// be added to from zero while it is waited on).
	closeMu  sync.RWMutex
	closed   bool
	inflight sync.WaitGroup
}

// NewProducer validates cfg, then registers the group on the client instance for its
// client id (creating and starting the instance if needed). It does no network I/O: routes
// are fetched on the first send.
func NewProducer(cfg ProducerConfig) (*Producer, error) {
	explicitRetryCodes := cfg.RetryCodes != nil
	cfg = cfg.withDefaults()
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	cfg.Group = WithNamespace(cfg.Namespace, cfg.Group) // the wire name; Group() strips it
	p := &Producer{cfg: cfg, retryCodes: make(map[remoting.ResponseCode]bool), asyncSem: make(chan struct{}, cfg.MaxAsyncInFlight),
		defaultTopic: cfg.CreateTopicKey, defaultQueueNums: strconv.Itoa(cfg.DefaultTopicQueueNums)}
	if p.defaultTopic == "" { // auto-create off: brokers still expect the field
		p.defaultTopic = DefaultCreateTopicKey
	}
	for _, c := range cfg.RetryCodes {
		p.retryCodes[c] = true
	}
	p.dropACLDenialRetry(explicitRetryCodes)
	c, err := acquireClient(cfg.Client, p)
	if err != nil {
		return nil, err
	}
	p.client = c
	return p, nil
}

// Group returns the producer group name.
func (p *Producer) Group() string { return WithoutNamespace(p.cfg.Namespace, p.cfg.Group) }

// Client returns the shared client instance.
func (p *Producer) Client() *Client { return p.client }

// ForgetTopic drops the cached route of topic (in this producer's namespace) from the
// client instance, for a caller that bounds the topics it tracks: the scheduled route
// refresh no longer asks the NameServer for it. A later send to the topic, by this or
// another producer of the instance, fetches its route again, so forgetting a topic in use
// costs one route lookup, never a failed send. The topic's round-robin counter and this
// producer's keyed-send bookkeeping for it go too.
func (p *Producer) ForgetTopic(topic string) {
	wire := WithNamespace(p.cfg.Namespace, topic)
	p.client.forgetTopic(wire)
	p.order.forget(topic, wire)
}

// Close waits for sends in flight to end (bounded by ctx), unregisters the group from
// every known broker and, when it was the last group, stops the client instance.
func (p *Producer) Close(ctx context.Context) error {
	p.closeMu.Lock()
	already := p.closed
	p.closed = true
	p.closeMu.Unlock()
	if already {
		return nil
	}
	done := make(chan struct{})
	go func() { p.inflight.Wait(); close(done) }()
	var err error
	select {
	case <-done:
	case <-ctx.Done():
		err = fmt.Errorf("core: close producer %s: sends still in flight: %w", p.cfg.Group, ctx.Err())
	}
	p.client.release(p)
	return err
}

func (p *Producer) begin() error {
	p.closeMu.RLock()
	defer p.closeMu.RUnlock()
	if p.closed {
		return ErrClosed
	}
	p.inflight.Add(1)
	return nil
}

// prepared is a message encoded once for all its attempts: the UNIQ_KEY stays the same on
// every retry (spec §4.8).
type prepared struct {
	topic   string
	body    []byte
	props   string
	uniqKey string
	ids     []string // a batch's UNIQ_KEYs
	sysFlag int32
	flag    int32
	batch   bool
	half    bool // a transaction's half message (transaction.go)
	info    sdk.MessageInfo
	reqCode remoting.RequestCode
}

// preparedPool recycles the prepared messages of sync sends, which nothing keeps after
// Send returns (async sends keep theirs until the callback and allocate it).
var preparedPool = sync.Pool{New: func() any { return new(prepared) }}

func (p *Producer) prepare(m *Message) (*prepared, error) {
	pr := new(prepared)
	if err := p.prepareInto(pr, m); err != nil {
		return nil, err
	}
	return pr, nil
}

// prepareInto validates m and encodes it into pr.
func (p *Producer) prepareInto(pr *prepared, m *Message) error { return p.encodeInto(pr, m, false) }

// encodeInto is prepareInto; half encodes m as a transaction's half message
// (transaction.go): its properties TRAN_MSG and PGROUP in the one encoding, sysFlag
// PREPARED.
func (p *Producer) encodeInto(pr *prepared, m *Message, half bool) error {
	if err := m.validate(p.cfg.MaxMessageSize, p.cfg.MaxDelayLevel); err != nil {
		return err
	}
	// Properties and UNIQ_KEY are one string: the key is a substring of the properties.
	// A trusted gateway (internal/rmqv2) may bring the client's own UNIQ_KEY.
	var stack [256]byte
	buf, uniqAt := m.appendProperties(stack[:0], m.UniqKey, m.UniqKey == "")
	buf = p.appendInstanceID(buf)
	if half {
		buf = appendProperty(appendProperty(buf, PropertyTranMsg, "true"), PropertyProducerGroup, p.cfg.Group)
	}
	if len(buf) > maxPropertiesLength {
		return invalid("properties.size", "encoded properties are %d bytes, the limit is %d", len(buf), maxPropertiesLength)
	}
	props := string(buf)
	uniq := m.UniqKey
	if uniq == "" {
		uniq = props[uniqAt : uniqAt+uniqIDs.size()]
	}
	*pr = prepared{topic: m.Topic, body: m.Body, props: props, uniqKey: uniq, flag: m.Flag,
		reqCode: remoting.SendMessageV2, half: half,
		info: sdk.MessageInfo{Keys: m.Keys, Tags: m.Tags, ShardingKey: m.ShardingKey, Size: len(m.Body)}}
	if p.cfg.UseV1Header {
		pr.reqCode = remoting.SendMessage
	}
	if p.cfg.CompressThreshold > 0 && len(m.Body) >= p.cfg.CompressThreshold {
		if z, ok := compress(m.Body, p.cfg.CompressLevel); ok {
			pr.body = z
			pr.sysFlag |= sysFlagCompressed | sysFlagCompressionZip
		}
	}
	if half {
		pr.sysFlag |= sysFlagPrepared
	}
	return nil
}

func (p *Producer) prepareBatch(msgs []*Message) (*prepared, error) {
	if len(msgs) == 0 {
		return nil, invalid("batch.empty", "a batch needs at least one message")
	}
	first := msgs[0]
	if first == nil {
		return nil, invalid("message.nil", "batch message 0 is nil")
	}
	if strings.HasPrefix(first.Topic, "%RETRY%") {
		return nil, invalid("batch.retry-topic", "a batch cannot be sent to retry topic %q", first.Topic)
	}
	var body []byte
	ids := make([]string, 0, len(msgs))
	for i, m := range msgs {
		if err := m.Validate(p.cfg.MaxMessageSize); err != nil {
			return nil, fmt.Errorf("batch message %d: %w", i, err)
		}
		switch {
		case m.Topic != first.Topic:
			return nil, invalid("batch.topic", "batch message %d has topic %q, the batch is for %q", i, m.Topic, first.Topic)
		case m.DelayLevel > 0 || m.isTimer():
			return nil, invalid("batch.delay", "batch message %d has a delay; batches cannot be delayed", i)
		case m.NoWaitStore != first.NoWaitStore:
			return nil, invalid("batch.wait", "batch message %d differs in NoWaitStore from the first", i)
		}
		uniq := m.uniqKey()
		ids = append(ids, uniq)
		props := m.encodeProperties(nil, uniq)
		if len(props) > maxPropertiesLength {
			return nil, invalid("properties.size", "batch message %d: encoded properties are %d bytes", i, len(props))
		}
		body = encodeBatchRecord(body, m.Flag, m.Body, props)
	}
	if len(body) > p.cfg.MaxMessageSize {
		return nil, invalid("batch.size", "the encoded batch is %d bytes, the limit is %d", len(body), p.cfg.MaxMessageSize)
	}
	wait := "true"
	if first.NoWaitStore {
		wait = "false"
	}
	// The batch wrapper carries no UNIQ_KEY, although Java 5.x clients before apache/rocketmq
	// #9417 set one: a 5.3.3 broker appends the wrapper's properties to every inner message
	// of a normal topic, so every message would be read back with the wrapper's UNIQ_KEY
	// instead of its own (measured, docs/send-path.md; Java issue #9416).
	key, err := batchShardingKey(msgs)
	if err != nil {
		return nil, err
	}
	return &prepared{topic: first.Topic, body: body, props: string(p.appendInstanceID(appendProperty(nil, PropertyWait, wait))),
		uniqKey: strings.Join(ids, ","), ids: ids, batch: true, reqCode: remoting.SendBatchMessage,
		info: sdk.MessageInfo{Size: len(body), ShardingKey: key}}, nil
}

// header fills h with the request ext fields for one attempt (spec §4.1, §4.2), in key
// order, and returns the request; h is only read while the request is sent, so it may live
// on the caller's stack. bornTimestamp is the time of this attempt, as Java sets it in
// sendKernelImpl.
func (p *Producer) header(h *attemptHeader, pr *prepared, q sdk.Queue) *remoting.Command {
	qid := strconv.Itoa(int(q.ID))
	batch := strconv.FormatBool(pr.batch)
	topic := WithNamespace(p.cfg.Namespace, pr.topic)
	sysFlag, flag := strconv.Itoa(int(pr.sysFlag)), strconv.Itoa(int(pr.flag))
	born := strconv.FormatInt(time.Now().UnixMilli(), 10)
	if pr.reqCode == remoting.SendMessage {
		h.fields = [13]remoting.Field{
			{Key: "batch", Value: batch}, {Key: "bname", Value: q.Broker}, {Key: "bornTimestamp", Value: born},
			{Key: "defaultTopic", Value: p.defaultTopic}, {Key: "defaultTopicQueueNums", Value: p.defaultQueueNums},
			{Key: "flag", Value: flag}, {Key: "producerGroup", Value: p.cfg.Group}, {Key: "properties", Value: pr.props},
			{Key: "queueId", Value: qid}, {Key: "reconsumeTimes", Value: "0"}, {Key: "sysFlag", Value: sysFlag},
			{Key: "topic", Value: topic}, {Key: "unitMode", Value: "false"},
		}
	} else {
		h.fields = [13]remoting.Field{
			{Key: "a", Value: p.cfg.Group}, {Key: "b", Value: topic}, {Key: "c", Value: p.defaultTopic},
			{Key: "d", Value: p.defaultQueueNums}, {Key: "e", Value: qid}, {Key: "f", Value: sysFlag},
			{Key: "g", Value: born}, {Key: "h", Value: flag}, {Key: "i", Value: pr.props}, {Key: "j", Value: "0"},
			{Key: "k", Value: "false"}, {Key: "m", Value: batch}, {Key: "n", Value: q.Broker},
		}
	}
	h.cmd = remoting.Command{Code: int32(pr.reqCode), Fields: h.fields[:], Body: pr.body}
	return &h.cmd
}

// attemptHeader holds one attempt's request and its ext fields.
type attemptHeader struct {
	fields [13]remoting.Field
	cmd    remoting.Command
}

// attemptHeaders recycles attempt headers: remoting encodes a request before its Invoke
// method returns, so the header is free again right after.
var attemptHeaders = sync.Pool{New: func() any { return new(attemptHeader) }}

func getHeader() *attemptHeader { return attemptHeaders.Get().(*attemptHeader) }

func putHeader(h *attemptHeader) {
	*h = attemptHeader{}
	attemptHeaders.Put(h)
}

// cachedRoute returns the topic's publish info when it is cached and usable, else nil.
func (p *Producer) cachedRoute(topic string) *publishInfo {
	if pi := p.client.topic(WithNamespace(p.cfg.Namespace, topic)).info.Load(); pi.ok() {
		return pi
	}
	return nil
}

// route returns the topic's publish info, auto-creating through the default topic.
func (p *Producer) route(ctx context.Context, topic string) (*publishInfo, error) {
	pi, err := p.client.publishInfo(ctx, WithNamespace(p.cfg.Namespace, topic), p.cfg.CreateTopicKey, p.cfg.DefaultTopicQueueNums)
	return pi, p.bareRouteError(err)
}

// strategy returns the selector for one send and its release function.
func (p *Producer) strategy() (sdk.Selector, func()) {
	s := p.cfg.Strategy
	if s == nil {
		return nil, func() {}
	}
	if prov, ok := s.(interface{ Acquire() (sdk.Selector, func()) }); ok {
		return prov.Acquire()
	}
	return s, func() {}
}

// selectQueue asks the strategy for a queue; any strategy failure falls back to the
// in-process round-robin for this decision.
func (p *Producer) selectQueue(ctx context.Context, sel sdk.Selector, pi *publishInfo, pr *prepared, last string, attempt int, remaining time.Duration) sdk.Queue {
	if q, ok := p.keyedQueue(pi, pr, attempt); ok {
		return q // the key decides, never the strategy
	}
	if sel == nil {
		return pi.queues[pi.selectRR(last)]
	}
	s := &sdk.Selection{Topic: pr.topic, RouteVersion: pi.version, Queues: pi.queues,
		LastBroker: last, Attempt: attempt, Remaining: remaining}
	if d, ok := sel.(sdk.Describer); ok && d.Describe().NeedsMessage {
		info := pr.info
		s.Message = &info
	}
	start := time.Now()
	i, err := sel.Select(ctx, s)
	fallback := err != nil || i < 0 || i >= len(pi.queues)
	if fallback && err == nil {
		err = fmt.Errorf("core: strategy returned queue index %d of %d", i, len(pi.queues))
	}
	if h := p.cfg.Hooks.OnDecision; h != nil {
		h(time.Since(start), fallback, err)
	}
	if fallback {
		// Counted through OnDecision; a broken strategy fails every decision, so a
		// warning each time would flood the log (the host logs plugin failures itself).
		p.client.log.Debug("strategy decision failed; using round-robin", "topic", pi.topic, "error", err)
		return pi.queues[pi.selectRR(last)]
	}
	return pi.queues[i]
}

func (p *Producer) observe(ctx context.Context, sel sdk.Selector, topic string, o sdk.Outcome) {
	if h := p.cfg.Hooks.OnAttempt; h != nil {
		h(topic, o)
	}
	if h := p.cfg.Hooks.OnAttemptContext; h != nil {
		h(ctx, topic, o)
	}
	if obs, ok := sel.(sdk.Observer); ok {
		obs.Observe(ctx, []sdk.Outcome{o})
	}
}

// Send sends m synchronously with the §6.1 retry loop: up to 1+Retries attempts, each on
// a freshly selected queue avoiding the previous broker, within SendTimeout (and ctx). A
// broker error is retried only for the codes in RetryCodes; a stored-but-not-OK answer is
// returned as a result unless RetryAnotherBrokerWhenNotStoreOK.
func (p *Producer) Send(ctx context.Context, m *Message) (*SendResult, error) {
	if err := p.begin(); err != nil {
		return nil, err
	}
	defer p.inflight.Done()
	pr := preparedPool.Get().(*prepared)
	defer func() {
		*pr = prepared{}
		preparedPool.Put(pr)
	}()
	if err := p.prepareInto(pr, m); err != nil {
		return nil, err
	}
	return p.sendLoop(ctx, pr, 1+p.cfg.Retries)
}

// SendBatch sends msgs (same topic, no delay) as one SEND_BATCH_MESSAGE, with the same
// retry loop as Send. The result's MsgID and OffsetMsgID are comma-separated lists.
func (p *Producer) SendBatch(ctx context.Context, msgs []*Message) (*SendResult, error) {
	if err := p.begin(); err != nil {
		return nil, err
	}
	defer p.inflight.Done()
	pr, err := p.prepareBatch(msgs)
	if err != nil {
		return nil, err
	}
	return p.sendLoop(ctx, pr, 1+p.cfg.Retries)
}

func (p *Producer) sendLoop(ctx context.Context, pr *prepared, attempts int) (*SendResult, error) {
	start := time.Now()
	deadline := start.Add(p.cfg.SendTimeout)
	if d, ok := ctx.Deadline(); ok && d.Before(deadline) {
		deadline = d
	}
	// No context is derived per send or per attempt: the deadline goes to remoting as a
	// value, and only a route to fetch gets a derived context. A strategy gets the
	// caller's context and the budget left in Selection.Remaining, as in SendAsync (one
	// that waits for another process bounds its decision by it: the host does).
	caller := ctx
	pi := p.cachedRoute(pr.topic)
	if pi == nil {
		rctx, cancel := context.WithDeadline(ctx, deadline)
		var err error
		pi, err = p.route(rctx, pr.topic)
		cancel()
		if err != nil {
			return nil, err
		}
	}
	sel, release := p.strategy()
	defer release()
	var (
		lastBroker string
		lastResult *SendResult
		lastErr    error
		brokerBuf  [4]string // the brokers tried, copied out only for a SendError
		brokers    = brokerBuf[:0]
		timedOut   bool
	)
	for attempt := range attempts {
		now := time.Now()
		remaining := deadline.Sub(now)
		if remaining <= 0 {
			timedOut = true
			break
		}
		if ctx.Err() != nil {
			lastErr = ctx.Err()
			break
		}
		q := p.selectQueue(ctx, sel, pi, pr, lastBroker, attempt, remaining)
		brokers = append(brokers, q.Broker)
		var watchCap time.Duration
		if p.cfg.AttemptTimeout > 0 && attempt < attempts-1 && remaining > p.cfg.AttemptTimeout {
			watchCap = p.cfg.AttemptTimeout
		}
		res, o, err := p.attempt(ctx, pi, pr, q, deadline, watchCap)
		o.Latency = time.Since(now)
		lastBroker = q.Broker
		if err != nil && p.callerEnded(caller, o.Latency) && !errors.Is(err, ErrBrokerSilent) {
			// The caller hung up, or its own deadline passed before the broker could be
			// judged: that says nothing about the broker, so the strategy does not see
			// it (Java does not count an interrupted send).
			lastErr = err
			break
		}
		p.observe(ctx, sel, pr.topic, o)
		if err == nil {
			res.Attempts = attempt + 1
			if h := p.cfg.Hooks.OnStored; h != nil && res.TraceOn {
				h(p.traceRecord(pr, res, p.client.masterAddr(q.Broker), now, o.Latency))
			}
			if res.Status != SendOK && p.cfg.RetryAnotherBrokerWhenNotStoreOK && !pr.half {
				lastResult = res
				continue
			}
			return res, nil
		}
		if errors.Is(err, ErrBadResponse) || errors.Is(err, remoting.ErrBadFrame) {
			// The broker got the request and answered, if garbled: the message may be
			// stored, and a retry could store it again (only the RetryCodes are safe).
			lastErr = err
			break
		}
		retry, kerr := p.keyedRetry(pr, q, err)
		if lastErr = kerr; !retry {
			break
		}
		var re *remoting.Error
		if !errors.Is(err, ErrBrokerNotFound) && errors.As(err, &re) && !p.retryCodes[re.Code] {
			if lastResult != nil {
				return lastResult, nil
			}
			break
		}
	}
	if lastResult != nil {
		return lastResult, nil
	}
	if !timedOut && time.Now().After(deadline) && errors.Is(lastErr, remoting.ErrTimeout) {
		timedOut = true
	}
	return nil, &SendError{Topic: pr.topic, Attempts: len(brokers), Brokers: slices.Clone(brokers),
		Elapsed: time.Since(start), Timeout: timedOut, Last: p.bareCause(lastErr)}
}

// callerEnded reports whether an attempt that lasted latency failed because the caller's
// own context ended rather than because of the broker: the caller cancelled, or its
// deadline passed sooner than AttemptTimeout into the attempt (too soon to judge the
// broker; with the check off, any deadline is a timeout, as in Java).
func (p *Producer) callerEnded(caller context.Context, latency time.Duration) bool {
	err := caller.Err()
	if d, ok := caller.Deadline(); ok && err == nil && !time.Now().Before(d) {
		err = context.DeadlineExceeded // its timer may fire just after the attempt's
	}
	switch {
	case err == nil:
		return false
	case errors.Is(err, context.Canceled):
		return true
	}
	return latency < p.cfg.AttemptTimeout
}

// attempt sends pr once to queue q and waits for the answer until deadline. When watchCap
// is positive, the broker must show a sign of life every watchCap or the attempt is
// abandoned with ErrBrokerSilent (liveness.go).
func (p *Producer) attempt(ctx context.Context, pi *publishInfo, pr *prepared, q sdk.Queue, deadline time.Time, watchCap time.Duration) (*SendResult, sdk.Outcome, error) {
	o := sdk.Outcome{Topic: pr.topic, Broker: q.Broker, Queue: q.ID}
	addr, err := p.brokerAddr(ctx, pi, q.Broker, deadline)
	if err != nil {
		o.Kind = sdk.OutcomeOther
		return nil, o, err
	}
	h := getHeader()
	req := p.header(h, pr, q)
	var w *attemptWatch
	if watchCap > 0 {
		w = p.watchAttempt(addr, q.Broker, time.Now(), watchCap, nil)
	}
	resp, err := p.client.rc.InvokeSyncUntil(ctx, addr, req, deadline, w.abortC())
	putHeader(h)
	// A failure may be the check's own doing: wait for its verdict, unless the caller
	// cancelled (then only the verdict so far counts).
	if dead := w.stop(err != nil && !errors.Is(err, context.Canceled)); err != nil && dead != nil {
		err = dead
	}
	if err != nil {
		classifyTransport(&o, err)
		return nil, o, err
	}
	res, err := p.result(addr, pr, q, resp)
	classifyResponse(&o, resp, err)
	return res, o, err
}

// brokerAddr resolves a broker's master, refreshing the route once when it is unknown; the
// refresh ends at deadline.
func (p *Producer) brokerAddr(ctx context.Context, pi *publishInfo, broker string, deadline time.Time) (string, error) {
	if a := p.client.masterAddr(broker); a != "" {
		return a, nil
	}
	ctx, cancel := context.WithDeadline(ctx, deadline)
	defer cancel()
	ts := p.client.topic(pi.topic)
	ts.fetchMu.Lock()
	_, err := p.client.updateRoute(ctx, pi.topic, ts)
	ts.fetchMu.Unlock()
	if a := p.client.masterAddr(broker); a != "" {
		return a, nil
	}
	return "", errors.Join(fmt.Errorf("%w: %s", ErrBrokerNotFound, broker), err)
}

func classifyTransport(o *sdk.Outcome, err error) {
	o.Isolation = true
	switch {
	case errors.Is(err, remoting.ErrConnect):
		o.Kind = sdk.OutcomeConnectFailure
	case errors.Is(err, remoting.ErrTimeout), errors.Is(err, context.DeadlineExceeded):
		o.Kind = sdk.OutcomeTimeout
	case errors.Is(err, remoting.ErrBadFrame):
		o.Kind = sdk.OutcomeBrokerError // the broker answered, but not in the protocol
	default:
		o.Kind = sdk.OutcomeOther
	}
}

func classifyResponse(o *sdk.Outcome, resp *remoting.Command, err error) {
	o.Code = int(resp.Code)
	switch {
	case err != nil:
		o.Kind, o.Isolation = sdk.OutcomeBrokerError, true
	case resp.Code != int32(remoting.Success):
		o.Kind = sdk.OutcomeStoredNotOK
	default:
		o.Kind = sdk.OutcomeOK
	}
}

// result maps a send response (spec §2.3, §4.3).
func (p *Producer) result(addr string, pr *prepared, q sdk.Queue, resp *remoting.Command) (*SendResult, error) {
	var status SendStatus
	switch remoting.ResponseCode(resp.Code) {
	case remoting.Success:
		status = SendOK
	case remoting.FlushDiskTimeout:
		status = FlushDiskTimeout
	case remoting.FlushSlaveTimeout:
		status = FlushSlaveTimeout
	case remoting.SlaveNotAvailable:
		status = SlaveNotAvailable
	default:
		return nil, remoting.ResponseError(addr, resp)
	}
	// Every field Java's SendMessageResponseHeader requires (@CFNotNull) must be there and
	// parse: a malformed answer is an error, never a SEND_OK with made-up values.
	ext := resp.ExtFields
	bad := func(field, format string, args ...any) error {
		return fmt.Errorf("%w from broker %s (%s) to %s: field %s: %s", ErrBadResponse, q.Broker, addr,
			pr.reqCode, field, fmt.Sprintf(format, args...))
	}
	msgID, ok := ext["msgId"]
	if !ok || msgID == "" {
		return nil, bad("msgId", "missing")
	}
	qid, err := strconv.ParseInt(ext["queueId"], 10, 32)
	switch {
	case ext["queueId"] == "":
		return nil, bad("queueId", "missing")
	case err != nil || qid < 0:
		return nil, bad("queueId", "%q is not a queue id", ext["queueId"])
	}
	offset, err := strconv.ParseInt(ext["queueOffset"], 10, 64)
	switch {
	case ext["queueOffset"] == "":
		return nil, bad("queueOffset", "missing")
	case err != nil || offset < 0:
		return nil, bad("queueOffset", "%q is not an offset", ext["queueOffset"])
	}
	res := &SendResult{Status: status, MsgID: pr.uniqKey, MsgIDs: pr.ids, OffsetMsgID: msgID, Topic: pr.topic,
		Queue: q, QueueOffset: offset, TransactionID: ext["transactionId"], RegionID: ext["MSG_REGION"],
		TraceOn: ext["TRACE_ON"] != "false", RecallHandle: ext["recallHandle"]}
	res.Queue.ID = int32(qid)
	if res.RegionID == "" {
		res.RegionID = "DefaultRegion"
	}
	return res, nil
}

// SendOneway sends m once without waiting for an answer (flag bit 1); it never retries.
// It returns when the request was handed to the connection.
func (p *Producer) SendOneway(ctx context.Context, m *Message) error {
	if err := p.begin(); err != nil {
		return err
	}
	defer p.inflight.Done()
	pr, err := p.prepare(m)
	if err != nil {
		return err
	}
	caller := ctx
	ctx, cancel := context.WithTimeout(ctx, p.cfg.SendTimeout)
	defer cancel()
	pi, err := p.route(ctx, pr.topic)
	if err != nil {
		return err
	}
	sel, release := p.strategy()
	defer release()
	q := p.selectQueue(ctx, sel, pi, pr, "", 0, p.cfg.SendTimeout)
	addr, err := p.brokerAddr(ctx, pi, q.Broker, time.Now().Add(p.cfg.SendTimeout))
	if err != nil {
		return err
	}
	start := time.Now()
	h := getHeader()
	err = p.client.rc.InvokeOneway(ctx, addr, p.header(h, pr, q))
	putHeader(h)
	if err != nil && !p.callerEnded(caller, time.Since(start)) {
		o := sdk.Outcome{Topic: pr.topic, Broker: q.Broker, Queue: q.ID, Latency: time.Since(start)}
		classifyTransport(&o, err)
		p.observe(ctx, sel, pr.topic, o)
	}
	return err
}

// SendToQueue sends m synchronously to exactly queue q, once, without a strategy decision
// and without retries (Java send(msg, mq)).
func (p *Producer) SendToQueue(ctx context.Context, m *Message, q sdk.Queue) (*SendResult, error) {
	if err := p.begin(); err != nil {
		return nil, err
	}
	defer p.inflight.Done()
	pr, err := p.prepare(m)
	if err != nil {
		return nil, err
	}
	pi, err := p.route(ctx, pr.topic)
	if err != nil {
		return nil, err
	}
	if !slices.Contains(pi.queues, q) {
		return nil, invalid("queue.unknown", "queue %s/%d is not a publish queue of topic %s", q.Broker, q.ID, pr.topic)
	}
	res, _, err := p.attempt(ctx, pi, pr, q, time.Now().Add(p.cfg.SendTimeout), 0)
	if err != nil {
		return nil, &SendError{Topic: pr.topic, Attempts: 1, Brokers: []string{q.Broker}, Last: p.bareCause(err)}
	}
	res.Attempts = 1
	return res, nil
}
