// Package roundrobin is producerd's default queue-selection strategy: the Java client's
// behaviour when latency fault tolerance is off (spec §7.1 and §7.2).
//
// # Rules
//
//   - Each topic has one position counter. It is created, with a random start, the
//     first time the topic is selected for and again whenever Selection.RouteVersion
//     (or the length of Selection.Queues) changes, so a new route starts at a random
//     queue as a new Java TopicPublishInfo does.
//   - A first attempt (Selection.LastBroker == "") advances the counter by one and
//     returns position % len(Queues).
//   - A retry (LastBroker != "") advances the counter by one and walks forward from the
//     new position, up to len(Queues) queues, returning the first queue whose broker is
//     not LastBroker. When every queue is on LastBroker it returns the queue at the new
//     position (the "plain pick" of spec §7.2). The Java client advances its counter on
//     each step of that walk; here the counter moves once per Select, which gives the
//     same sequence for one sender and costs one atomic operation under contention.
//   - Select never blocks and ignores ctx; it returns ErrNoQueues for an empty list.
//
// # Concurrency and cost
//
// A Selector is safe for concurrent use. In steady state (topic and route version
// already seen) Select takes no lock and allocates nothing: the per-topic counters sit
// in a sync.Map; only a new topic or route version takes the selector's mutex. The
// counters are shared by all goroutines, so concurrent sends interleave on one
// sequence; each queue still receives an equal share. The map keeps at most MaxTopics
// topics; past that it is cleared and rebuilt from the topics in use.
package roundrobin

import (
	"context"
	"math/rand/v2"
	"sync"
	"sync/atomic"

	"github.com/producerd/producerd/plugins/sdk"
)

// MaxTopics bounds the per-topic counter cache. When a new topic would exceed it, the
// cache is cleared (each topic then restarts at a new random position).
const MaxTopics = 4096

// Option configures a Selector built by New.
type Option func(*config)

type config struct {
	rand func() uint64
}

// WithRand sets the source of the random start positions. It is called with the
// selector's internal lock held, so it need not be safe for concurrent use. The default
// is math/rand/v2's Uint64. Tests pass a seeded source to get a deterministic sequence.
func WithRand(f func() uint64) Option {
	return func(c *config) {
		if f != nil {
			c.rand = f
		}
	}
}

var (
	_ sdk.Selector  = (*selector)(nil)
	_ sdk.Describer = (*selector)(nil)
)

// New returns a round-robin Selector that also implements sdk.Describer
// (Name "roundrobin").
func New(opts ...Option) sdk.Selector {
	c := config{rand: rand.Uint64}
	for _, o := range opts {
		o(&c)
	}
	return &selector{rand: c.rand}
}

type selector struct {
	topics sync.Map // topic → *position

	mu      sync.Mutex // serialises new positions, ntopics and calls to rand
	rand    func() uint64
	ntopics int
}

// position is one topic's counter for one route version. It is padded to a cache line
// so that counters of different topics do not share one.
type position struct {
	version uint64
	n       int
	next    atomic.Uint64
	_       [40]byte
}

// Describe implements sdk.Describer. Round-robin is LocalApply: with no published
// isolations, a host applying the rule locally decides exactly as Select does.
func (s *selector) Describe() sdk.Descriptor {
	return sdk.Descriptor{Name: "roundrobin", LocalApply: true}
}

// Select implements sdk.Selector.
func (s *selector) Select(_ context.Context, sel *sdk.Selection) (int, error) {
	n := len(sel.Queues)
	if n == 0 {
		return -1, ErrNoQueues
	}
	var p *position
	if v, ok := s.topics.Load(sel.Topic); ok {
		p = v.(*position)
	}
	if p == nil || p.version != sel.RouteVersion || p.n != n {
		p = s.reset(sel.Topic, sel.RouteVersion, n)
	}
	i := p.next.Add(1)
	pos := int(i % uint64(n))
	if sel.LastBroker == "" {
		return pos, nil
	}
	for k := range n {
		j := pos + k
		if j >= n {
			j -= n
		}
		if sel.Queues[j].Broker != sel.LastBroker {
			return j, nil
		}
	}
	return pos, nil
}

// reset installs a fresh counter for (topic, version) unless another goroutine did it
// first.
func (s *selector) reset(topic string, version uint64, n int) *position {
	s.mu.Lock()
	defer s.mu.Unlock()
	v, existed := s.topics.Load(topic)
	if existed {
		if p := v.(*position); p.version == version && p.n == n {
			return p
		}
	}
	p := &position{version: version, n: n}
	p.next.Store(s.rand())
	if !existed {
		if s.ntopics++; s.ntopics > MaxTopics {
			s.topics.Clear()
			s.ntopics = 1
		}
	}
	s.topics.Store(topic, p)
	return p
}
