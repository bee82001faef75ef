package main

import (
	"context"
	"fmt"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/producerd/producerd/bench/internal/load"
	"github.com/producerd/producerd/core"
)

// Interleaved paths (-strategy A,B,C with -interleave SLICE): one producer per strategy,
// all on the same client and connections, and the measured phase handed to them in
// turn, SLICE each, so that what drifts while the run goes on (the brokers' store, other
// processes) falls on every path alike. A path's figures come from the last SLICE -
// settle of each of its slices after the first cycle, when the window of sends in flight
// holds its own messages: msgs/s is the sends it started there over that time, CPU µs/msg this
// process's and its children's (plugin processes) CPU there over those sends. After the
// result line the driver prints one line per path:
//
//	PATH name=rr-plugin msgs=... sec=... msgs_per_s=... errors=... cpu_s=...
//
// The warm-up sends message i through path i mod N, so every path is warm.

// settleShare is the part of a slice (its start) left out of the path's figures: the
// window of 1024 sends in flight still holds the previous path's messages then (p99
// latency at saturation is around 100 ms).
const settleShare = 0.3

type interleaver struct {
	names              []string
	prods              []*core.Producer
	slice, settle, dur time.Duration
	topic              string
	body               []byte

	t0       atomic.Int64 // unix ns of the first measured send; 0 before it
	started  chan struct{}
	once     sync.Once
	sends    []atomic.Int64 // by slice: sends started in its measured part
	errs     []atomic.Int64 // by slice: those that failed
	cpu      []float64      // by slice: CPU seconds in its measured part (written by measure)
	measured atomic.Int64   // slices whose CPU measure completed
}

func newInterleaver(names []string, prods []*core.Producer, slice, dur time.Duration, topic string, body []byte) *interleaver {
	n := int(dur/slice) + 2
	return &interleaver{names: names, prods: prods, slice: slice, settle: time.Duration(float64(slice) * settleShare), dur: dur,
		topic: topic, body: body, started: make(chan struct{}),
		sends: make([]atomic.Int64, n), errs: make([]atomic.Int64, n), cpu: make([]float64, n)}
}

// at returns the slice of time now in the measured phase, and whether now is in its
// measured part.
func (il *interleaver) at(now time.Time) (int, bool) {
	d := now.UnixNano() - il.t0.Load()
	return int(d / int64(il.slice)), d%int64(il.slice) >= int64(il.settle)
}

func (il *interleaver) msg(i int) *core.Message {
	return &core.Message{Topic: il.topic, Body: il.body, Tags: load.Tag, Keys: []string{load.Key(i)}}
}

func (il *interleaver) Send(ctx context.Context, i int) (string, error) {
	return "", fmt.Errorf("-interleave runs only -mode async")
}

func (il *interleaver) SendBatch(ctx context.Context, first, n int) (string, error) {
	return "", fmt.Errorf("-interleave runs only -mode async")
}

func (il *interleaver) SendAsync(ctx context.Context, i int, done func(string, error)) error {
	path, slice, counted := i%len(il.prods), -1, false
	if i < load.WarmupBase { // the measured phase
		now := time.Now()
		il.once.Do(func() { il.t0.Store(now.UnixNano()); close(il.started) })
		var in bool
		slice, in = il.at(now)
		path = slice % len(il.prods)
		if counted = in && slice < len(il.sends); counted {
			il.sends[slice].Add(1)
		}
	}
	return il.prods[path].SendAsync(ctx, il.msg(i), func(r *core.SendResult, err error) {
		if err != nil {
			if counted {
				il.errs[slice].Add(1)
			}
			done("", err)
			return
		}
		done(r.Queue.Broker, nil)
	})
}

