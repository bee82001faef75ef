package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/grpc/status"

	"github.com/producerd/producerd/api/producerdpb"
)

func cmdBench(e *env, args []string) int {
	fs := newFlags(e, "bench", "[flags] TOPIC", `
Drive a running daemon with messages over gRPC, Send (-mode unary, -conc concurrent
callers) or SendStream (-mode stream, -streams streams with up to -window messages in
flight each), and print a live line every second (msgs/s, p50, p99, errors) and a
summary at the end. It stops after -n messages or -d, whichever comes first; with -d
and no -n it runs for -d.`,
		`  producerd bench TopicTest
  producerd bench -mode unary -conc 16 -n 50000 -size 1024 TopicTest
  producerd bench -mode stream -streams 2 -window 2000 -d 30s TopicTest`)
	var cf connFlags
	cf.register(fs, true, false)
	mode := fs.String("mode", "stream", "`mode`: stream (SendStream) or unary (Send)")
	count := fs.Int("n", 100000, "stop after `count` messages (no limit when only -d is given)")
	dur := fs.Duration("d", 30*time.Second, "stop after this `duration`")
	size := fs.Int("size", 128, "body `bytes`")
	conc := fs.Int("conc", 8, "concurrent callers (unary)")
	streams := fs.Int("streams", 1, "concurrent streams (stream)")
	window := fs.Int("window", 1000, "messages in flight per stream (stream)")
	group := fs.String("group", "", "producer `group`")
	pos, code, ok := parse(fs, args)
	if !ok {
		return code
	}
	switch {
	case len(pos) == 0:
		return usageError(fs, "missing TOPIC")
	case len(pos) > 1:
		return usageError(fs, "one TOPIC expected, got %d arguments: %q", len(pos), pos)
	case *mode != "stream" && *mode != "unary":
		return usageError(fs, "-mode %q: want stream or unary", *mode)
	case *count < 1 || *size < 0 || *conc < 1 || *streams < 1 || *window < 1 || *dur <= 0:
		return usageError(fs, "-n, -d, -conc, -streams and -window must be positive, -size not negative")
	}
	*count = benchCount(fs, *count)
	if err := cf.resolve(); err != nil {
		return fail(e, "%v", err)
	}
	cc, err := cf.dial(cf.addr)
	if err != nil {
		return fail(e, "%v", err)
	}
	defer cc.Close()
	client := producerdpb.NewIngressClient(cc)
	body := make([]byte, *size)
	for i := range body {
		body[i] = 'a' + byte(i%26)
	}
	msg := &producerdpb.Message{ProducerGroup: *group, Topic: pos[0], Body: body}

	b := &bench{budget: int64(*count)}
	ctx, cancel := context.WithTimeout(context.Background(), *dur)
	defer cancel()
	start := time.Now()
	stopTicker := make(chan struct{})
	tickerDone := make(chan struct{})
	go func() {
		defer close(tickerDone)
		t := time.NewTicker(time.Second)
		defer t.Stop()
		last := start
		for {
			select {
			case <-stopTicker:
				return
			case now := <-t.C:
				n, p50, p99, errs := b.window()
				fmt.Fprintf(e.stdout, "[%4.0fs] %8.0f msgs/s  p50 %-9s p99 %-9s errors %d\n", now.Sub(start).Seconds(),
					float64(n)/now.Sub(last).Seconds(), p50, p99, errs)
				last = now
			}
		}
	}()
	var wg sync.WaitGroup
	if *mode == "unary" {
		for range *conc {
			wg.Go(func() { b.unary(ctx, client, msg) })
		}
	} else {
		for i := range *streams {
			wg.Go(func() { b.stream(ctx, client, msg, *window, i) })
		}
	}
	wg.Wait()
	close(stopTicker)
	<-tickerDone
	b.summary(e.stdout, time.Since(start))
	if b.okTotal.Load() == 0 {
		return 1
	}
	return 0
}

// bench collects latencies and errors; window() hands out and resets the last
// second's figures.
type bench struct {
	budget int64
	taken  atomic.Int64

	mu      sync.Mutex
	lat     []time.Duration // this second
	all     []time.Duration
	errs    int64
	reasons map[string]int64
	okTotal atomic.Int64
}

// take reserves one message of the budget.
func (b *bench) take() bool { return b.taken.Add(1) <= b.budget }

func (b *bench) record(d time.Duration, err error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if err != nil {
		b.errs++
		if b.reasons == nil {
			b.reasons = map[string]int64{}
		}
		b.reasons[err.Error()]++
		return
	}
	b.okTotal.Add(1)
	b.lat = append(b.lat, d)
}

