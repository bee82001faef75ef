package latencyfault

import (
	"cmp"
	"context"
	"io"
	"math"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/producerd/producerd/plugins/sdk"
)

// Strategy is the latency-fault strategy: a selector that also observes outcomes,
// describes itself, reports and accepts broker health, and owns a probe goroutine that
// Close stops. All methods are safe for concurrent use.
type Strategy interface {
	sdk.Selector
	sdk.Observer
	sdk.Describer
	sdk.HealthReporter
	sdk.HealthSeeder
	io.Closer
}

var _ Strategy = (*strategy)(nil)

// maxTopics bounds the per-topic route cache; past it the cache is cleared.
const maxTopics = 4096

// New validates opts, fills in its defaults and returns a Strategy. It does no I/O; when
// opts.Probe is set it starts the probe goroutine, which Close stops.
func New(opts Options) (Strategy, error) {
	o, err := opts.resolve()
	if err != nil {
		return nil, err
	}
	s := &strategy{
		opts:  o,
		base:  o.Now(),
		table: make(map[string]*entry),
	}
	for i, l := range o.LatencyMax {
		if o.NotAvailable[i] > 0 {
			s.urgent = max(l, 1)
			break
		}
	}
	s.maxIsolation = slices.Max(o.NotAvailable)
	s.snap.Store(&snapshot{})
	s.worst.Store(o.Rand())
	if o.Probe != nil {
		ctx, cancel := context.WithCancel(context.Background())
		s.stop = cancel
		s.wg.Go(func() { s.probeLoop(ctx) })
	}
	return s, nil
}

type strategy struct {
	opts         Options
	base         time.Time // instants are stored as nanoseconds since base
	urgent       time.Duration
	maxIsolation time.Duration

	routes  sync.Map // topic → *route
	nroutes int      // topics in routes; guarded by mu
	snap    atomic.Pointer[snapshot]
	worst   atomic.Uint64 // pickOneAtLeast's rotation over the better half

	mu    sync.Mutex // guards table, nroutes, new routes and calls to opts.Rand
	table map[string]*entry

	stop      context.CancelFunc
	wg        sync.WaitGroup
	closeOnce sync.Once
}

// entry is one broker's row of the fault table.
type entry struct {
	latency time.Duration // last observed latency
	score   time.Duration // latency the last outcome counted as (IsolationLatency if isolating)
	until   int64         // isolated while now < until (ns since base)
}

// snapshot is the immutable view Select reads: the brokers isolated when it was built.
// An item whose until has passed is available again without a rebuild.
type snapshot struct {
	items    []isoItem // sorted by broker
	index    map[string]int32
	maxUntil int64
}

type isoItem struct {
	broker string
	until  int64
	score  time.Duration
}

// linearMax is the size up to which a snapshot is searched linearly.
const linearMax = 8

// lookup returns the item of broker, if it was isolated when the snapshot was built.
func (sn *snapshot) lookup(broker string) (isoItem, bool) {
	if sn.index != nil {
		if i, ok := sn.index[broker]; ok {
			return sn.items[i], true
		}
		return isoItem{}, false
	}
	for _, it := range sn.items {
		if it.broker == broker {
			return it, true
		}
	}
	return isoItem{}, false
}

// route is one topic's derived state for one route version.
type route struct {
	version  uint64
	n        int
	next     atomic.Uint64
	brokers  []string  // distinct brokers in order of first appearance
	queuesOf [][]int32 // queue indexes of each broker, parallel to brokers
	_        [8]byte
}

func (s *strategy) mono() int64 { return int64(s.opts.Now().Sub(s.base)) }

// Describe implements sdk.Describer: Name "latencyfault", UrgentLatency the lowest
// latency that isolates (550 ms with either preset).
func (s *strategy) Describe() sdk.Descriptor {
	return sdk.Descriptor{Name: "latencyfault", UrgentLatency: s.urgent, LocalApply: true}
}

