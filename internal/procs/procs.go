// Package procs adapts the Go runtime's GOMAXPROCS to the daemon's load.
//
// A daemon with one sender spends its time handing each message from goroutine to
// goroutine (the gRPC reader, the handler, the broker connection's reader, gRPC's
// writer). With a second P idle, every hand-off wakes another OS thread, which spins,
// finds the goroutine already taken or steals it, and sleeps again. On a small virtual
// machine a thread's sleep and wake-up cost more than the work: profiles of the daemon
// with one sync sender showed half its CPU in the kernel's context switch, and a bare
// gRPC unary round trip between two processes took 83 µs at the default of 2 Ps and
// 33 µs at 1. One P serves up to about a core of work with none of that; past it, or
// with many requests in flight, the daemon needs all of them: one P serialises their
// system calls (each holds the P until the runtime's monitor takes it back, 20 µs or
// more later), which measured 10-25 % fewer messages per second with 64 senders. So the
// Controller keeps one P while the process uses under half a core (Policy.Down) with
// under a quarter of its requests admitted while another was in flight (DownOverlap),
// and gives the runtime its default back within a tick (100 ms) of half of them
// overlapping (UpOverlap) or of 80 % of a core used (Up).
package procs

import (
	"context"
	"runtime"
	"syscall"
	"time"
)

// Policy is when the Controller switches; a zero field means DefaultPolicy's.
type Policy struct {
	// Tick is how often the process's CPU time is read.
	Tick time.Duration
	// Up is the share of the current Ps' capacity (CPU seconds per second per P) over
	// one tick at or above which the Controller gives the runtime its maximum.
	Up float64
	// UpOverlap is the share of requests admitted while another was in flight, over
	// one tick, at or above which it does too.
	UpOverlap float64
	// Down is the CPU (cores) below which the process must stay for Hold, with under
	// DownOverlap of its requests overlapping, before the Controller goes back to one
	// P.
	Down, DownOverlap float64
	// Hold is how long the load must stay below Down before going down; it doubles,
	// up to MaxHold, each time the Controller has to go up again within Hold of going
	// down, and returns to Hold once one P lasted MaxHold.
	Hold, MaxHold time.Duration
}

// DefaultPolicy: up within 100 ms of using 80 % of one P or of half the requests
// overlapping; down after 3 s below half a core with under a quarter overlapping.
var DefaultPolicy = Policy{Tick: 100 * time.Millisecond, Up: 0.8, UpOverlap: 0.5, Down: 0.5, DownOverlap: 0.25,
	Hold: 3 * time.Second, MaxHold: time.Minute}

// withDefaults fills the zero fields of p from DefaultPolicy.
func (p Policy) withDefaults() Policy {
	d := DefaultPolicy
	if p.Tick <= 0 {
		p.Tick = d.Tick
	}
	if p.Up <= 0 {
		p.Up = d.Up
	}
	if p.UpOverlap <= 0 {
		p.UpOverlap = d.UpOverlap
	}
	if p.Down <= 0 {
		p.Down = d.Down
	}
	if p.DownOverlap <= 0 {
		p.DownOverlap = d.DownOverlap
	}
	if p.Hold <= 0 {
		p.Hold = d.Hold
	}
	if p.MaxHold < p.Hold {
		p.MaxHold = max(d.MaxHold, p.Hold)
	}
	return p
}

// Controller decides the number of Ps between 1 and Max from the CPU the process used.
type Controller struct {
	Policy Policy
	// Max is the most Ps it sets: the runtime's default (the CPUs, or the container's
	// CPU limit).
	Max int
	// CPU returns the process's CPU time so far; Set applies a number of Ps. Both
	// default to the process's and the runtime's.
	CPU func() time.Duration
	// Requests returns the requests admitted so far and how many of them were
	// admitted while another was in flight; nil counts none.
	Requests func() (admitted, overlapped uint64)
	Set      func(n int)
	// Changed, if not nil, is told every change, with the CPU (cores) that caused it.
	Changed func(n int, cores float64)

	cur      int
	low      time.Duration // how long the load has been below Down
	hold     time.Duration // the current Hold
	wentDown time.Time     // when it last went down to one P

	ticks <-chan time.Time // tests drive the ticks; nil: a Ticker of Policy.Tick
}

// Run starts at one P and adapts every Policy.Tick until ctx ends, then leaves the
// runtime at Max. A zero field of Policy takes DefaultPolicy's.
func (c *Controller) Run(ctx context.Context) {
	if c.CPU == nil {
		c.CPU = ProcessCPU
	}
	if c.Set == nil {
		c.Set = func(n int) {
			if n >= c.Max {
				// The default, not a number: the runtime keeps following the
				// container's CPU limit as it does when nobody sets GOMAXPROCS.
				runtime.SetDefaultGOMAXPROCS()
				return
			}
			runtime.GOMAXPROCS(n)
		}
	}
	c.Policy = c.Policy.withDefaults()
	if c.Requests == nil {
		c.Requests = func() (uint64, uint64) { return 0, 0 }
	}
	if c.Max <= 1 {
		return
	}
	c.hold = c.Policy.Hold
	c.cur = 1
	c.Set(1)
	ticks := c.ticks
	if ticks == nil {
		t := time.NewTicker(c.Policy.Tick)
		defer t.Stop()
		ticks = t.C
	}
	last, lastCPU := time.Now(), c.CPU()
	lastAdm, lastOver := c.Requests()
	for {
		select {
		case <-ctx.Done():
			c.Set(c.Max)
			return
		case now := <-ticks:
			cpu := c.CPU()
			adm, over := c.Requests()
			if d := now.Sub(last); d > 0 {
				overlap := 0.0
				if adm > lastAdm {
					overlap = float64(over-lastOver) / float64(adm-lastAdm)
				}
				c.observe(now, d, float64(cpu-lastCPU)/float64(d), overlap)
			}
			last, lastCPU, lastAdm, lastOver = now, cpu, adm, over
		}
	}
}

// observe takes the cores used over the last interval d and the share of requests
// that overlapped, and changes the Ps if the policy says so.
func (c *Controller) observe(now time.Time, d time.Duration, cores, overlap float64) {
	switch {
	case c.cur < c.Max && (cores >= c.Policy.Up*float64(c.cur) || overlap >= c.Policy.UpOverlap):
		if !c.wentDown.IsZero() && now.Sub(c.wentDown) < c.hold {
			c.hold = min(2*c.hold, c.Policy.MaxHold) // it went down too early
		}
		c.change(c.Max, cores)
		c.low = 0
	case c.cur > 1 && cores < c.Policy.Down && overlap < c.Policy.DownOverlap:
		if c.low += d; c.low >= c.hold {
			c.change(1, cores)
			c.wentDown, c.low = now, 0
		}
	case c.cur > 1:
		c.low = 0
	case !c.wentDown.IsZero() && now.Sub(c.wentDown) >= c.Policy.MaxHold:
		c.hold = c.Policy.Hold // one P lasted: forget the flapping
	}
}

func (c *Controller) change(n int, cores float64) {
	c.cur = n
	c.Set(n)
	if c.Changed != nil {
		c.Changed(n, cores)
	}
}

// ProcessCPU is the process's user and system CPU time so far (every thread).
func ProcessCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
