// Package pick is producerd's one queue walk: the in-process decision every strategy that
// publishes a policy gets, and the walk the built-ins, the examples, the host and core's
// fallback all call. No other package walks a route.
//
// A strategy steers a Picker by publishing a Policy (Picker.SetPolicy): per-broker
// weights, exclusions with an expiry and a cost that orders excluded brokers. The Picker
// decides in nanoseconds, without a lock or an allocation in steady state, and the
// strategy republishes whenever its view changes (the push model of xDS/ORCA weighted
// round-robin). The rules of one Pick are:
//
//  1. Each topic has a counter per route version (and weight set), started at a random
//     position; a decision advances it once.
//  2. When some rule sets a Weight, the counter walks a smooth weighted schedule of the
//     weighted brokers' queues (each queue appears Weight times) and the first queue
//     whose broker is available and is not LastBroker is taken. Brokers without a
//     weight are standbys: they are picked only when no weighted broker qualifies.
//  3. Otherwise, or when rule 2 found nothing, the counter's position p over the route:
//     the first queue from p onwards whose broker is available and not LastBroker;
//     failing that, the first available queue on LastBroker. With no exclusions this is
//     plain round-robin with last-broker avoidance (the Java client's default, spec §7.2).
//  4. When no broker of the route is available, the least-bad broker: the route's
//     brokers (without LastBroker when another exists) ranked by lower Cost, earlier
//     end of exclusion, then name; a rotating counter picks among the better half (the
//     best one when fewer than two), and that broker's queue at p is taken.
//
// A broker is excluded while its rule says Excluded and the clock is before Until (a
// zero Until means until the next policy): an exclusion ends at its Until without a new
// policy. Brokers without a rule are available and unweighted.
//
// # Per-topic state
//
// A decision does the same work at 1 and at 100,000 topics (only cache misses grow
// once the counters outgrow the CPU caches): the counters live in a sharded
// concurrent map (internal/strmap: a lookup takes one shard's read lock, a new topic
// adds one entry and copies nothing), at most Options.MaxTopics of them, spread over
// up to 64 shards. A shard that is full forgets one topic to make room, chosen by CLOCK
// (the hand passes over at most 16 counters, skipping those used since its last pass),
// so a new topic never clears the others and never costs more than a bounded number of
// steps. A counter is 64 bytes on its own cache line; with its map slot, its key and
// its ring slot a topic costs about 110 bytes (TestBytesPerTopic), so the default
// bound of 131,072 topics is about 14 MiB at the most.
package pick

import (
	"cmp"
	"hash/maphash"
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/producerd/producerd/internal/strmap"
	"github.com/producerd/producerd/plugins/sdk"
)

// MaxWeight caps Rule.Weight; larger weights count as MaxWeight.
const MaxWeight = 64

// MaxTopics is the default bound on the per-topic counters of a Picker
// (Options.MaxTopics): past it a new topic takes the place of one not used recently,
// which restarts at a new random position when it comes back.
const MaxTopics = 1 << 17

// maxShards bounds the shards of the counters; each has its own lock for new topics.
const maxShards = 64

// clockScan bounds the counters the CLOCK hand looks at to free one slot.
const clockScan = 16

// maxTime is the last instant UnixNano represents; a later Until means "until the next
// policy".
var maxTime = time.Unix(0, math.MaxInt64)

// Rule is one broker's row of a Policy.
type Rule struct {
	Broker string
	// Excluded keeps the broker out of first choices until Until.
	Excluded bool
	// Until ends the exclusion; zero means until the next policy.
	Until time.Time
	// Weight is the relative share of each of the broker's queues; see the package
	// rules. Zero means unweighted.
	Weight uint32
	// Cost orders excluded brokers when all are excluded: lower is picked first.
	Cost time.Duration
}

// Policy is what a strategy publishes for a Picker. The zero Policy is plain
// round-robin.
type Policy struct {
	Rules []Rule
}

// FromHealth converts a health table to a Policy: an unavailable row is an exclusion
// whose cost is the row's latency.
func FromHealth(rows []sdk.BrokerHealth) Policy {
	p := Policy{Rules: make([]Rule, 0, len(rows))}
	for _, r := range rows {
		p.Rules = append(p.Rules, Rule{Broker: r.Broker, Excluded: !r.Available, Until: r.Until, Weight: r.Weight, Cost: r.Latency})
	}
	return p
}

