package procs

import (
	"context"
	"sync"
	"testing"
	"testing/synctest"
	"time"
)

// load is a fake process on the test's clock: the test sets how many cores it uses and
// which share of its requests overlap, and moves the clock tick by tick; the
// Controller reads its counters and is handed each tick.
type load struct {
	mu        sync.Mutex
	cores     float64
	overlap   float64
	now, last time.Time
	cpu       time.Duration
	adm, over float64
	sets      []int

	ticks chan time.Time
}

// advance accounts the load from the last reading to now; l.mu is held.
func (l *load) advance() {
	if d := l.now.Sub(l.last); d > 0 {
		l.cpu += time.Duration(l.cores * float64(d))
		n := d.Seconds() * 1000 // 1000 requests a second
		l.adm += n
		l.over += n * l.overlap
	}
	l.last = l.now
}

func (l *load) CPU() time.Duration {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.advance()
	return l.cpu
}

func (l *load) Requests() (uint64, uint64) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.advance()
	return uint64(l.adm), uint64(l.over)
}

func (l *load) Set(n int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.sets = append(l.sets, n)
}

// set changes the load from the current instant on.
func (l *load) set(cores, overlap float64) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.advance()
	l.cores, l.overlap = cores, overlap
}

// pass moves the clock by d, one Policy.Tick at a time, handing the Controller each
// tick and waiting until it has acted on it.
func (l *load) pass(d time.Duration) {
	for end := l.now.Add(d); l.now.Before(end); {
		l.mu.Lock()
		l.now = l.now.Add(DefaultPolicy.Tick)
		now := l.now
		l.mu.Unlock()
		l.ticks <- now
		synctest.Wait()
	}
}

// procs is the last number of Ps set.
func (l *load) procs() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.sets[len(l.sets)-1]
}

// start runs a Controller of policy on l until the test ends (stop ends it earlier).
func start(t *testing.T, l *load, policy Policy) (stop func()) {
	l.now, l.last = time.Now(), time.Now() // the bubble's clock, which Run reads once
	l.ticks = make(chan time.Time)
	c := &Controller{Policy: policy, Max: 4, CPU: l.CPU, Requests: l.Requests, Set: l.Set, ticks: l.ticks}
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan struct{})
	go func() { defer close(done); c.Run(ctx) }()
	synctest.Wait()
	stop = func() { cancel(); <-done }
	t.Cleanup(stop)
	return stop
}

// TestOnePWhileSequential: one P while requests come one at a time under a core; the
// maximum within a tick of half the requests overlapping or of 80 % of a core; back to
// one P only after Hold below both.
func TestOnePWhileSequential(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		l := &load{}
		stop := start(t, l, DefaultPolicy)
		l.set(0.3, 0)
		l.pass(time.Second)
		if got := l.procs(); got != 1 {
			t.Fatalf("sequential requests at 0.3 cores: %d Ps, want 1", got)
		}

		l.set(0.3, 0.9) // many senders, little CPU
		l.pass(DefaultPolicy.Tick)
		if got := l.procs(); got != 4 {
			t.Fatalf("overlapping requests: %d Ps after one tick, want 4", got)
		}

		l.set(0.3, 0) // sequential again: stays up for Hold
		l.pass(DefaultPolicy.Hold - DefaultPolicy.Tick)
		if got := l.procs(); got != 4 {
			t.Fatalf("%d Ps before Hold passed, want 4", got)
		}
		l.pass(DefaultPolicy.Tick)
		if got := l.procs(); got != 1 {
			t.Fatalf("%d Ps after Hold, want 1", got)
		}

		l.set(0.85, 0) // one sender using most of the P
		l.pass(DefaultPolicy.Tick)
		if got := l.procs(); got != 4 {
			t.Fatalf("0.85 cores on one P: %d Ps, want 4", got)
		}
		l.set(0.6, 0) // between Down and Up: stays
		l.pass(2 * DefaultPolicy.Hold)
		if got := l.procs(); got != 4 {
			t.Fatalf("0.6 cores: %d Ps, want to stay at 4", got)
		}
		stop()
		if got := l.procs(); got != 4 {
			t.Fatalf("after stop: %d Ps, want the maximum back", got)
		}
	})
}

// TestHoldDoublesWhenFlapping: going up again within Hold of going down doubles Hold,
// up to MaxHold; one P lasting MaxHold brings it back to Hold.
func TestHoldDoublesWhenFlapping(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		l := &load{}
		start(t, l, DefaultPolicy)
		up := func() {
			t.Helper()
			l.set(0.9, 0)
			l.pass(DefaultPolicy.Tick)
			if l.procs() != 4 {
				t.Fatal("did not go up")
			}
		}
		downAfter := func() time.Duration { // from the load going low to one P
			t.Helper()
			l.set(0.1, 0)
			var took time.Duration
			for l.procs() != 1 {
				if took > 2*DefaultPolicy.MaxHold {
					t.Fatal("never went down")
				}
				l.pass(DefaultPolicy.Tick)
				took += DefaultPolicy.Tick
			}
			return took
		}
		up()
		if got := downAfter(); got != DefaultPolicy.Hold {
			t.Fatalf("first time down after %v, want Hold %v", got, DefaultPolicy.Hold)
		}
		up() // at once: it went down too early
		if got := downAfter(); got != 2*DefaultPolicy.Hold {
			t.Fatalf("after flapping down after %v, want twice Hold", got)
		}
		l.pass(DefaultPolicy.MaxHold) // one P lasts: the hold is forgotten
		up()
		if got := downAfter(); got != DefaultPolicy.Hold {
			t.Fatalf("after one P lasted MaxHold down after %v, want Hold %v again", got, DefaultPolicy.Hold)
		}
	})
}

// TestZeroPolicyIsDefault: every zero field of a Policy takes DefaultPolicy's (a zero
// Tick made NewTicker panic), and a Controller with a zero Policy adapts by them.
func TestZeroPolicyIsDefault(t *testing.T) {
	if got := (Policy{}).withDefaults(); got != DefaultPolicy {
		t.Fatalf("zero Policy with defaults: %+v, want %+v", got, DefaultPolicy)
	}
	synctest.Test(t, func(t *testing.T) {
		l := &load{}
		start(t, l, Policy{})
		l.set(0.9, 0)
		l.pass(DefaultPolicy.Tick)
		if got := l.procs(); got != 4 {
			t.Errorf("0.9 cores with a zero Policy: %d Ps, want 4", got)
		}
	})
}

// TestMaxOneDoesNothing: with one CPU there is nothing to adapt.
func TestMaxOneDoesNothing(t *testing.T) {
	l := &load{}
	c := &Controller{Policy: DefaultPolicy, Max: 1, CPU: l.CPU, Set: l.Set}
	c.Run(t.Context())
	if len(l.sets) != 0 {
		t.Fatalf("set %v with Max 1", l.sets)
	}
}