// Select implements sdk.Selector; see the package documentation for the rules.
func (s *strategy) Select(_ context.Context, sel *sdk.Selection) (int, error) {
	n := len(sel.Queues)
	if n == 0 {
		return -1, ErrNoQueues
	}
	var r *route
	if v, ok := s.routes.Load(sel.Topic); ok {
		r = v.(*route)
	}
	if r == nil || r.version != sel.RouteVersion || r.n != n {
		r = s.newRoute(sel)
	}
	pos := int(r.next.Add(1) % uint64(n))
	sn := s.snap.Load()
	if len(sn.items) == 0 {
		return plainPick(sel, pos), nil
	}
	// The clock is read only when a candidate's broker is listed as isolated: most
	// picks land on an available broker and cost no clock read.
	var now int64
	haveNow := false
	onLast := -1
	// Queues come grouped by broker, so remember the last broker's verdict.
	prev, prevOK := "", false
	for k := range n {
		j := wrap(pos+k, n)
		b := sel.Queues[j].Broker
		ok := prevOK
		if k == 0 || b != prev {
			ok = true
			if it, listed := sn.lookup(b); listed {
				if !haveNow {
					now, haveNow = s.mono(), true
					if now >= sn.maxUntil {
						s.prune(sn)
						return plainPick(sel, pos), nil
					}
				}
				if now < it.until {
					ok = false
				} else {
					s.prune(sn) // this isolation has ended: drop it from the snapshot
				}
			}
			prev, prevOK = b, ok
		}
		if !ok {
			continue
		}
		if sel.LastBroker == "" || b != sel.LastBroker {
			return j, nil
		}
		if onLast < 0 {
			onLast = j
		}
	}
	if onLast >= 0 {
		return onLast, nil
	}
	return s.pickOneAtLeast(r, sel, sn, now, pos), nil
}

