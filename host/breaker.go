package host

import (
	"errors"
	"fmt"
	"sync/atomic"
	"time"
)

// breaker is the circuit breaker of one strategy's decisions: of one plugin process
// (conn), or of a WebAssembly strategy (generation). It is closed while decisions
// succeed. threshold failures in a row that span at least one probe interval open it:
// decisions then fall back at once without asking the strategy, except one probe
// decision per interval (half-open). A successful probe closes it; a failed one
// doubles the interval, up to the maximum, so a strategy that stays broken costs one
// slow decision every maxProbe. The closed path reads no clock and takes no lock.
type breaker struct {
	consecutive atomic.Int32          // failed decisions in a row
	streakStart atomic.Int64          // first failure of the current streak (unix ns); 0 after a success
	openUntil   atomic.Int64          // no decision before this (unix ns) but the probe; 0 when closed
	openSince   atomic.Int64          // open since (unix ns); 0 when closed
	interval    atomic.Int64          // the current probe interval while open (ns)
	last        atomic.Pointer[error] // the failure that opened it, or the last failed probe's
}

// allow reports whether a decision may go to the strategy: always while the circuit
// is closed, and for one decision per probe interval while it is open.
func (b *breaker) allow() bool {
	until := b.openUntil.Load()
	if until == 0 {
		return true
	}
	now := time.Now().UnixNano()
	return now >= until && b.openUntil.CompareAndSwap(until, now+b.interval.Load())
}

// succeeded records a decision the strategy made; it closes an open circuit and
// reports whether it did.
func (b *breaker) succeeded() (closed bool) {
	if b.consecutive.Load() != 0 {
		b.consecutive.Store(0)
		b.streakStart.Store(0)
	}
	if b.openUntil.Load() == 0 {
		return false
	}
	if until := b.openUntil.Swap(0); until == 0 {
		return false // closed by another success meanwhile
	}
	b.openSince.Store(0)
	return true
}

// failed records a failed decision (reason, and err when there is one) and reports
// whether the circuit opened because of it. The circuit opens after threshold failures in a row that span
// at least one probe interval: a single stall that fails every decision in flight at
// once (a GC pause, a cold plugin) does not open it, a strategy that keeps failing
// does. A failure while open is a failed probe: the interval doubles up to maxProbe.
func (b *breaker) failed(reason FallbackReason, err error, threshold int, probe, maxProbe time.Duration) (opened bool) {
	if err == nil {
		err = errors.New(reason.String())
	}
	now := time.Now().UnixNano()
	b.streakStart.CompareAndSwap(0, now)
	n := int(b.consecutive.Add(1))
	if until := b.openUntil.Load(); until != 0 {
		next := min(2*b.interval.Load(), int64(maxProbe))
		b.interval.Store(next)
		b.openUntil.CompareAndSwap(until, now+next)
		b.last.Store(&err)
		return false
	}
	if threshold <= 0 || n < threshold || now-b.streakStart.Load() < int64(probe) {
		return false
	}
	b.interval.Store(int64(probe))
	if !b.openUntil.CompareAndSwap(0, now+int64(probe)) {
		return false
	}
	b.openSince.Store(now)
	b.last.Store(&err)
	return true
}

// open reports whether the circuit is open now.
func (b *breaker) open() bool { return b.openUntil.Load() != 0 }

// describe says why the circuit is open ("" when it is closed), for Status.LastError.
func (b *breaker) describe() string {
	since := b.openSince.Load()
	if b.openUntil.Load() == 0 || since == 0 {
		return ""
	}
	s := fmt.Sprintf("circuit open since %s: %d decisions in a row failed; falling back, probing every %v",
		time.Unix(0, since).UTC().Format(time.RFC3339), b.consecutive.Load(), time.Duration(b.interval.Load()))
	if p := b.last.Load(); p != nil && *p != nil {
		s += "; last failure: " + (*p).Error()
	}
	return s
}
