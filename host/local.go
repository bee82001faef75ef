package host

import (
	"cmp"
	"math"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	"github.com/producerd/producerd/plugins/sdk"
)

// localApply makes the decisions of a strategy that declares Descriptor.LocalApply, in
// the host's process, from the broker health table the plugin publishes:
//
//  1. Each topic has a round-robin counter per route version, started at a random
//     position; a decision advances it once to position p.
//  2. When no broker is isolated: p, or on a retry the first queue from p onwards not
//     on LastBroker (else p).
//  3. Otherwise the first queue from p onwards whose broker is available and not
//     LastBroker; failing that, the first available queue on LastBroker.
//  4. When no broker of the route is available: the least-bad broker. Brokers of the
//     route (without LastBroker when another exists) are ranked by lower last latency,
//     earlier end of isolation, then name; a rotating counter picks among the better
//     half (the best one when fewer than two), and that broker's queue at p modulo its
//     queue count is returned.
//
// A broker is isolated while its row says Available == false and now is before Until
// (a zero Until means until the plugin publishes otherwise): an isolation expires at its
// Until in the host without waiting for the plugin. Brokers without a row are
// available. Select takes no lock and allocates nothing in steady state.
type localApply struct {
	snap   atomic.Pointer[healthSnap]
	topics atomic.Pointer[map[string]*position]
	mu     sync.Mutex // serialises copy-on-write of topics
	worst  atomic.Uint64
}

// position is one topic's counter for one route version, padded to a cache line.
type position struct {
	version uint64
	n       int
	next    atomic.Uint64
	_       [40]byte
}

type isolation struct {
	until   int64 // unix nanoseconds; math.MaxInt64 for "until further notice"
	latency time.Duration
}

// healthSnap is an immutable view of a published health table.
type healthSnap struct {
	isolated map[string]isolation
	maxUntil int64
}

func newLocalApply() *localApply {
	l := &localApply{}
	l.snap.Store(&healthSnap{})
	m := map[string]*position{}
	l.topics.Store(&m)
	return l
}

// update installs a newly published table.
func (l *localApply) update(rows []sdk.BrokerHealth) {
	sn := &healthSnap{}
	for _, r := range rows {
		if r.Available || r.Broker == "" {
			continue
		}
		until := int64(math.MaxInt64)
		if !r.Until.IsZero() {
			until = r.Until.UnixNano()
		}
		if sn.isolated == nil {
			sn.isolated = make(map[string]isolation)
		}
		sn.isolated[r.Broker] = isolation{until: until, latency: r.Latency}
		sn.maxUntil = max(sn.maxUntil, until)
	}
	l.snap.Store(sn)
}

func (l *localApply) position(topic string, version uint64, n int) *position {
	p := (*l.topics.Load())[topic]
	if p != nil && p.version == version && p.n == n {
		return p
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	old := *l.topics.Load()
	if p := old[topic]; p != nil && p.version == version && p.n == n {
		return p
	}
	p = &position{version: version, n: n}
	p.next.Store(rand.Uint64())
	size := len(old) + 1
	if size > 4096 {
		old, size = nil, 1
	}
	m := make(map[string]*position, size)
	for k, v := range old {
		m[k] = v
	}
	m[topic] = p
	l.topics.Store(&m)
	return p
}

// Select returns an index into sel.Queues, or -1 when it is empty.
func (l *localApply) Select(sel *sdk.Selection) int {
	n := len(sel.Queues)
	if n == 0 {
		return -1
	}
	pos := int(l.position(sel.Topic, sel.RouteVersion, n).next.Add(1) % uint64(n))
	sn := l.snap.Load()
	var now int64
	if len(sn.isolated) > 0 {
		now = time.Now().UnixNano()
	}
	if len(sn.isolated) == 0 || now >= sn.maxUntil {
		if sel.LastBroker == "" {
			return pos
		}
		for k := range n {
			j := wrap(pos+k, n)
			if sel.Queues[j].Broker != sel.LastBroker {
				return j
			}
		}
		return pos
	}
	onLast := -1
	for k := range n {
		j := wrap(pos+k, n)
		b := sel.Queues[j].Broker
		if !sn.available(b, now) {
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
	return l.leastBad(sel, sn, now, pos)
}

func (sn *healthSnap) available(broker string, now int64) bool {
	it, ok := sn.isolated[broker]
	return !ok || now >= it.until
}

func wrap(j, n int) int {
	if j >= n {
		return j - n
	}
	return j
}

// leastBad is rule 4; it runs only when every broker of the route is isolated.
func (l *localApply) leastBad(sel *sdk.Selection, sn *healthSnap, now int64, pos int) int {
	type cand struct {
		broker string
		iso    isolation
		queues []int
	}
	var cands []cand
	for i, q := range sel.Queues {
		if len(cands) == 0 || cands[len(cands)-1].broker != q.Broker {
			found := -1
			for k := range cands {
				if cands[k].broker == q.Broker {
					found = k
					break
				}
			}
			if found < 0 {
				cands = append(cands, cand{broker: q.Broker, iso: sn.isolated[q.Broker]})
				found = len(cands) - 1
			}
			cands[found].queues = append(cands[found].queues, i)
			continue
		}
		cands[len(cands)-1].queues = append(cands[len(cands)-1].queues, i)
	}
	if sel.LastBroker != "" && len(cands) > 1 {
		for k := range cands {
			if cands[k].broker == sel.LastBroker {
				cands = append(cands[:k], cands[k+1:]...)
				break
			}
		}
	}
	better := func(a, b cand) int {
		if c := cmp.Compare(a.iso.latency, b.iso.latency); c != 0 {
			return c
		}
		if c := cmp.Compare(a.iso.until, b.iso.until); c != 0 {
			return c
		}
		return cmp.Compare(a.broker, b.broker)
	}
	want := 0
	if half := len(cands) / 2; half > 0 {
		want = int(l.worst.Add(1) % uint64(half))
	}
	for i, c := range cands {
		rank := 0
		for j, o := range cands {
			if j != i && better(o, c) < 0 {
				rank++
			}
		}
		if rank == want {
			return c.queues[pos%len(c.queues)]
		}
	}
	return pos
}
