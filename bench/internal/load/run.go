package load

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"runtime/pprof"
	"sync"
	"sync/atomic"
	"time"
)

// Sender is one client under test. Message i has key Key(i), tag Tag and body Body.
type Sender interface {
	// Send sends message i synchronously; it returns the name of the broker that
	// stored it.
	Send(ctx context.Context, i int) (broker string, err error)
	// SendAsync starts sending message i and calls done exactly once with the outcome,
	// unless it returns an error, in which case done is never called.
	SendAsync(ctx context.Context, i int, done func(broker string, err error)) error
	// SendBatch sends messages first..first+n-1 as one batch, synchronously.
	SendBatch(ctx context.Context, first, n int) (broker string, err error)
}

// WarmupBase is the number of the warm-up's first message: a Sender tells the warm-up's
// messages (i ≥ WarmupBase) from the measured phase's (0 up).
const WarmupBase = 1_000_000_000

// warmupLimit is the default bound of the warm-up phase.
const warmupLimit = 30 * time.Second

// Execute runs p against s: the warm-up, then the measured phase between the marks
// "MARK start" and "MARK end" on stdout, then prints the result line (and writes the
// trace). The result's CPU and RSS are this process's, from /proc/self.
func Execute(driver string, p *Params, s Sender) (*Result, error) {
	if err := p.Validate(); err != nil {
		return nil, err
	}
	out := os.Stdout
	if p.Warmup > 0 {
		ops := (p.Warmup + p.perOp() - 1) / p.perOp()
		rec := NewRecorder(ops, p.perOp())
		limit := min(warmupLimit, max(p.Duration, 10*time.Second))
		if p.WarmupTime > 0 {
			limit = p.WarmupTime
		}
		runPhase(p, s, rec, ops, WarmupBase, limit, 0)
		var w Result
		rec.Fill(&w, time.Second)
		if w.Msgs == 0 {
			return nil, fmt.Errorf("warm-up: all %d messages failed (is the cluster up and topic %s created?)", w.Errors, p.Topic)
		}
		fmt.Fprintf(os.Stderr, "%s: warm-up %d messages ok, %d failed\n", driver, w.Msgs, w.Errors)
	}
	time.Sleep(p.Pause)

	ops := (p.N + p.perOp() - 1) / p.perOp()
	cpu0, err := ProcCPU(0)
	if err != nil {
		return nil, err
	}
	var prof *os.File
	if p.CPUProfile != "" {
		if prof, err = os.Create(p.CPUProfile); err != nil {
			return nil, err
		}
	}
	fmt.Fprintln(out, "MARK start")
	if prof != nil {
		if err := pprof.StartCPUProfile(prof); err != nil {
			return nil, err
		}
	}
	rec := NewRecorder(ops, p.perOp())
	elapsed := runPhase(p, s, rec, ops, 0, p.Duration, p.Rate)
	if prof != nil {
		pprof.StopCPUProfile()
		if err := prof.Close(); err != nil {
			return nil, err
		}
	}
	cpu1, err := ProcCPU(0)
	if err != nil {
		return nil, err
	}
	hwm, err := PeakRSS(0)
	if err != nil {
		return nil, err
	}
	fmt.Fprintln(out, "MARK end")
	if p.Handshake {
		waitStdinClosed(10 * time.Second)
	}

	res := &Result{Driver: driver, Label: p.Label, Mode: p.Mode, Conc: p.Concurrency, Size: p.Size,
		Batch: p.perOp(), CPU: cpu1 - cpu0, RSSMiB: float64(hwm) / (1 << 20)}
	rec.Fill(res, elapsed)
	if p.Trace != "" {
		if err := rec.WriteTrace(p.Trace); err != nil {
			return nil, fmt.Errorf("trace: %w", err)
		}
	}
	fmt.Fprintln(out, res.String())
	return res, nil
}

// Exit prints err (if any) and exits with status 1, or returns.
func Exit(driver string, err error) {
	if err != nil {
		fmt.Fprintf(os.Stderr, "%s: %v\n", driver, err)
		os.Exit(1)
	}
}

