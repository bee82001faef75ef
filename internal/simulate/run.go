package simulate

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/producerd/producerd/core"
	"github.com/producerd/producerd/devbroker"
	"github.com/producerd/producerd/host"
	"github.com/producerd/producerd/plugins/sdk"
	"github.com/producerd/producerd/remoting"
)

// DefaultSampleInterval is how often the strategy's health table is sampled.
const DefaultSampleInterval = 250 * time.Millisecond

// lateAfter is how far behind its slot a send may start before it counts as late.
const lateAfter = 10 * time.Millisecond

// Options tune Run. The zero value runs the whole scenario, every strategy, silently.
type Options struct {
	// Duration, when positive and shorter than the scenario's load, runs only the first
	// Duration of it: the load stops there and later fault windows never start. Time is
	// not compressed.
	Duration time.Duration
	// Strategies, when not empty, runs only the strategies with these names, in the
	// scenario's order.
	Strategies []string
	// Logger receives the dev broker's, the host's and the producer's logs. Default none.
	Logger hclog.Logger
	// Progress, when set, receives one line per strategy every ProgressEvery (default
	// 5 s) while it runs.
	Progress      io.Writer
	ProgressEvery time.Duration
	// PluginCommand returns the command that serves a built-in out of process; default
	// the host's ([this executable, "plugin", NAME]).
	PluginCommand func(builtin string) []string
	// SampleInterval is how often the strategy's health table is sampled; default
	// DefaultSampleInterval.
	SampleInterval time.Duration
}

// Run runs every selected strategy of sc in turn, each against a fresh dev broker
// cluster started with the scenario's seed and driven by the same fault timeline, in
// real time: a 40 s scenario takes a little over 40 s per strategy. It stops early when
// ctx ends, returning ctx's error with the results so far.
func Run(ctx context.Context, sc *Scenario, opts Options) (*Report, error) {
	if opts.Logger == nil {
		opts.Logger = hclog.NewNullLogger()
	}
	if opts.SampleInterval <= 0 {
		opts.SampleInterval = DefaultSampleInterval
	}
	if opts.ProgressEvery <= 0 {
		opts.ProgressEvery = 5 * time.Second
	}
	dur := sc.Load.Duration
	if opts.Duration > 0 && opts.Duration < dur {
		dur = opts.Duration
	}
	var strategies []Strategy
	for _, s := range sc.Strategies {
		if len(opts.Strategies) == 0 || slices.Contains(opts.Strategies, s.Name) {
			strategies = append(strategies, s)
		}
	}
	if len(strategies) == 0 {
		return nil, fmt.Errorf("%w: none of %v is in %s", ErrNoStrategy, opts.Strategies, sc.File)
	}
	rep := &Report{Scenario: sc.Name, Description: sc.Description, Summary: sc.Summary(), Brokers: slices.Clone(sc.Brokers),
		Duration: dur, Planned: sc.Load.Duration, Load: sc.Load, Producer: sc.Producer, SampleInterval: opts.SampleInterval}
	for _, f := range sc.Faults {
		if f.From < dur {
			rep.Windows = append(rep.Windows, Window{Broker: f.Broker, From: f.From, To: min(f.To, dur), What: f.Describe()})
		}
	}
	start := time.Now()
	defer func() { rep.Wall = time.Since(start) }()
	for _, s := range strategies {
		res, err := runOne(ctx, sc, s, opts, dur)
		if err != nil {
			return rep, fmt.Errorf("simulate: strategy %s: %w", s.Name, err)
		}
		rep.Results = append(rep.Results, *res)
	}
	return rep, nil
}

// run is one strategy's run.
type run struct {
	sc      *Scenario
	brokers map[string]int // name -> index in sc.Brokers
	dur     time.Duration
	every   time.Duration // sample interval
	t0      time.Time

	recording atomic.Bool
	mu        sync.Mutex
	attempts  []attemptRec
	samples   []sample
	applied   []Applied
	notMode   int // samples in which the strategy did not decide where it should

	sends   []sendRec    // one per message, written by its own goroutine
	late    atomic.Int64 // sends started more than lateAfter after their slot
	blocked atomic.Int64 // sends that waited for a concurrency slot
	done    atomic.Int64
	okN     atomic.Int64
}

type attemptRec struct {
	start  time.Duration
	broker int
}

type sendRec struct {
	start, latency time.Duration
	ok, sent       bool
	attempts       int
	reason         string
}

type sample struct {
	at       time.Duration
	isolated []bool
	reported bool
}

var instanceSeq atomic.Uint64

