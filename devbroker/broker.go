package devbroker

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/producerd/producerd/remoting"
)

// Permission bits of a topic (spec §3.1).
const (
	permInherit = 1
	permWrite   = 2
	permRead    = 4
)

type topicConfig struct {
	name              string
	read, write, perm int
	sysFlag           int
	order             bool
}

// Broker is one broker master of a Cluster. Safe for concurrent use.
type Broker struct {
	name  string
	c     *Cluster
	ep    *endpoint
	store *store

	faultMu sync.Mutex // serializes SetFault

	mu         sync.Mutex
	fault      Fault
	resetsLeft int
	hang       chan struct{} // non-nil while hung; closed when the hang ends
	topics     map[string]topicConfig
	producers  map[string]map[string]time.Time // group -> client id -> last heartbeat

	stats brokerStats
}

type brokerStats struct {
	requests, sends, sendErrors, messages, bytes, injected, resets atomic.Int64

	mu     sync.Mutex
	byCode map[remoting.RequestCode]int64
}

func (s *brokerStats) count(code remoting.RequestCode) {
	s.requests.Add(1)
	s.mu.Lock()
	if s.byCode == nil {
		s.byCode = make(map[remoting.RequestCode]int64)
	}
	s.byCode[code]++
	s.mu.Unlock()
}

// Stats counts a broker's traffic since Start.
type Stats struct {
	// Connections is the number of connections accepted.
	Connections int64
	// Requests counts requests read and processed (not those closed by Resets or held by a
	// hang that has not ended); ByCode splits them by request code.
	Requests int64
	ByCode   map[remoting.RequestCode]int64
	// Sends counts send requests (a batch is one), whatever their answer.
	Sends int64
	// SendErrors counts send requests answered with a code other than SUCCESS, injected or not.
	SendErrors int64
	// Messages and Bytes count messages stored (each message of a batch) and their body bytes
	// as sent.
	Messages int64
	Bytes    int64
	// InjectedErrors counts answers replaced by Fault.Errors; Resets counts connections
	// closed by Fault.Resets.
	InjectedErrors int64
	Resets         int64
	// Retained and RetainedBytes describe the store now; Dropped counts messages evicted by
	// the bounds.
	Retained      int
	RetainedBytes int64
	Dropped       int64
}

func newBroker(c *Cluster, name string) *Broker {
	b := &Broker{
		name:      name,
		c:         c,
		store:     newStore(c.cfg.MaxMessages, c.cfg.MaxBytes),
		topics:    make(map[string]topicConfig),
		producers: make(map[string]map[string]time.Time),
	}
	b.ep = &endpoint{
		name: name, log: c.log.Named(name), maxFrame: c.cfg.MaxFrameSize,
		enc: c.cfg.ResponseEncoding, version: c.cfg.Version, wg: &c.wg, serve: b.serve,
	}
	if c.cfg.AutoCreate {
		b.topics[AutoCreateTopic] = topicConfig{name: AutoCreateTopic, read: c.cfg.DefaultTopicQueueNums,
			write: c.cfg.DefaultTopicQueueNums, perm: permRead | permWrite | permInherit}
	}
	return b
}

// Name returns the broker name.
func (b *Broker) Name() string { return b.name }

// Addr returns the broker's "host:port"; it stays the same across Down and Up.
func (b *Broker) Addr() string { return b.ep.address() }

// Fault returns the broker's current fault state (Resets counts what is left).
func (b *Broker) Fault() Fault {
	b.mu.Lock()
	defer b.mu.Unlock()
	f := b.fault.clone()
	f.Resets = b.resetsLeft
	return f
}

// SetFault replaces the broker's fault state at once (see Fault). Ending Down listens
// again on the same port; if that fails the broker stays down and the error is returned.
func (b *Broker) SetFault(f Fault) error {
	if err := f.validate(); err != nil {
		return err
	}
	f = f.clone()
	b.faultMu.Lock()
	defer b.faultMu.Unlock()
	if b.c.closed() {
		return ErrClosed
	}
	b.mu.Lock()
	wasDown := b.fault.Down
	b.fault = f
	b.resetsLeft = f.Resets
	switch {
	case f.Hang && b.hang == nil:
		b.hang = make(chan struct{})
	case !f.Hang && b.hang != nil:
		close(b.hang)
		b.hang = nil
	}
	b.mu.Unlock()
	switch {
	case f.Down && !wasDown:
		b.ep.stop()
		b.ep.log.Info("down")
	case !f.Down && wasDown:
		if err := b.ep.listen(context.Background(), ""); err != nil {
			b.mu.Lock()
			b.fault.Down = true
			b.mu.Unlock()
			return err
		}
		b.ep.log.Info("up")
	}
	return nil
}

// Down stops the broker like SIGKILL (Fault.Down), keeping the rest of its fault state.
func (b *Broker) Down() error {
	f := b.Fault()
	f.Down = true
	return b.SetFault(f)
}

// Up ends Down, keeping the rest of the fault state; it listens on the same port again.
func (b *Broker) Up() error {
	f := b.Fault()
	f.Down = false
	return b.SetFault(f)
}

// Messages returns copies of the retained messages of topic in commit log order (every
// topic when topic is "").
func (b *Broker) Messages(topic string) []Message { return b.store.messages(topic) }