// Options configures a Picker. The zero Options uses the wall clock and math/rand/v2.
type Options struct {
	// Now is the clock exclusions are compared with.
	Now func() time.Time
	// Rand gives the counters' random starts; it is called under the Picker's lock, so
	// it need not be safe for concurrent use.
	Rand func() uint64
	// Rotation is where rule 4's rotation over the better half starts.
	Rotation uint64
	// MaxTopics bounds the topics that keep a counter (default MaxTopics); see the
	// package documentation.
	MaxTopics int
}

// Picker makes decisions from the last published Policy. It is safe for concurrent use.
type Picker struct {
	now      func() time.Time
	rand     func() uint64
	randMu   *sync.Mutex // serialises calls to a caller's Rand; nil for math/rand/v2
	snap     atomic.Pointer[snapshot]
	topics   strmap.Map[*position] // changed only under the topic's shard's lock
	seed     maphash.Seed
	shards   []shard
	perShard int
	mu       sync.Mutex // serialises SetPolicy and wgen
	worst    atomic.Uint64
	wgen     uint64 // weight-set generation
}

// shard holds the CLOCK ring of the topics whose hash falls on it.
type shard struct {
	mu   sync.Mutex
	ring []*position
	hand int
	_    [24]byte // one shard per cache line
}

type exclusion struct {
	until int64 // unix ns; math.MaxInt64 for "until the next policy"
	cost  time.Duration
}

// snapshot is an immutable view of a Policy.
type snapshot struct {
	excluded map[string]exclusion
	maxUntil int64
	weights  map[string]uint32 // nil when no rule sets a weight
	wgen     uint64
}

// position is one topic's counter for one route version and weight set: 64 bytes, so
// the allocator gives each its own cache line and counters of different topics do not
// share one.
type position struct {
	next    atomic.Uint64
	version uint64
	wgen    uint64
	topic   string
	sched   *[]int32 // weighted schedule; nil without weights
	n       int32
	slot    int32         // index in its shard's ring; under the shard's lock
	used    atomic.Uint32 // CLOCK reference bit: decided with since the hand passed
}

// New returns a Picker with the zero Policy.
func New(o Options) *Picker {
	p := &Picker{now: o.Now, rand: o.Rand, seed: maphash.MakeSeed()}
	if p.now == nil {
		p.now = time.Now
	}
	if p.rand == nil {
		p.rand = rand.Uint64 // safe for concurrent use
	} else {
		p.randMu = new(sync.Mutex)
	}
	limit := o.MaxTopics
	if limit <= 0 {
		limit = MaxTopics
	}
	// Shards of at least 1024 counters, so that a small bound is not cut into slivers
	// that evict while the Picker as a whole has room.
	n := 1
	for n < maxShards && n*2*1024 <= limit {
		n *= 2
	}
	p.shards = make([]shard, n)
	p.perShard = (limit + n - 1) / n
	p.snap.Store(&snapshot{})
	p.worst.Store(o.Rotation)
	return p
}

// Forget drops topic's counter, if it has one; its next decision starts at a new random
// position. Callers that know a topic is gone (the daemon's idle topics) free its
// memory before the bound would.
func (p *Picker) Forget(topic string) {
	s := p.shard(topic)
	s.mu.Lock()
	defer s.mu.Unlock()
	t, ok := p.topics.LoadAndDelete(topic)
	if !ok {
		return
	}
	last := len(s.ring) - 1
	moved := s.ring[last]
	s.ring[t.slot], moved.slot = moved, t.slot
	s.ring[last] = nil
	s.ring = s.ring[:last]
	if s.hand >= len(s.ring) {
		s.hand = 0
	}
}

func (p *Picker) shard(topic string) *shard {
	if len(p.shards) == 1 {
		return &p.shards[0]
	}
	return &p.shards[maphash.String(p.seed, topic)&uint64(len(p.shards)-1)]
}

func (p *Picker) random() uint64 {
	if p.randMu == nil {
		return p.rand()
	}
	p.randMu.Lock()
	defer p.randMu.Unlock()
	return p.rand()
}