func pct(sorted []time.Duration, p float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	i := int(float64(len(sorted)-1) * p)
	return sorted[i]
}

func (b *bench) window() (n int, p50, p99 time.Duration, errs int64) {
	b.mu.Lock()
	lat := b.lat
	b.lat = nil
	b.all = append(b.all, lat...)
	errs = b.errs
	b.mu.Unlock()
	slices.Sort(lat)
	return len(lat), pct(lat, .5).Round(time.Microsecond), pct(lat, .99).Round(time.Microsecond), errs
}

func (b *bench) summary(w io.Writer, elapsed time.Duration) {
	b.window()
	b.mu.Lock()
	defer b.mu.Unlock()
	all := b.all
	slices.Sort(all)
	fmt.Fprintf(w, "\nsummary: %d ok, %d errors in %s: %.0f msgs/s\n", len(all), b.errs, elapsed.Round(time.Millisecond), float64(len(all))/elapsed.Seconds())
	if len(all) > 0 {
		fmt.Fprintf(w, "latency: p50 %s  p90 %s  p99 %s  p99.9 %s  max %s\n", pct(all, .5).Round(time.Microsecond),
			pct(all, .9).Round(time.Microsecond), pct(all, .99).Round(time.Microsecond), pct(all, .999).Round(time.Microsecond),
			all[len(all)-1].Round(time.Microsecond))
	}
	for r, n := range b.reasons {
		fmt.Fprintf(w, "error x%d: %s\n", n, r)
	}
}

func (b *bench) unary(ctx context.Context, c producerdpb.IngressClient, m *producerdpb.Message) {
	req := &producerdpb.SendRequest{Message: m}
	for ctx.Err() == nil && b.take() {
		t := time.Now()
		_, err := c.Send(ctx, req)
		if err != nil && ctx.Err() != nil {
			return
		}
		if err != nil {
			err = errors.New(rpcError(err))
		}
		b.record(time.Since(t), err)
	}
}

// stream keeps up to window messages in flight on one SendStream.
func (b *bench) stream(ctx context.Context, c producerdpb.IngressClient, m *producerdpb.Message, window, n int) {
	sctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	st, err := c.SendStream(sctx)
	if err != nil {
		b.record(0, errors.New(rpcError(err)))
		return
	}
	slots := make(chan struct{}, window)
	var mu sync.Mutex
	sent := map[string]time.Time{}
	recvDone := make(chan struct{})
	go func() {
		defer close(recvDone)
		for {
			ack, err := st.Recv()
			if err != nil {
				if !errors.Is(err, io.EOF) {
					if s, ok := status.FromError(err); ok {
						err = fmt.Errorf("stream ended: %s", s.Message())
					}
					mu.Lock()
					lost := len(sent)
					mu.Unlock()
					for range lost {
						b.record(0, err)
					}
				}
				return
			}
			mu.Lock()
			t0, ok := sent[ack.GetId()]
			delete(sent, ack.GetId())
			mu.Unlock()
			if !ok {
				continue
			}
			if pe := ack.GetError(); pe != nil {
				b.record(0, fmt.Errorf("%s: %s", pe.GetReason(), pe.GetMessage()))
			} else {
				b.record(time.Since(t0), nil)
			}
			<-slots
		}
	}()
	prefix := strconv.Itoa(n) + "-"
	for i := 0; ctx.Err() == nil && b.take(); i++ {
		select {
		case slots <- struct{}{}:
		case <-ctx.Done():
		case <-recvDone:
		}
		if ctx.Err() != nil {
			break
		}
		select {
		case <-recvDone:
			return
		default:
		}
		id := prefix + strconv.Itoa(i)
		mu.Lock()
		sent[id] = time.Now()
		mu.Unlock()
		if err := st.Send(&producerdpb.StreamRequest{Id: id, Message: m}); err != nil {
			break
		}
	}
	_ = st.CloseSend()
	// Wait for the outstanding acknowledgements (bounded by a grace period after -d).
	select {
	case <-recvDone:
	case <-time.After(10 * time.Second):
		cancel()
		<-recvDone
	}
}

// benchCount is the message budget of a bench run: -n, except that -d given without -n
// runs for -d (the default -n would otherwise end a fast run early).
func benchCount(fs *flag.FlagSet, n int) int {
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	if set["d"] && !set["n"] {
		return math.MaxInt64 / 2
	}
	return n
}