// Producers returns the producer groups that sent heartbeats and were not unregistered,
// each with its client ids, sorted.
func (b *Broker) Producers() map[string][]string {
	b.mu.Lock()
	defer b.mu.Unlock()
	out := make(map[string][]string, len(b.producers))
	for g, ids := range b.producers {
		for id := range ids {
			out[g] = append(out[g], id)
		}
		slices.Sort(out[g])
	}
	return out
}

// Topics returns the names of the topics the broker has, sorted.
func (b *Broker) Topics() []string {
	b.mu.Lock()
	defer b.mu.Unlock()
	out := make([]string, 0, len(b.topics))
	for t := range b.topics {
		out = append(out, t)
	}
	slices.Sort(out)
	return out
}

// Stats returns the broker's counters.
func (b *Broker) Stats() Stats {
	n, by, dropped := b.store.counts()
	s := &b.stats
	s.mu.Lock()
	byCode := maps.Clone(s.byCode)
	s.mu.Unlock()
	return Stats{ByCode: byCode,
		Connections: b.ep.accepted.Load(), Requests: s.requests.Load(), Sends: s.sends.Load(),
		SendErrors: s.sendErrors.Load(), Messages: s.messages.Load(), Bytes: s.bytes.Load(),
		InjectedErrors: s.injected.Load(), Resets: s.resets.Load(),
		Retained: n, RetainedBytes: by, Dropped: dropped,
	}
}

func (b *Broker) topic(name string) (topicConfig, bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	tc, ok := b.topics[name]
	return tc, ok
}

func (b *Broker) putTopic(tc topicConfig) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.topics[tc.name] = tc
}

// slaveOnly reports whether routes list the broker as a slave without a master.
func (b *Broker) slaveOnly() bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.fault.Route == RouteSlaveOnly
}

// SetTopicPerm sets the permission bits of an existing topic on this broker (4 read,
// 2 write, 1 inherit), as mqadmin updateTopicPerm does; routes and sends follow at once.
func (b *Broker) SetTopicPerm(topic string, perm int) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	tc, ok := b.topics[topic]
	if !ok {
		return fmt.Errorf("devbroker: %s has no topic %q", b.name, topic)
	}
	tc.perm = perm
	b.topics[topic] = tc
	return nil
}

// routed reports whether the NameServer lists the broker.
func (b *Broker) routed() bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	switch b.fault.Route {
	case RouteListed, RouteSlaveOnly:
		return true
	case RouteHidden:
		return false
	}
	return !b.fault.Down
}

// hangGate returns a channel to wait on while the broker hangs, or nil.
func (b *Broker) hangGate() <-chan struct{} {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.hang
}

// waitHang blocks while the broker hangs; false means the connection or cluster closed.
func (b *Broker) waitHang(cn *conn) bool {
	for {
		g := b.hangGate()
		if g == nil {
			return true
		}
		select {
		case <-g:
		case <-cn.done:
			return false
		case <-b.c.stop:
			return false
		}
	}
}

func isSend(code remoting.RequestCode) bool {
	switch code {
	case remoting.SendMessage, remoting.SendMessageV2, remoting.SendBatchMessage,
		remoting.SendReplyMessage, remoting.SendReplyMessageV2:
		return true
	}
	return false
}

func storedNotOK(code remoting.ResponseCode) bool {
	return code == remoting.FlushDiskTimeout || code == remoting.SlaveNotAvailable || code == remoting.FlushSlaveTimeout
}

// serve runs one request through the fault state and the handlers, on the connection's
// read goroutine.
func (b *Broker) serve(cn *conn, req *remoting.Command) bool {
	if !b.waitHang(cn) {
		return false
	}
	b.mu.Lock()
	f := b.fault
	reset := b.resetsLeft > 0
	if reset {
		b.resetsLeft--
	}
	b.mu.Unlock()
	if reset {
		b.stats.resets.Add(1)
		cn.reset()
		return false
	}
	code := req.RequestCode()
	b.stats.count(code)
	send := isSend(code)
	applies := send || f.AllRequests

	var resp *remoting.Command
	if applies {
		if e, ok := f.pickError(b.c.rnd.Float64); ok {
			b.stats.injected.Add(1)
			if send && storedNotOK(e.Code) {
				resp = b.handle(cn, req)
				if resp.Code == int32(remoting.Success) {
					resp.Code = int32(e.Code)
					resp.Remark = e.Remark
				}
			} else {
				resp = remoting.NewResponse(req, e.Code, e.remark())
			}
		}
	}
	if resp == nil {
		resp = b.handle(cn, req)
	}
	if send {
		b.stats.sends.Add(1)
		if resp.Code != int32(remoting.Success) {
			b.stats.sendErrors.Add(1)
		}
	}
	if send {
		f.Malform.apply(resp)
	}
	if req.IsOneway() {
		return true
	}
	var delay time.Duration
	if applies && !f.Latency.zero() {
		delay = f.Latency.sample(b.c.rnd.Float64)
	}
	if delay <= 0 {
		if b.waitHang(cn) {
			cn.write(resp)
		}
		return true
	}
	b.c.wg.Add(1)
	go b.delayedReply(cn, resp, delay)
	return true
}

func (b *Broker) delayedReply(cn *conn, resp *remoting.Command, delay time.Duration) {
	defer b.c.wg.Done()
	t := time.NewTimer(delay)
	defer t.Stop()
	select {
	case <-t.C:
	case <-cn.done:
		return
	case <-b.c.stop:
		return
	}
	if b.waitHang(cn) {
		cn.write(resp)
	}
}