func runOne(ctx context.Context, sc *Scenario, st Strategy, opts Options, dur time.Duration) (*Result, error) {
	wall := time.Now()
	log := opts.Logger
	r := &run{sc: sc, brokers: map[string]int{}, dur: dur, every: opts.SampleInterval}
	for i, b := range sc.Brokers {
		r.brokers[b] = i
	}
	startCtx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	cluster, err := devbroker.Start(startCtx, devbroker.Config{
		Brokers: sc.Brokers, Topics: map[string]int{sc.Topic: sc.Queues}, Timeline: sc.timeline(dur),
		ManualTimeline: true, Seed: sc.Seed, Logger: log,
	})
	if err != nil {
		return nil, fmt.Errorf("start the dev broker: %w", err)
	}
	defer cluster.Close()

	h, err := host.New(host.Config{Logger: log.Named("host")})
	if err != nil {
		return nil, err
	}
	defer h.Close()
	spec := host.Spec{Name: st.Name, Plugin: st.Builtin, InProcess: st.InProcess, Settings: st.Settings}
	if st.Path != "" {
		spec.Plugin = st.Path
	} else if !st.InProcess && opts.PluginCommand != nil {
		spec.Command = opts.PluginCommand(st.Builtin)
	}
	if err := h.Start(startCtx, spec); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrStrategyStart, err)
	}
	wantMode := host.ModePlugin
	if st.InProcess || strings.HasSuffix(st.Path, ".wasm") { // a module runs sandboxed in-process
		wantMode = host.ModeInProcess
	}
	if m := h.Status().Mode; m != wantMode {
		return nil, fmt.Errorf("%w: mode %s, want %s", ErrStrategyStart, m, wantMode)
	}

	pc := core.ProducerConfig{
		Group: "simulate",
		Client: core.ClientConfig{NameServers: []string{cluster.NameServerAddr()},
			InstanceName: fmt.Sprintf("simulate-%d-%d", os.Getpid(), instanceSeq.Add(1)), Logger: log.Named("core")},
		Strategy:       h.Strategy(),
		SendTimeout:    sc.Producer.SendTimeout,
		AttemptTimeout: sc.Producer.AttemptTimeout,
		Retries:        sc.Producer.Retries,
		NoRetries:      sc.Producer.NoRetries,
		Hooks:          core.ProducerHooks{OnAttempt: r.onAttempt},
	}
	p, err := core.NewProducer(pc)
	if err != nil {
		return nil, err
	}
	defer func() {
		cctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = p.Close(cctx)
	}()
	bodies := makeBodies(sc)
	// Warm up outside the strategy: fetch the route and open one connection per broker,
	// so the first measured sends do not pay for them. SendToQueue bypasses the strategy.
	for _, b := range sc.Brokers {
		m := &core.Message{Topic: sc.Topic, Body: bodies[0]}
		if _, err := p.SendToQueue(startCtx, m, sdk.Queue{Broker: b, ID: 0}); err != nil {
			return nil, fmt.Errorf("warm-up send to %s: %w", b, err)
		}
	}

	n := int(float64(sc.Load.Rate) * dur.Seconds())
	r.sends = make([]sendRec, n)
	stop := make(chan struct{})
	var bg sync.WaitGroup
	r.t0 = time.Now()
	r.recording.Store(true)
	bg.Go(func() { r.driveTimeline(cluster, stop) })
	bg.Go(func() { r.sample(h, wantMode, opts.SampleInterval, stop) })
	if opts.Progress != nil {
		bg.Go(func() { r.progress(opts.Progress, st.Name, n, opts.ProgressEvery, stop) })
	}
	// The load is bounded in count (n) and each send by the send timeout; this bound in
	// time only guards against a send path that would ignore its deadline.
	send := sc.Producer.SendTimeout
	if send == 0 {
		send = core.DefaultSendTimeout
	}
	lctx, lcancel := context.WithTimeout(ctx, dur+send+time.Minute)
	defer lcancel()
	r.load(lctx, p, bodies, n)
	r.recording.Store(false)
	close(stop)
	bg.Wait()

	st2 := h.Status()
	res := r.result(st, n)
	res.Fallbacks, res.Crashes = st2.Totals.Fallbacks, st2.Totals.Crashes
	res.Wall = time.Since(wall)
	if err := lctx.Err(); err != nil {
		return nil, fmt.Errorf("the load did not finish: %w", err)
	}
	return res, nil
}

// makeBodies returns one body per configured size, filled with seeded printable bytes.
func makeBodies(sc *Scenario) [][]byte {
	rnd := rand.New(rand.NewPCG(sc.Seed, 0x5eed))
	out := make([][]byte, len(sc.Load.Sizes))
	for i, n := range sc.Load.Sizes {
		b := make([]byte, n)
		for j := range b {
			b[j] = 'a' + byte(rnd.IntN(26))
		}
		out[i] = b
	}
	return out
}

