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
// A Selector is safe for concurrent use. Select is package pick's walk with the zero
// policy: in steady state (topic and route version already seen) it takes no lock and
// allocates nothing; only a new topic or route version takes a lock. The counters are
// shared by all goroutines, so concurrent sends interleave on one sequence; each queue
// still receives an equal share. At most MaxTopics topics keep a counter; past that a
// new topic takes the place of one not used recently (which restarts at a new random
// position when it comes back); no decision costs more at 100,000 topics than at one.
package roundrobin

import (
	"context"
	"math/rand/v2"

	"github.com/producerd/producerd/plugins/sdk"
	"github.com/producerd/producerd/plugins/sdk/pick"
)

// MaxTopics bounds the per-topic counter cache. When a new topic would exceed it, one
// not used recently is forgotten (it restarts at a new random position).
const MaxTopics = pick.MaxTopics

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
	return &selector{p: pick.New(pick.Options{Rand: c.rand})}
}

type selector struct {
	p *pick.Picker
}

// Describe implements sdk.Describer. Round-robin is LocalApply: it publishes no policy,
// so a host applying package pick's walk locally decides exactly as Select does.
func (s *selector) Describe() sdk.Descriptor {
	return sdk.Descriptor{Name: "roundrobin", LocalApply: true}
}

// Build is round-robin's sdk.Constructor: it takes no settings.
func Build(settings []byte) (sdk.Selector, error) {
	return sdk.NoSettings(func() sdk.Selector { return New() })(settings)
}

// Select implements sdk.Selector.
func (s *selector) Select(_ context.Context, sel *sdk.Selection) (int, error) {
	if len(sel.Queues) == 0 {
		return -1, ErrNoQueues
	}
	return s.p.Pick(sel), nil
}
