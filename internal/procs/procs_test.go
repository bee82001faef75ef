package procs

import (
	"context"
	"sync"
	"testing"
	"testing/synctest"
	"time"
)

// load is a fake process: the test sets how many cores it uses and which share of its
// requests overlap, and the Controller reads its counters as time passes.
type load struct {
	mu        sync.Mutex
	cores     float64
	overlap   float64
	last      time.Time
	cpu       time.Duration
	adm, over float64
	sets      []int
}

func (l *load) advance() {
	now := time.Now()
	if !l.last.IsZero() {
		d := now.Sub(l.last)
		l.cpu += time.Duration(l.cores * float64(d))
		n := d.Seconds() * 1000 // 1000 requests a second
		l.adm += n
		l.over += n * l.overlap
	}
	l.last = now
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

func (l *load) set(cores, overlap float64) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.advance()
	l.cores, l.overlap = cores, overlap
}

func (l *load) Set(n int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.sets = append(l.sets, n)
}

// procs is the last number of Ps set.
func (l *load) procs() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.sets[len(l.sets)-1]
}

func start(t *testing.T, l *load) (stop func()) {
	c := &Controller{Policy: DefaultPolicy, Max: 4, CPU: l.CPU, Requests: l.Requests, Set: l.Set}
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan struct{})
	go func() { defer close(done); c.Run(ctx) }()
	return func() { cancel(); <-done }
}

// TestOnePWhileSequential: one P while requests come one at a time under a core; the
// maximum within a tick of half the requests overlapping or of 80 % of a core; back to
// one P only after Hold below both.
func TestOnePWhileSequential(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		l := &load{}
		l.set(0.3, 0)
		stop := start(t, l)
		time.Sleep(time.Second)
		synctest.Wait()
		if got := l.procs(); got != 1 {
			t.Fatalf("sequential requests at 0.3 cores: %d Ps, want 1", got)
		}

		l.set(0.3, 0.9) // many senders, little CPU
		time.Sleep(DefaultPolicy.Tick + time.Millisecond)
		synctest.Wait()
		if got := l.procs(); got != 4 {
			t.Fatalf("overlapping requests: %d Ps after one tick, want 4", got)
		}

		l.set(0.3, 0) // sequential again: stays up for Hold
		time.Sleep(DefaultPolicy.Hold - 2*DefaultPolicy.Tick)
		synctest.Wait()
		if got := l.procs(); got != 4 {
			t.Fatalf("%d Ps before Hold passed, want 4", got)
		}
		time.Sleep(3 * DefaultPolicy.Tick)
		synctest.Wait()
		if got := l.procs(); got != 1 {
			t.Fatalf("%d Ps after Hold, want 1", got)
		}

		l.set(0.85, 0) // one sender using most of the P
		time.Sleep(DefaultPolicy.Tick + time.Millisecond)
		synctest.Wait()
		if got := l.procs(); got != 4 {
			t.Fatalf("0.85 cores on one P: %d Ps, want 4", got)
		}
		l.set(0.6, 0) // between Down and Up: stays
		time.Sleep(2 * DefaultPolicy.Hold)
		synctest.Wait()
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
// up to MaxHold.
func TestHoldDoublesWhenFlapping(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		l := &load{}
		l.set(0.9, 0)
		stop := start(t, l)
		defer stop()
		downAfter := func() time.Duration { // from the load going low to one P
			t.Helper()
			l.set(0.1, 0)
			begin := time.Now()
			for l.procs() != 1 {
				time.Sleep(DefaultPolicy.Tick)
				synctest.Wait()
				if time.Since(begin) > 2*DefaultPolicy.MaxHold {
					t.Fatal("never went down")
				}
			}
			return time.Since(begin)
		}
		time.Sleep(DefaultPolicy.Tick + time.Millisecond)
		synctest.Wait()
		first := downAfter()
		l.set(0.9, 0) // at once up again: it went down too early
		time.Sleep(DefaultPolicy.Tick + time.Millisecond)
		synctest.Wait()
		if l.procs() != 4 {
			t.Fatal("did not go up")
		}
		second := downAfter()
		if second < first+DefaultPolicy.Hold-DefaultPolicy.Tick {
			t.Fatalf("went down after %v then %v: want the hold doubled", first, second)
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

// TestZeroPolicyIsDefault: a Controller with a zero Policy runs on DefaultPolicy's
// values instead of panicking on a zero tick.
func TestZeroPolicyIsDefault(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		l := &load{}
		l.set(0.9, 0)
		c := &Controller{Max: 2, CPU: l.CPU, Requests: l.Requests, Set: l.Set}
		ctx, cancel := context.WithCancel(t.Context())
		done := make(chan struct{})
		go func() { defer close(done); c.Run(ctx) }()
		time.Sleep(DefaultPolicy.Tick + time.Millisecond)
		synctest.Wait()
		if got := l.procs(); got != 2 {
			t.Errorf("0.9 cores with a zero Policy: %d Ps, want 2", got)
		}
		cancel()
		<-done
	})
}