// plainPick is round-robin with last-broker avoidance: pos, or on a retry the first
// queue from pos onwards not on LastBroker, else pos.
func plainPick(sel *sdk.Selection, pos int) int {
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

// prune republishes a snapshot that lists an isolation that has ended, so that later
// Selects stop reading the clock for it. It gives up rather than wait when the lock is
// busy (a later Select retries) and does nothing when the snapshot was already replaced.
func (s *strategy) prune(sn *snapshot) {
	if !s.mu.TryLock() {
		return
	}
	defer s.mu.Unlock()
	if s.snap.Load() == sn {
		s.publish(s.mono())
	}
}

func wrap(j, n int) int {
	if j >= n {
		return j - n
	}
	return j
}

// pickOneAtLeast chooses a queue when no broker of the route is available: rank the
// route's brokers (without LastBroker when another exists) by lower score, earlier
// isolation end, then name; rotate over the better half (the best one when fewer than
// two brokers remain); take that broker's queue at the round-robin position.
func (s *strategy) pickOneAtLeast(r *route, sel *sdk.Selection, sn *snapshot, now int64, pos int) int {
	skip := -1
	if sel.LastBroker != "" && len(r.brokers) > 1 {
		skip = slices.Index(r.brokers, sel.LastBroker)
	}
	count := len(r.brokers)
	if skip >= 0 {
		count--
	}
	want := 0
	if half := count / 2; half > 0 {
		want = int(s.worst.Add(1) % uint64(half))
	}
	var buf [16]isoItem // routes rarely have more brokers; more spill to the heap
	items := buf[:0]
	for _, b := range r.brokers {
		items = append(items, itemOf(sn, b, now))
	}
	for i := range items {
		if i == skip {
			continue
		}
		rank := 0
		for j := range items {
			if j != skip && j != i && better(items[j], items[i]) {
				rank++
			}
		}
		if rank == want {
			qs := r.queuesOf[i]
			return int(qs[pos%len(qs)])
		}
	}
	return pos // unreachable: ranks are a permutation of 0..count-1
}

// itemOf returns broker's ordering key. An available broker gets score -1 and the
// lowest until, so it sorts before every isolated one.
func itemOf(sn *snapshot, broker string, now int64) isoItem {
	it, ok := sn.lookup(broker)
	if !ok || now >= it.until {
		return isoItem{broker: broker, until: math.MinInt64, score: -1}
	}
	return it
}

// better is pickOneAtLeast's order: available first (see itemOf), then lower score,
// earlier end of isolation, then broker name.
func better(a, b isoItem) bool {
	if c := cmp.Compare(a.score, b.score); c != 0 {
		return c < 0
	}
	if c := cmp.Compare(a.until, b.until); c != 0 {
		return c < 0
	}
	return a.broker < b.broker
}

// newRoute installs the derived state of sel's route, registering its brokers in the
// fault table (they count as known brokers for the isolation cap).
func (s *strategy) newRoute(sel *sdk.Selection) *route {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := len(sel.Queues)
	v, existed := s.routes.Load(sel.Topic)
	if existed {
		if r := v.(*route); r.version == sel.RouteVersion && r.n == n {
			return r
		}
	}
	r := &route{version: sel.RouteVersion, n: n}
	slot := make(map[string]int)
	for i, q := range sel.Queues {
		k, ok := slot[q.Broker]
		if !ok {
			k = len(r.brokers)
			slot[q.Broker] = k
			r.brokers = append(r.brokers, q.Broker)
			r.queuesOf = append(r.queuesOf, nil)
		}
		r.queuesOf[k] = append(r.queuesOf[k], int32(i))
		if _, ok := s.table[q.Broker]; !ok && q.Broker != "" {
			s.table[q.Broker] = &entry{}
		}
	}
	r.next.Store(s.opts.Rand())
	if !existed {
		if s.nroutes++; s.nroutes > maxTopics {
			s.routes.Clear()
			s.nroutes = 1
		}
	}
	s.routes.Store(sel.Topic, r)
	return r
}

// Observe implements sdk.Observer: it applies the outcomes in order, then publishes a
// new snapshot if any isolation changed, so the next Select sees them.
func (s *strategy) Observe(_ context.Context, outcomes []sdk.Outcome) {
	if len(outcomes) == 0 {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.mono()
	dirty := false
	for i := range outcomes {
		if s.apply(&outcomes[i], now) {
			dirty = true
		}
	}
	if dirty {
		s.publish(now)
	}
}

// apply updates the table for one outcome and reports whether the snapshot must be
// rebuilt. s.mu is held.
func (s *strategy) apply(o *sdk.Outcome, now int64) bool {
	if o.Broker == "" {
		return false
	}
	latency := max(o.Latency, 0)
	score := latency
	if o.Isolation {
		score = s.opts.IsolationLatency
	}
	d := s.opts.notAvailable(score)
	e := s.table[o.Broker]
	if e == nil {
		e = &entry{}
		s.table[o.Broker] = e
	}
	wasIsolated := e.until > now
	until := e.until
	switch {
	case !s.opts.NeverShorten:
		until = addSat(now, d)
	case d > 0 && addSat(now, d) > until:
		until = addSat(now, d)
	}
	e.latency, e.score = latency, score
	if until <= now {
		e.until = until
		return wasIsolated
	}
	if !wasIsolated {
		// A new isolation: enforce the cap before it takes effect.
		e.until = now // not counted while the cap is checked
		until = s.admit(o.Broker, until, score, now)
	}
	e.until = until
	return true
}

// admit applies the isolation cap to a broker about to be isolated until the given
// instant: while one more isolation would exceed the cap, the candidate (the isolated
// brokers and this one) with the earliest end of isolation, then lowest score, then
// first name, stays or becomes available. It returns the broker's resulting until.
// s.mu is held and the broker's entry is not counted as isolated.
func (s *strategy) admit(broker string, until int64, score time.Duration, now int64) int64 {
	limit := s.limit()
	for s.isolatedCount(now)+1 > limit {
		self := isoItem{broker: broker, until: until, score: score}
		best := self
		for b, e := range s.table {
			if e.until > now {
				if c := (isoItem{broker: b, until: e.until, score: e.score}); releaseFirst(c, best) {
					best = c
				}
			}
		}
		if best.broker == broker {
			return now
		}
		s.table[best.broker].until = now
	}
	return until
}

// releaseFirst orders candidates for release by the cap: earlier end of isolation,
// then lower score, then broker name.
func releaseFirst(a, b isoItem) bool {
	if a.until != b.until {
		return a.until < b.until
	}
	if a.score != b.score {
		return a.score < b.score
	}
	return a.broker < b.broker
}

// limit is how many brokers may be isolated at once: ⌊MaxIsolatedShare × known⌋, at
// least 1, where known is the number of brokers in the table. s.mu is held.
func (s *strategy) limit() int {
	known := len(s.table)
	if s.opts.MaxIsolatedShare >= 1 {
		return known
	}
	// The epsilon keeps 0.29 × 100 at 29 despite binary rounding.
	return max(1, int(math.Floor(s.opts.MaxIsolatedShare*float64(known)+1e-9)))
}

func (s *strategy) isolatedCount(now int64) int {
	n := 0
	for _, e := range s.table {
		if e.until > now {
			n++
		}
	}
	return n
}

// publish rebuilds the snapshot from the table. s.mu is held.
func (s *strategy) publish(now int64) {
	sn := &snapshot{}
	for b, e := range s.table {
		if e.until > now {
			sn.items = append(sn.items, isoItem{broker: b, until: e.until, score: e.score})
			sn.maxUntil = max(sn.maxUntil, e.until)
		}
	}
	slices.SortFunc(sn.items, func(a, b isoItem) int { return cmp.Compare(a.broker, b.broker) })
	if len(sn.items) > linearMax {
		sn.index = make(map[string]int32, len(sn.items))
		for i, it := range sn.items {
			sn.index[it.broker] = int32(i)
		}
	}
	s.snap.Store(sn)
}

// Health implements sdk.HealthReporter: one row per broker the strategy knows (seen in
// a route, an outcome or a Seed), sorted by broker name.
func (s *strategy) Health() []sdk.BrokerHealth {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.mono()
	rows := make([]sdk.BrokerHealth, 0, len(s.table))
	for b, e := range s.table {
		row := sdk.BrokerHealth{Broker: b, Available: e.until <= now, Latency: e.latency}
		if !row.Available {
			row.Until = s.base.Add(time.Duration(e.until))
		}
		rows = append(rows, row)
	}
	slices.SortFunc(rows, func(a, b sdk.BrokerHealth) int { return cmp.Compare(a.Broker, b.Broker) })
	return rows
}

// Seed implements sdk.HealthSeeder; see the package documentation for the rules.
func (s *strategy) Seed(rows []sdk.BrokerHealth) {
	if len(rows) == 0 {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.mono()
	for _, row := range rows {
		if row.Broker == "" {
			continue
		}
		lat := max(row.Latency, 0)
		e := &entry{latency: lat, score: lat, until: now}
		if !row.Available && !row.Until.IsZero() {
			e.until = min(addSat(0, row.Until.Sub(s.base)), addSat(now, s.maxIsolation))
		}
		if e.until > now {
			e.score = max(e.score, s.opts.IsolationLatency)
		}
		s.table[row.Broker] = e
	}
	for limit := s.limit(); s.isolatedCount(now) > limit; {
		var best isoItem
		found := false
		for b, e := range s.table {
			if c := (isoItem{broker: b, until: e.until, score: e.score}); e.until > now && (!found || releaseFirst(c, best)) {
				best, found = c, true
			}
		}
		s.table[best.broker].until = now
	}
	s.publish(now)
}

// addSat returns a+d, saturating instead of overflowing.
func addSat(a int64, d time.Duration) int64 {
	if d > 0 && a > math.MaxInt64-int64(d) {
		return math.MaxInt64
	}
	if d < 0 && a < math.MinInt64-int64(d) {
		return math.MinInt64
	}
	return a + int64(d)
}

// Close stops the probe goroutine, if any, and waits for it. It is idempotent and
// always returns nil; the strategy keeps selecting and observing after Close.
func (s *strategy) Close() error {
	s.closeOnce.Do(func() {
		if s.stop != nil {
			s.stop()
		}
		s.wg.Wait()
	})
	return nil
}
