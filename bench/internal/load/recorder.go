package load

import (
	"bufio"
	"fmt"
	"os"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// Recorder stores one slot per operation of a phase: its start (relative to the phase's
// start), latency, broker and outcome. Slots are preallocated, so recording costs no
// allocation and no lock on the hot path (broker names are interned under a read lock).
type Recorder struct {
	t0     time.Time
	t0Unix int64 // t0 as Unix microseconds
	perOp  int

	start  []int64 // ns since t0
	lat    []int64 // ns
	broker []uint8 // index into names + 1; 0 = none
	state  []uint8 // 0 unused, 1 ok, 2 error

	mu    sync.RWMutex
	names []string
	index map[string]uint8

	last atomic.Int64 // ns since t0 of the latest completion
}

const (
	slotOK  = 1
	slotErr = 2
)

// NewRecorder returns a recorder for ops operations of perOp messages each, starting now.
func NewRecorder(ops, perOp int) *Recorder {
	now := time.Now()
	return &Recorder{
		t0: now, t0Unix: now.UnixMicro(), perOp: perOp,
		start: make([]int64, ops), lat: make([]int64, ops),
		broker: make([]uint8, ops), state: make([]uint8, ops),
		index: make(map[string]uint8),
	}
}

// Since returns the time since the phase started, the clock of every slot.
func (r *Recorder) Since() time.Duration { return time.Since(r.t0) }

// Add records operation i, started at start (from Since), as finished now.
func (r *Recorder) Add(i int, start time.Duration, broker string, err error) {
	end := time.Since(r.t0)
	r.start[i] = int64(start)
	r.lat[i] = int64(end - start)
	if err != nil {
		r.state[i] = slotErr
	} else {
		r.state[i] = slotOK
		r.broker[i] = r.intern(broker)
	}
	for {
		l := r.last.Load()
		if int64(end) <= l || r.last.CompareAndSwap(l, int64(end)) {
			break
		}
	}
}

func (r *Recorder) intern(name string) uint8 {
	if name == "" {
		return 0
	}
	r.mu.RLock()
	id, ok := r.index[name]
	r.mu.RUnlock()
	if ok {
		return id
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if id, ok := r.index[name]; ok {
		return id
	}
	if len(r.names) >= 254 {
		return 0
	}
	r.names = append(r.names, name)
	id = uint8(len(r.names))
	r.index[name] = id
	return id
}

// Fill sets every measured field of res from the slots: message counts, percentiles,
// the phase's length (from its start to elapsed) and the per-broker counts.
func (r *Recorder) Fill(res *Result, elapsed time.Duration) {
	var lats []int64
	res.Brokers = map[string]int{}
	for i, s := range r.state {
		if s == 0 {
			continue
		}
		lats = append(lats, r.lat[i])
		if r.lat[i] > int64(time.Second) {
			res.Slow++
		}
		if s == slotErr {
			res.Errors += r.perOp
			continue
		}
		res.Msgs += r.perOp
		if b := r.broker[i]; b > 0 {
			res.Brokers[r.names[b-1]] += r.perOp
		} else {
			res.Brokers["?"] += r.perOp
		}
	}
	res.Sec = elapsed.Seconds()
	if res.Sec > 0 {
		res.MsgsPerSec = float64(res.Msgs) / res.Sec
	}
	slices.Sort(lats)
	res.P50 = percentile(lats, 50)
	res.P99 = percentile(lats, 99)
	res.P999 = percentile(lats, 99.9)
	res.Max = percentile(lats, 100)
}

// percentile returns the q-th percentile of sorted ns latencies in ms (nearest rank).
func percentile(sorted []int64, q float64) float64 {
	if len(sorted) == 0 {
		return 0
	}
	rank := int(q/100*float64(len(sorted))+0.999999999) - 1
	rank = max(0, min(rank, len(sorted)-1))
	return float64(sorted[rank]) / 1e6
}

// WriteTrace writes one CSV line per recorded operation: its start as Unix microseconds,
// its latency in microseconds, the broker ("" for a failure) and ok (1 or 0).
func (r *Recorder) WriteTrace(path string) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	w := bufio.NewWriter(f)
	fmt.Fprintln(w, "start_unix_us,latency_us,broker,ok")
	for i, s := range r.state {
		if s == 0 {
			continue
		}
		name, ok := "", 0
		if s == slotOK {
			ok = 1
			if b := r.broker[i]; b > 0 {
				name = r.names[b-1]
			}
		}
		fmt.Fprintf(w, "%d,%d,%s,%d\n", r.t0Unix+r.start[i]/1e3, r.lat[i]/1e3, name, ok)
	}
	if err := w.Flush(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}
