package devbroker

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"sync"
	"time"

	"github.com/producerd/producerd/remoting"
)

// Fault is the complete fault state of one broker. The zero value is a healthy broker:
// Broker.SetFault(Fault{}) heals every fault (brings a down broker up, resumes a hung one).
// Each SetFault or timeline event replaces the whole state; it does not merge.
type Fault struct {
	// Latency delays every answer to a send request (every request with AllRequests). The
	// request is processed (a message is stored) at once and the answer is written after the
	// delay, so a client that gives up early may still find the message stored, as with a
	// slow real broker. Answers are delayed independently: a slow answer does not hold back
	// later requests on the same connection.
	Latency Latency
	// Errors answers a share of send requests (every request with AllRequests) with an error
	// code instead of processing them. For the stored-but-not-OK codes FLUSH_DISK_TIMEOUT
	// (10), SLAVE_NOT_AVAILABLE (11) and FLUSH_SLAVE_TIMEOUT (12) the message is stored and
	// the answer carries the usual send header with that code. The rates add up to at most 1.
	Errors []InjectedError
	// AllRequests applies Latency and Errors to every request, not only to sends
	// (SEND_MESSAGE, SEND_MESSAGE_V2, SEND_BATCH_MESSAGE, SEND_REPLY_MESSAGE(_V2)).
	AllRequests bool
	// Resets closes the connection, with a TCP RST (SO_LINGER 0), on each of the next Resets
	// requests of any code, instead of processing them; then the broker behaves normally.
	Resets int
	// Hang stops the broker like SIGSTOP: connections stay open and new ones are accepted,
	// but no request is read or processed and no answer is written until the hang ends
	// (then the held requests are processed, like SIGCONT). The broker stays in routes.
	Hang bool
	// Down stops the broker like SIGKILL: its listener and every connection are closed, so
	// connects are refused, and it disappears from the routes. Ending Down listens again on
	// the same port. Stored messages are kept.
	Down bool
	// Route overrides whether the NameServer routes this broker (default: not when Down).
	Route RouteMode
	// Malform corrupts every successful answer to a send (the message is stored first), as
	// a buggy or hostile broker might.
	Malform Malform
}

// Malform is a way to corrupt a send's answer.
type Malform int

const (
	// MalformNone answers correctly.
	MalformNone Malform = iota
	// MalformNoMsgID leaves msgId out of the answer's header.
	MalformNoMsgID
	// MalformNoQueueID leaves queueId out of the answer's header.
	MalformNoQueueID
	// MalformBadQueueOffset sends a non-numeric queueOffset.
	MalformBadQueueOffset
	// MalformRequestFlag sends the answer without the response flag, as if it were a
	// request from the broker.
	MalformRequestFlag
)

// malform applies m to a successful send answer.
func (m Malform) apply(resp *remoting.Command) {
	if resp.Code != int32(remoting.Success) {
		return
	}
	switch m {
	case MalformNoMsgID:
		delete(resp.ExtFields, "msgId")
	case MalformNoQueueID:
		delete(resp.ExtFields, "queueId")
	case MalformBadQueueOffset:
		resp.ExtFields["queueOffset"] = "twelve"
	case MalformRequestFlag:
		resp.Flag &^= remoting.FlagResponse
	}
}

// RouteMode says whether the NameServer lists a broker in routes.
type RouteMode int

const (
	// RouteAuto lists the broker unless it is Down: a SIGKILLed broker's NameServer
	// connection closes, so the real NameServer drops it at once; a SIGSTOPped one stays
	// until its registration expires (120 s), which a timeline can model with RouteHidden.
	RouteAuto RouteMode = iota
	// RouteListed keeps the broker in routes even when Down (a NameServer that has not
	// noticed yet, or a network partition between client and broker only).
	RouteListed
	// RouteHidden removes the broker from routes even when it serves requests (an expired
	// registration).
	RouteHidden
	// RouteSlaveOnly lists the broker with its address as a slave (brokerId 1) and no
	// master, as after its master died in a master-slave group.
	RouteSlaveOnly
)

// InjectedError is one error code answered with a probability.
type InjectedError struct {
	// Code is the response code, e.g. remoting.SystemBusy; it must not be Success.
	Code remoting.ResponseCode
	// Rate is the probability, 0..1, that a request gets this code.
	Rate float64
	// Remark is the answer's remark; default: the real broker's text for SYSTEM_BUSY
	// ("[REJECTREQUEST]system busy, start flow control for a while"), otherwise
	// "devbroker: injected <CODE>".
	Remark string
}

// Latency is a delay distribution: Fixed, plus a uniform jitter in [0, Jitter), plus a
// sample of Percentiles. Each part is optional; the zero value adds no delay.
type Latency struct {
	// Fixed is added to every answer.
	Fixed time.Duration
	// Jitter adds a uniformly distributed delay in [0, Jitter).
	Jitter time.Duration
	// Percentiles describe a distribution by points of its quantile function, e.g.
	// {{50, 2ms}, {99, 40ms}, {100, 200ms}}: a uniform draw u in [0, 100) is mapped by
	// linear interpolation between the points; below the first point the first delay
	// applies. P must be increasing within 0..100 and D non-decreasing.
	Percentiles []Percentile
}

