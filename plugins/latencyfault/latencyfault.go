package latencyfault

import (
	"cmp"
	"context"
	"io"
	"math"
	"slices"
	"sync"
	"time"

	"github.com/producerd/producerd/plugins/sdk"
	"github.com/producerd/producerd/plugins/sdk/pick"
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
	s.picker = pick.New(pick.Options{Now: o.Now, Rand: o.Rand, Rotation: o.Rand()})
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
	picker  *pick.Picker

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

// isoItem is an isolated broker as the isolation cap orders it.
type isoItem struct {
	broker string
	until  int64
	score  time.Duration
}

// route records that a topic's route version was seen (its brokers are in the table).
type route struct {
	version uint64
	n       int
}

func (s *strategy) mono() int64 { return int64(s.opts.Now().Sub(s.base)) }

// Describe implements sdk.Describer: Name "latencyfault", UrgentLatency the lowest
// latency that isolates (550 ms with either preset).
func (s *strategy) Describe() sdk.Descriptor {
	return sdk.Descriptor{Name: "latencyfault", UrgentLatency: s.urgent, LocalApply: true}
}

// Select implements sdk.Selector; see the package documentation for the rules. The
// walk is package pick's over the strategy's published isolations (its policy).
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
		s.newRoute(sel)
	}
	return s.picker.Pick(sel), nil
}

// newRoute registers the brokers of sel's route in the fault table (they count as known
// brokers for the isolation cap).
func (s *strategy) newRoute(sel *sdk.Selection) {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := len(sel.Queues)
	v, existed := s.routes.Load(sel.Topic)
	if existed {
		if r := v.(*route); r.version == sel.RouteVersion && r.n == n {
			return
		}
	}
	r := &route{version: sel.RouteVersion, n: n}
	for _, q := range sel.Queues {
		if _, ok := s.table[q.Broker]; !ok && q.Broker != "" {
			s.table[q.Broker] = &entry{}
		}
	}
	if !existed {
		if s.nroutes++; s.nroutes > maxTopics {
			s.routes.Clear()
			s.nroutes = 1
		}
	}
	s.routes.Store(sel.Topic, r)
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

// publish hands the picker the isolations of the table: each isolated broker is
// excluded until its end, with its score as cost. s.mu is held.
func (s *strategy) publish(now int64) {
	var pol pick.Policy
	for b, e := range s.table {
		if e.until > now {
			r := pick.Rule{Broker: b, Excluded: true, Cost: e.score}
			if e.until != math.MaxInt64 {
				r.Until = s.base.Add(time.Duration(e.until))
			}
			pol.Rules = append(pol.Rules, r)
		}
	}
	s.picker.SetPolicy(pol)
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
