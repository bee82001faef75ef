// Package load is the part every Go driver of the side-by-side benchmark shares: the
// parameters (the same flags as the Java driver's), the deterministic message body, the
// load loops (sync senders, an async window, sync batches), the latency recorder, the
// process CPU and peak RSS read from /proc, and the one-line result all drivers print.
//
// A driver implements Sender for its client and calls Main. The protocol towards the
// harness is plain text on stdout: "MARK start" just before the measured phase, "MARK
// end" just after it, then (when -handshake is set) the driver waits until its stdin
// closes, so the harness can read the process's /proc entries at both marks, and finally
// one "RESULT key=value ..." line.
package load

import (
	"errors"
	"flag"
	"fmt"
	"time"
)

// Modes of a run.
const (
	ModeSync  = "sync"
	ModeAsync = "async"
	ModeBatch = "batch"
)

// Params are a run's parameters; the Java driver accepts the same flags.
type Params struct {
	// NameServer is the RocketMQ NameServer address (-namesrv).
	NameServer string
	// Topic is the topic every message goes to (-topic).
	Topic string
	// Mode is sync, async or batch (-mode).
	Mode string
	// N is the number of messages of the measured phase (-n); the phase also ends after
	// Duration.
	N int
	// Duration bounds the measured phase (-duration).
	Duration time.Duration
	// Size is the body size in bytes (-size).
	Size int
	// Concurrency is the number of sending goroutines (sync, batch) or the number of
	// async sends in flight (-concurrency).
	Concurrency int
	// Batch is the number of messages per batch in batch mode (-batch).
	Batch int
	// Warmup is the number of messages sent, in the same mode, before the measured phase
	// (-warmup); bounded by WarmupTime.
	Warmup int
	// Pause is an idle time between the warm-up and the measured phase (-pause), e.g.
	// for the daemon's route refresh to reach every topic the warm-up introduced.
	Pause time.Duration
	// WarmupTime bounds the warm-up (-warmup-time); 0 means the phase's duration
	// between 10 s and 30 s.
	WarmupTime time.Duration
	// Rate, when positive, paces the load to this many messages per second in total
	// (-rate); 0 sends as fast as the client allows.
	Rate float64
	// Strategy names the queue selection strategy, where the driver has a choice
	// (-strategy).
	Strategy string
	// Group is the producer group (-group); default bench_<driver>_<pid>.
	Group string
	// Timeout is the send timeout of the client (-timeout).
	Timeout time.Duration
	// Trace, when set, is a CSV file receiving one line per measured send (-trace).
	Trace string
	// Label is echoed in the result line (-label).
	Label string
	// Handshake makes the driver wait for its stdin to close after "MARK end" (-handshake).
	Handshake bool
	// CPUProfile, when set, is a file receiving a CPU profile of the measured phase
	// (-cpuprofile; Go drivers only).
	CPUProfile string
}

// Register adds the common flags to fs and returns the Params they fill.
func Register(fs *flag.FlagSet) *Params {
	p := &Params{}
	fs.StringVar(&p.NameServer, "namesrv", "127.0.0.1:9876", "NameServer address")
	fs.StringVar(&p.Topic, "topic", "IT_Bench", "topic")
	fs.StringVar(&p.Mode, "mode", ModeSync, "sync, async or batch")
	fs.IntVar(&p.N, "n", 100000, "messages in the measured phase")
	fs.DurationVar(&p.Duration, "duration", 15*time.Second, "upper bound of the measured phase")
	fs.IntVar(&p.Size, "size", 1024, "body size in bytes")
	fs.IntVar(&p.Concurrency, "concurrency", 1, "senders (sync, batch) or async sends in flight")
	fs.IntVar(&p.Batch, "batch", 32, "messages per batch (batch mode)")
	fs.IntVar(&p.Warmup, "warmup", 1000, "warm-up messages in the same mode (not measured)")
	fs.DurationVar(&p.Pause, "pause", 0, "idle time between the warm-up and the measured phase")
	fs.DurationVar(&p.WarmupTime, "warmup-time", 0, "upper bound of the warm-up (0: the -duration, at least 10s and at most 30s)")
	fs.Float64Var(&p.Rate, "rate", 0, "total messages per second (0 = unpaced)")
	fs.StringVar(&p.Strategy, "strategy", "", "queue selection strategy (driver specific)")
	fs.StringVar(&p.Group, "group", "", "producer group (default bench_<driver>_<pid>)")
	fs.DurationVar(&p.Timeout, "timeout", 3*time.Second, "send timeout")
	fs.StringVar(&p.Trace, "trace", "", "write one CSV line per measured send to this file")
	fs.StringVar(&p.Label, "label", "", "label echoed in the result line")
	fs.BoolVar(&p.Handshake, "handshake", false, "after MARK end, wait until stdin closes")
	fs.StringVar(&p.CPUProfile, "cpuprofile", "", "write a CPU profile of the measured phase to this file")
	return p
}

// Validate reports every invalid parameter at once.
func (p *Params) Validate() error {
	var errs []error
	check := func(ok bool, format string, args ...any) {
		if !ok {
			errs = append(errs, fmt.Errorf(format, args...))
		}
	}
	check(p.Mode == ModeSync || p.Mode == ModeAsync || p.Mode == ModeBatch, "-mode %q: want sync, async or batch", p.Mode)
	check(p.N > 0, "-n must be positive, got %d", p.N)
	check(p.Duration > 0, "-duration must be positive, got %v", p.Duration)
	check(p.Size > 0, "-size must be positive, got %d", p.Size)
	check(p.Concurrency > 0, "-concurrency must be positive, got %d", p.Concurrency)
	check(p.Batch > 0, "-batch must be positive, got %d", p.Batch)
	check(p.Warmup >= 0, "-warmup must not be negative, got %d", p.Warmup)
	check(p.Pause >= 0, "-pause must not be negative, got %v", p.Pause)
	check(p.WarmupTime >= 0, "-warmup-time must not be negative, got %v", p.WarmupTime)
	check(p.Rate >= 0, "-rate must not be negative, got %v", p.Rate)
	check(p.Timeout > 0, "-timeout must be positive, got %v", p.Timeout)
	check(p.Topic != "", "-topic is empty")
	check(p.NameServer != "", "-namesrv is empty")
	return errors.Join(errs...)
}

// perOp is the number of messages one operation carries.
func (p *Params) perOp() int {
	if p.Mode == ModeBatch {
		return p.Batch
	}
	return 1
}