// measure reads the CPU of this process and its children over the measured part of
// every slice, until ctx ends.
func (il *interleaver) measure(ctx context.Context) {
	select {
	case <-il.started:
	case <-ctx.Done():
		return
	}
	t0 := time.Unix(0, il.t0.Load())
	for k := range il.cpu {
		if !sleepUntil(ctx, t0.Add(time.Duration(k)*il.slice+il.settle)) {
			return
		}
		c0 := processTreeCPU()
		if !sleepUntil(ctx, t0.Add(time.Duration(k+1)*il.slice)) {
			return
		}
		il.cpu[k] = processTreeCPU() - c0
		il.measured.Store(int64(k + 1))
	}
}

func sleepUntil(ctx context.Context, t time.Time) bool {
	tm := time.NewTimer(time.Until(t))
	defer tm.Stop()
	select {
	case <-tm.C:
		return true
	case <-ctx.Done():
		return false
	}
}

// processTreeCPU is this process's CPU seconds plus its children's.
func processTreeCPU() float64 {
	c, _ := load.ProcCPU(0)
	for _, ch := range load.Children(os.Getpid()) {
		cc, _ := load.ProcCPU(ch)
		c += cc
	}
	return c
}

// report prints the PATH lines: by path, every slice whose CPU was measured and that
// ended within the phase's duration (a slice the load stopped in would count its idle
// end), but the first cycle (one slice per path), which ramps the window of sends in
// flight up from empty after the warm-up (a path ran 15-20 % slower in it).
func (il *interleaver) report() {
	n := min(int(il.measured.Load()), int(il.dur/il.slice))
	if os.Getenv("INTERLEAVE_DEBUG") != "" { // every slice's rate on stderr
		for k := 0; k < n; k++ {
			fmt.Fprintf(os.Stderr, "slice %d %s %.0f msgs/s\n", k, il.names[k%len(il.names)], float64(il.sends[k].Load())/(il.slice-il.settle).Seconds())
		}
	}
	for p, name := range il.names {
		var msgs, errs int64
		var cpu float64
		var slices int
		for k := p + len(il.names); k < n; k += len(il.names) {
			msgs += il.sends[k].Load()
			errs += il.errs[k].Load()
			cpu += il.cpu[k]
			slices++
		}
		sec := float64(slices) * (il.slice - il.settle).Seconds()
		rate := 0.0
		if sec > 0 {
			rate = float64(msgs) / sec
		}
		fmt.Printf("PATH name=%s msgs=%d sec=%.3f msgs_per_s=%.0f errors=%d cpu_s=%.2f\n", name, msgs, sec, rate, errs, cpu)
	}
}

// runInterleaved is run's -interleave form: one producer per strategy of the comma list.
func runInterleaved(p *load.Params, slice time.Duration) error {
	if p.Mode != load.ModeAsync {
		return fmt.Errorf("-interleave runs only -mode async")
	}
	names := strings.Split(p.Strategy, ",")
	group := p.Group
	if group == "" {
		group = "bench_core_" + fmt.Sprint(os.Getpid())
	}
	var prods []*core.Producer
	var closers []func() // in -strategy order: each prints its STRATEGY line
	defer func() {
		for _, pr := range prods {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			_ = pr.Close(ctx)
			cancel()
		}
		for _, c := range closers {
			c()
		}
	}()
	for k, name := range names {
		sel, closeSel, err := strategy(name)
		if err != nil {
			return err
		}
		closers = append(closers, closeSel)
		// One client instance for all: the paths share connections and route cache.
		prod, err := core.NewProducer(core.ProducerConfig{
			Group:       fmt.Sprintf("%s_%d", group, k),
			Client:      core.ClientConfig{NameServers: []string{p.NameServer}, InstanceName: group},
			SendTimeout: p.Timeout,
			Strategy:    sel,
		})
		if err != nil {
			return err
		}
		prods = append(prods, prod)
	}
	il := newInterleaver(names, prods, slice, p.Duration, p.Topic, load.Body(p.Size))
	ctx, cancel := context.WithCancel(context.Background())
	measured := make(chan struct{})
	go func() { defer close(measured); il.measure(ctx) }()
	_, err := load.Execute(driver, p, il)
	cancel()
	<-measured
	if err == nil {
		il.report()
	}
	return err
}