// load sends n messages at the scenario's rate from r.t0, at most Concurrency in flight,
// and waits for all of them. Each send is bounded by the producer's send timeout.
func (r *run) load(ctx context.Context, p *core.Producer, bodies [][]byte, n int) {
	rate := float64(r.sc.Load.Rate)
	sem := make(chan struct{}, r.sc.Load.Concurrency)
	rnd := rand.New(rand.NewPCG(r.sc.Seed, 0x10ad))
	var wg sync.WaitGroup
	defer wg.Wait()
	timer := time.NewTimer(0)
	defer timer.Stop()
	for i := range n {
		due := time.Duration(float64(i) / rate * float64(time.Second))
		if wait := due - time.Since(r.t0); wait > 0 {
			timer.Reset(wait)
			select {
			case <-timer.C:
			case <-ctx.Done():
				return
			}
		}
		select {
		case sem <- struct{}{}:
		default:
			r.blocked.Add(1)
			select {
			case sem <- struct{}{}:
			case <-ctx.Done():
				return
			}
		}
		if time.Since(r.t0)-due > lateAfter {
			r.late.Add(1)
		}
		body := bodies[rnd.IntN(len(bodies))]
		wg.Go(func() {
			defer func() { <-sem }()
			r.send(ctx, p, i, body)
		})
	}
}

func (r *run) send(ctx context.Context, p *core.Producer, i int, body []byte) {
	start := time.Now()
	res, err := p.Send(ctx, &core.Message{Topic: r.sc.Topic, Body: body})
	rec := sendRec{start: start.Sub(r.t0), latency: time.Since(start), sent: true, ok: err == nil}
	if err == nil {
		rec.attempts = res.Attempts
		r.okN.Add(1)
	} else {
		rec.reason = reason(err)
		var se *core.SendError
		if errors.As(err, &se) {
			rec.attempts = se.Attempts
		}
	}
	r.sends[i] = rec
	r.done.Add(1)
}

// reason classifies a failed send for the report.
func reason(err error) string {
	var re *remoting.Error
	var se *core.SendError
	switch {
	case errors.As(err, &re):
		return re.Code.String()
	case errors.As(err, &se) && se.Timeout:
		return "timeout (budget spent)"
	case errors.Is(err, remoting.ErrTimeout), errors.Is(err, core.ErrTimeout), errors.Is(err, context.DeadlineExceeded):
		return "timeout"
	case errors.Is(err, remoting.ErrConnect):
		return "connect failed"
	case errors.Is(err, remoting.ErrConnClosed), errors.Is(err, remoting.ErrSend):
		return "connection closed"
	case errors.Is(err, core.ErrBrokerNotFound):
		return "broker not in route"
	case errors.Is(err, context.Canceled):
		return "cancelled"
	}
	return "other"
}

func (r *run) onAttempt(_ string, o sdk.Outcome) {
	if !r.recording.Load() {
		return
	}
	b, ok := r.brokers[o.Broker]
	if !ok {
		return
	}
	start := time.Since(r.t0) - o.Latency
	r.mu.Lock()
	r.attempts = append(r.attempts, attemptRec{start: start, broker: b})
	r.mu.Unlock()
}

// driveTimeline applies the fault events at their scenario time (relative to the start
// of the load, not of the cluster) and records when each was applied.
func (r *run) driveTimeline(c *devbroker.Cluster, stop <-chan struct{}) {
	evs := r.sc.events(r.dur)
	timer := time.NewTimer(0)
	defer timer.Stop()
	for i := 0; i < len(evs); {
		at := evs[i].At
		if wait := at - time.Since(r.t0); wait > 0 {
			timer.Reset(wait)
			select {
			case <-timer.C:
			case <-stop:
				return
			}
		}
		// The cluster applies its timeline in the order of evs (both sorted the same way).
		applied := c.AdvanceTimeline(at)
		if len(applied) == 0 {
			return // the cluster is closing
		}
		for range applied {
			r.mu.Lock()
			r.applied = append(r.applied, Applied{Planned: evs[i].At, At: time.Since(r.t0), Broker: evs[i].Broker, What: evs[i].what})
			r.mu.Unlock()
			i++
		}
	}
}

// sample records, every interval, which brokers the strategy's health table isolates
// and whether the strategy decides where the scenario said it should.
func (r *run) sample(h *host.Host, want host.Mode, every time.Duration, stop <-chan struct{}) {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-stop:
			return
		case <-t.C:
		}
		st := h.Status()
		s := sample{at: time.Since(r.t0), isolated: make([]bool, len(r.sc.Brokers)), reported: len(st.Health) > 0}
		now := time.Now()
		for _, row := range st.Health {
			if b, ok := r.brokers[row.Broker]; ok && !row.Available && (row.Until.IsZero() || row.Until.After(now)) {
				s.isolated[b] = true
			}
		}
		r.mu.Lock()
		r.samples = append(r.samples, s)
		if st.Mode != want {
			r.notMode++
		}
		r.mu.Unlock()
	}
}

func (r *run) progress(w io.Writer, name string, n int, every time.Duration, stop <-chan struct{}) {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-stop:
			return
		case <-t.C:
			done, ok := r.done.Load(), r.okN.Load()
			fmt.Fprintf(w, "  %-16s %5.0fs / %v  %d of %d sends done, %d failed\n", name,
				time.Since(r.t0).Seconds(), r.dur, done, n, done-ok)
		}
	}
}