func waitStdinClosed(limit time.Duration) {
	done := make(chan struct{})
	go func() {
		_, _ = io.Copy(io.Discard, bufio.NewReader(os.Stdin))
		close(done)
	}()
	t := time.NewTimer(limit)
	defer t.Stop()
	select {
	case <-done:
	case <-t.C:
	}
}

// runPhase runs up to ops operations, message indices from base, until dur has passed
// since the phase started, paced to rate messages per second in total when rate > 0. It
// returns the phase's length: from its start to the last completion. Sends still
// unanswered after dur plus the send timeout plus 15 s are left out.
func runPhase(p *Params, s Sender, rec *Recorder, ops, base int, dur time.Duration, rate float64) time.Duration {
	hard := dur + p.Timeout + 15*time.Second
	var logged atomic.Int32
	note := func(err error) {
		if err != nil && logged.Add(1) <= 5 {
			fmt.Fprintf(os.Stderr, "send failed: %v\n", err)
		}
	}
	ctx := context.Background()
	per := p.perOp()
	var wg sync.WaitGroup
	if p.Mode == ModeAsync {
		sem := make(chan struct{}, p.Concurrency)
		pc := newPacer(rate, 1, 0, 1)
		limit := time.NewTimer(hard)
		defer limit.Stop()
	issue:
		for i := range ops {
			if rec.Since() >= dur {
				break
			}
			select {
			case sem <- struct{}{}:
			case <-limit.C:
				break issue
			}
			pc.wait()
			st := rec.Since()
			wg.Add(1)
			err := s.SendAsync(ctx, base+i, func(b string, err error) {
				note(err)
				rec.Add(i, st, b, err)
				<-sem
				wg.Done()
			})
			if err != nil {
				note(err)
				rec.Add(i, st, "", err)
				<-sem
				wg.Done()
			}
		}
	} else {
		var next atomic.Int64
		for w := range p.Concurrency {
			wg.Add(1)
			go func() {
				defer wg.Done()
				pc := newPacer(rate, per, w, p.Concurrency)
				for {
					i := int(next.Add(1) - 1)
					if i >= ops || rec.Since() >= dur {
						return
					}
					pc.wait()
					st := rec.Since()
					var b string
					var err error
					if p.Mode == ModeBatch {
						b, err = s.SendBatch(ctx, base+i*per, per)
					} else {
						b, err = s.Send(ctx, base+i)
					}
					note(err)
					rec.Add(i, st, b, err)
				}
			}()
		}
	}
	if !waitBounded(&wg, hard-rec.Since()) {
		fmt.Fprintf(os.Stderr, "phase: sends still unanswered %v after the start; left out\n", hard)
	}
	if last := time.Duration(rec.last.Load()); last > 0 {
		return last
	}
	return rec.Since()
}

func waitBounded(wg *sync.WaitGroup, limit time.Duration) bool {
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	t := time.NewTimer(max(limit, time.Second))
	defer t.Stop()
	select {
	case <-done:
		return true
	case <-t.C:
		return false
	}
}

// pacer spaces one sender's operations; senders share a total rate, sender w of n
// starting w/n of an interval late so that they interleave.
type pacer struct {
	every time.Duration
	next  time.Time
}

func newPacer(rate float64, perOp, w, n int) *pacer {
	if rate <= 0 {
		return &pacer{}
	}
	every := time.Duration(float64(time.Second) * float64(perOp) * float64(n) / rate)
	return &pacer{every: every, next: time.Now().Add(every * time.Duration(w) / time.Duration(n))}
}

// wait sleeps until the next slot. A sender that fell behind (a stalled send) does not
// burst to catch up: its schedule restarts from now.
func (pc *pacer) wait() {
	if pc.every == 0 {
		return
	}
	now := time.Now()
	if d := pc.next.Sub(now); d > 0 {
		time.Sleep(d)
	} else if -d > pc.every {
		pc.next = now
	}
	pc.next = pc.next.Add(pc.every)
}

// ErrUnsupported is returned by a Sender for a mode its client does not have.
var ErrUnsupported = errors.New("load: mode not supported by this driver")