// SetPolicy installs pol for the decisions that follow. It does not retain pol.
func (p *Picker) SetPolicy(pol Policy) {
	sn := &snapshot{}
	for _, r := range pol.Rules {
		if r.Broker == "" {
			continue
		}
		if r.Weight > 0 {
			if sn.weights == nil {
				sn.weights = make(map[string]uint32)
			}
			sn.weights[r.Broker] = min(r.Weight, MaxWeight)
		}
		if !r.Excluded {
			continue
		}
		until := int64(math.MaxInt64)
		if !r.Until.IsZero() && r.Until.Before(maxTime) {
			until = r.Until.UnixNano()
		}
		if sn.excluded == nil {
			sn.excluded = make(map[string]exclusion)
		}
		sn.excluded[r.Broker] = exclusion{until: until, cost: r.Cost}
		sn.maxUntil = max(sn.maxUntil, until)
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	old := p.snap.Load()
	sn.wgen = old.wgen
	if !sameWeights(old.weights, sn.weights) {
		p.wgen++
		sn.wgen = p.wgen
	}
	p.snap.Store(sn)
}

func sameWeights(a, b map[string]uint32) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if w, ok := b[k]; !ok || w != v {
			return false
		}
	}
	return true
}

// Pick returns an index into sel.Queues by the package rules, or -1 when it is empty.
func (p *Picker) Pick(sel *sdk.Selection) int {
	n := len(sel.Queues)
	if n == 0 {
		return -1
	}
	sn := p.snap.Load()
	t := p.position(sel, sn)
	c := t.next.Add(1)
	pos := int(c % uint64(n))
	if len(sn.excluded) == 0 && sn.weights == nil {
		return plain(sel, pos)
	}
	w := walker{sn: sn, now: p.now}
	if len(sn.excluded) > 0 && w.clock() >= sn.maxUntil {
		w.ended = true // every exclusion has ended
		if sn.weights == nil {
			return plain(sel, pos)
		}
	}
	if t.sched != nil {
		sched := *t.sched
		m := len(sched)
		k0 := int(c % uint64(m))
		for k := range m {
			j := int(sched[wrap(k0+k, m)])
			if b := sel.Queues[j].Broker; b != sel.LastBroker && w.available(b) {
				return j
			}
		}
	}
	onLast := -1
	for k := range n {
		j := wrap(pos+k, n)
		b := sel.Queues[j].Broker
		if !w.available(b) {
			continue
		}
		if sel.LastBroker == "" || b != sel.LastBroker {
			return j
		}
		if onLast < 0 {
			onLast = j
		}
	}
	if onLast >= 0 {
		return onLast
	}
	return p.leastBad(sel, &w, pos)
}

// walker answers availability, reading the clock at most once and only when a
// candidate broker is excluded.
type walker struct {
	sn      *snapshot
	now     func() time.Time
	t       int64
	haveNow bool
	ended   bool // every exclusion of sn has ended
}

func (w *walker) clock() int64 {
	if !w.haveNow {
		w.t, w.haveNow = w.now().UnixNano(), true
	}
	return w.t
}

func (w *walker) available(broker string) bool {
	if w.ended || len(w.sn.excluded) == 0 {
		return true
	}
	e, ok := w.sn.excluded[broker]
	return !ok || w.clock() >= e.until
}

// plain is round-robin with last-broker avoidance: pos, or on a retry the first queue
// from pos onwards not on LastBroker, else pos.
func plain(sel *sdk.Selection, pos int) int {
	if sel.LastBroker == "" {
		return pos
	}
	n := len(sel.Queues)
	for k := range n {
		j := wrap(pos+k, n)
		if sel.Queues[j].Broker != sel.LastBroker {
			return j
		}
	}
	return pos
}

func wrap(j, n int) int {
	if j >= n {
		return j - n
	}
	return j
}

// leastBad is rule 4; it runs only when every broker of the route is excluded, so it
// reads the route's brokers from sel instead of keeping them per topic.
func (p *Picker) leastBad(sel *sdk.Selection, w *walker, pos int) int {
	var buf [16]string
	brokers := buf[:0]
	for _, q := range sel.Queues {
		// A route lists a broker's queues together: compare with the last one first.
		if n := len(brokers); n > 0 && brokers[n-1] == q.Broker || slices.Contains(brokers, q.Broker) {
			continue
		}
		brokers = append(brokers, q.Broker)
	}
	skip := -1
	if sel.LastBroker != "" && len(brokers) > 1 {
		skip = slices.Index(brokers, sel.LastBroker)
	}
	count := len(brokers)
	if skip >= 0 {
		count--
	}
	want := 0
	if half := count / 2; half > 0 {
		want = int(p.worst.Add(1) % uint64(half))
	}
	better := func(a, b int) bool {
		ea, eb := w.sn.excluded[brokers[a]], w.sn.excluded[brokers[b]]
		if c := cmp.Compare(ea.cost, eb.cost); c != 0 {
			return c < 0
		}
		if c := cmp.Compare(ea.until, eb.until); c != 0 {
			return c < 0
		}
		return brokers[a] < brokers[b]
	}
	for i := range brokers {
		if i == skip {
			continue
		}
		rank := 0
		for j := range brokers {
			if j != skip && j != i && better(j, i) {
				rank++
			}
		}
		if rank == want {
			return nthOn(sel.Queues, brokers[i], pos)
		}
	}
	return pos // unreachable: ranks are a permutation of 0..count-1
}