// Percentile is one point of a latency quantile function: P percent of the samples are at
// most D.
type Percentile struct {
	P float64
	D time.Duration
}

func (l *Latency) zero() bool { return l.Fixed == 0 && l.Jitter == 0 && len(l.Percentiles) == 0 }

// sample draws a delay; rnd returns a uniform float64 in [0, 1).
func (l *Latency) sample(rnd func() float64) time.Duration {
	d := l.Fixed
	if l.Jitter > 0 {
		d += time.Duration(rnd() * float64(l.Jitter))
	}
	ps := l.Percentiles
	if len(ps) > 0 {
		u := rnd() * 100
		switch {
		case u <= ps[0].P:
			d += ps[0].D
		case u >= ps[len(ps)-1].P:
			d += ps[len(ps)-1].D
		default:
			i := 1
			for ps[i].P < u {
				i++
			}
			a, b := ps[i-1], ps[i]
			f := (u - a.P) / (b.P - a.P)
			d += a.D + time.Duration(f*float64(b.D-a.D))
		}
	}
	return d
}

func (l *Latency) validate() error {
	var errs []error
	if l.Fixed < 0 || l.Jitter < 0 {
		errs = append(errs, fmt.Errorf("latency Fixed %v and Jitter %v must not be negative", l.Fixed, l.Jitter))
	}
	for i, p := range l.Percentiles {
		if p.P < 0 || p.P > 100 || p.D < 0 {
			errs = append(errs, fmt.Errorf("latency percentile %d: P %v must be in 0..100 and D %v not negative", i, p.P, p.D))
		}
		if i > 0 && (p.P <= l.Percentiles[i-1].P || p.D < l.Percentiles[i-1].D) {
			errs = append(errs, fmt.Errorf("latency percentile %d: P must increase and D must not decrease", i))
		}
	}
	return errors.Join(errs...)
}

func (f *Fault) validate() error {
	var errs []error
	if err := f.Latency.validate(); err != nil {
		errs = append(errs, err)
	}
	sum := 0.0
	for i, e := range f.Errors {
		if e.Code == remoting.Success {
			errs = append(errs, fmt.Errorf("error %d: code must not be SUCCESS", i))
		}
		if e.Rate < 0 || e.Rate > 1 {
			errs = append(errs, fmt.Errorf("error %d: rate %v must be in 0..1", i, e.Rate))
		}
		sum += e.Rate
	}
	if sum > 1+1e-9 {
		errs = append(errs, fmt.Errorf("error rates add up to %v, more than 1", sum))
	}
	if f.Resets < 0 {
		errs = append(errs, fmt.Errorf("field Resets: %d must not be negative", f.Resets))
	}
	if f.Malform < MalformNone || f.Malform > MalformRequestFlag {
		errs = append(errs, fmt.Errorf("unknown Malform %d", f.Malform))
	}
	if f.Route < RouteAuto || f.Route > RouteSlaveOnly {
		errs = append(errs, fmt.Errorf("unknown RouteMode %d", f.Route))
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("%w: %w", ErrInvalidFault, err)
	}
	return nil
}

// clone returns f with its own slices, so a caller's later edits cannot reach the broker.
func (f Fault) clone() Fault {
	f.Errors = slices.Clone(f.Errors)
	f.Latency.Percentiles = slices.Clone(f.Latency.Percentiles)
	return f
}

// pickError draws which injected error, if any, answers a request.
func (f *Fault) pickError(rnd func() float64) (InjectedError, bool) {
	if len(f.Errors) == 0 {
		return InjectedError{}, false
	}
	u := rnd()
	for _, e := range f.Errors {
		if u < e.Rate {
			return e, true
		}
		u -= e.Rate
	}
	return InjectedError{}, false
}

func (e InjectedError) remark() string {
	switch {
	case e.Remark != "":
		return e.Remark
	case e.Code == remoting.SystemBusy:
		return "[REJECTREQUEST]system busy, start flow control for a while"
	}
	return "devbroker: injected " + e.Code.String()
}

// Event changes one broker's fault at a time relative to the cluster's start.
type Event struct {
	// At is the time after Start at which the event applies.
	At time.Duration
	// Broker names the broker.
	Broker string
	// Fault replaces the broker's whole fault state.
	Fault Fault
}

// Timeline is a fault scenario. Events apply in order of At (events with equal At in
// slice order).
type Timeline []Event

// Clock tells time for the timeline runner. Latency delays always use real time: they delay
// real sockets.
type Clock interface {
	// Now returns the current time.
	Now() time.Time
	// After returns a channel that receives once d has passed.
	After(d time.Duration) <-chan time.Time
}

type realClock struct{}

func (realClock) Now() time.Time                         { return time.Now() }
func (realClock) After(d time.Duration) <-chan time.Time { return time.After(d) }

// lockedRand is a seeded source shared by a broker's goroutines.
type lockedRand struct {
	mu sync.Mutex
	r  *rand.Rand
}

func newLockedRand(seed uint64) *lockedRand {
	if seed == 0 {
		seed = rand.Uint64()
	}
	return &lockedRand{r: rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))}
}

func (l *lockedRand) Float64() float64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.r.Float64()
}

func (l *lockedRand) IntN(n int) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.r.IntN(n)
}
