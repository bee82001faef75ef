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
package pick

import (
	"cmp"
	"math"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	"github.com/producerd/producerd/plugins/sdk"
)

// MaxWeight caps Rule.Weight; larger weights count as MaxWeight.
const MaxWeight = 64

// MaxTopics bounds the per-topic counters of a Picker; when a new topic would exceed
// it they are cleared (each topic restarts at a new random position).
const MaxTopics = 4096

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
	// Rand gives the counters' random starts; it is called under the Picker's lock.
	Rand func() uint64
	// Rotation is where rule 4's rotation over the better half starts.
	Rotation uint64
}

// Picker makes decisions from the last published Policy. It is safe for concurrent use.
type Picker struct {
	now     func() time.Time
	rand    func() uint64
	snap    atomic.Pointer[snapshot]
	topics  sync.Map   // topic → *position
	mu      sync.Mutex // serialises new positions, ntopics, wgen and calls to rand
	ntopics int
	worst   atomic.Uint64
	wgen    uint64 // weight-set generation
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

// position is one topic's counter for one route version and weight set.
type position struct {
	version  uint64
	n        int
	wgen     uint64
	sched    []int32 // weighted schedule; nil without weights
	brokers  []string
	queuesOf [][]int32
	next     atomic.Uint64
	_        [40]byte
}

// New returns a Picker with the zero Policy.
func New(o Options) *Picker {
	p := &Picker{now: o.Now, rand: o.Rand}
	if p.now == nil {
		p.now = time.Now
	}
	if p.rand == nil {
		p.rand = rand.Uint64
	}
	p.snap.Store(&snapshot{})
	p.worst.Store(o.Rotation)
	return p
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
		m := len(t.sched)
		k0 := int(c % uint64(m))
		for k := range m {
			j := int(t.sched[wrap(k0+k, m)])
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
	return p.leastBad(t, sel, &w, pos)
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

// leastBad is rule 4; it runs only when every broker of the route is excluded.
func (p *Picker) leastBad(t *position, sel *sdk.Selection, w *walker, pos int) int {
	skip := -1
	if sel.LastBroker != "" && len(t.brokers) > 1 {
		for i, b := range t.brokers {
			if b == sel.LastBroker {
				skip = i
				break
			}
		}
	}
	count := len(t.brokers)
	if skip >= 0 {
		count--
	}
	want := 0
	if half := count / 2; half > 0 {
		want = int(p.worst.Add(1) % uint64(half))
	}
	better := func(a, b int) bool {
		ea, eb := w.sn.excluded[t.brokers[a]], w.sn.excluded[t.brokers[b]]
		if c := cmp.Compare(ea.cost, eb.cost); c != 0 {
			return c < 0
		}
		if c := cmp.Compare(ea.until, eb.until); c != 0 {
			return c < 0
		}
		return t.brokers[a] < t.brokers[b]
	}
	for i := range t.brokers {
		if i == skip {
			continue
		}
		rank := 0
		for j := range t.brokers {
			if j != skip && j != i && better(j, i) {
				rank++
			}
		}
		if rank == want {
			qs := t.queuesOf[i]
			return int(qs[pos%len(qs)])
		}
	}
	return pos // unreachable: ranks are a permutation of 0..count-1
}

// position returns sel.Topic's counter for the route version and weight set of sn.
func (p *Picker) position(sel *sdk.Selection, sn *snapshot) *position {
	n := len(sel.Queues)
	if v, ok := p.topics.Load(sel.Topic); ok {
		if t := v.(*position); t.version == sel.RouteVersion && t.n == n && t.wgen == sn.wgen {
			return t
		}
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	v, existed := p.topics.Load(sel.Topic)
	if existed {
		if t := v.(*position); t.version == sel.RouteVersion && t.n == n && t.wgen == sn.wgen {
			return t
		}
	}
	t := &position{version: sel.RouteVersion, n: n, wgen: sn.wgen}
	slot := make(map[string]int)
	for i, q := range sel.Queues {
		k, ok := slot[q.Broker]
		if !ok {
			k = len(t.brokers)
			slot[q.Broker] = k
			t.brokers = append(t.brokers, q.Broker)
			t.queuesOf = append(t.queuesOf, nil)
		}
		t.queuesOf[k] = append(t.queuesOf[k], int32(i))
	}
	if sn.weights != nil {
		t.sched = schedule(sel.Queues, sn.weights)
	}
	t.next.Store(p.rand())
	if !existed {
		if p.ntopics++; p.ntopics > MaxTopics {
			p.topics.Clear()
			p.ntopics = 1
		}
	}
	p.topics.Store(sel.Topic, t)
	return t
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