// nthOn returns the index of broker's queue number pos (modulo its queue count) in
// the order of qs; broker has at least one queue in qs.
func nthOn(qs []sdk.Queue, broker string, pos int) int {
	c := 0
	for _, q := range qs {
		if q.Broker == broker {
			c++
		}
	}
	k := pos % c
	for j, q := range qs {
		if q.Broker == broker {
			if k == 0 {
				return j
			}
			k--
		}
	}
	return pos // unreachable
}

// position returns sel.Topic's counter for the route version and weight set of sn. In
// steady state it is one lookup and no write but the counter's; a new topic, route
// version or weight set builds one under its shard's lock.
func (p *Picker) position(sel *sdk.Selection, sn *snapshot) *position {
	if t, ok := p.topics.Load(sel.Topic); ok {
		if t.fits(sel, sn) {
			if t.used.Load() == 0 {
				t.used.Store(1)
			}
			return t
		}
	}
	return p.build(sel, sn)
}

func (t *position) fits(sel *sdk.Selection, sn *snapshot) bool {
	return t.version == sel.RouteVersion && int(t.n) == len(sel.Queues) && t.wgen == sn.wgen
}

func (p *Picker) build(sel *sdk.Selection, sn *snapshot) *position {
	s := p.shard(sel.Topic)
	s.mu.Lock()
	defer s.mu.Unlock()
	old, existed := p.topics.Load(sel.Topic)
	if existed && old.fits(sel, sn) {
		return old
	}
	t := &position{version: sel.RouteVersion, n: int32(len(sel.Queues)), wgen: sn.wgen}
	if sn.weights != nil {
		if sched := schedule(sel.Queues, sn.weights); sched != nil {
			t.sched = &sched
		}
	}
	t.next.Store(p.random())
	switch {
	case old != nil: // a new route version or weight set: take the old one's slot
		t.topic, t.slot = old.topic, old.slot
	case len(s.ring) < p.perShard:
		t.topic, t.slot = strings.Clone(sel.Topic), int32(len(s.ring))
		s.ring = append(s.ring, nil)
	default:
		t.topic, t.slot = strings.Clone(sel.Topic), s.evict(&p.topics)
	}
	s.ring[t.slot] = t
	p.topics.Store(t.topic, t)
	return t
}

// evict frees one slot of a full ring by CLOCK and returns it: the hand clears the
// reference bits of the counters it passes until one was not used since its last
// pass, and takes the clockScan-th when all were.
func (s *shard) evict(topics *strmap.Map[*position]) int32 {
	for k := 1; ; k++ {
		t := s.ring[s.hand]
		if s.hand++; s.hand == len(s.ring) {
			s.hand = 0
		}
		if t.used.Load() != 0 && k < clockScan {
			t.used.Store(0)
			continue
		}
		topics.Delete(t.topic)
		return t.slot
	}
}

// schedule is the smooth weighted round-robin order (as nginx interleaves upstreams) of
// the weighted brokers' queues, each appearing its broker's weight times; nil when no
// queue of the route is weighted.
func schedule(queues []sdk.Queue, weights map[string]uint32) []int32 {
	var idx []int32
	var w []int64
	var total int64
	for i, q := range queues {
		if x := weights[q.Broker]; x > 0 {
			idx = append(idx, int32(i))
			w = append(w, int64(x))
			total += int64(x)
		}
	}
	if len(idx) == 0 {
		return nil
	}
	cur := make([]int64, len(idx))
	out := make([]int32, 0, total)
	for range total {
		best := 0
		for k := range idx {
			cur[k] += w[k]
			if cur[k] > cur[best] {
				best = k
			}
		}
		cur[best] -= total
		out = append(out, idx[best])
	}
	return out
}
