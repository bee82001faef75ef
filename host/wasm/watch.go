package wasm

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/producerd/producerd/plugins/sdk"
	"github.com/producerd/producerd/plugins/sdk/wasmguest/wasmabi"
)

// watchInstance adds or removes an instance from the watchdog's set.
func (s *strategy) watchInstance(in *instance, on bool) {
	s.watchMu.Lock()
	if on {
		s.watched[in] = struct{}{}
	} else {
		delete(s.watched, in)
	}
	s.watchMu.Unlock()
}

// watchTick is how often the watchdog looks: half the call timeout, at least 1 ms.
func (s *strategy) watchTick() time.Duration {
	return max(s.opts.CallTimeout/2, time.Millisecond)
}

// watch is the watchdog: every watchTick it samples each instance's call counter
// (instance.state) and interrupts a call it has seen running for at least its
// timeout, so a stuck call ends between its timeout and 1.5 times it after it started.
// It runs from Load until shutdown.
func (s *strategy) watch() {
	defer s.watchers.Done()
	t := time.NewTicker(s.watchTick())
	defer t.Stop()
	for {
		select {
		case <-s.stop:
			return
		case <-t.C:
		}
		now := s.nanos()
		s.watchMu.Lock()
		for in := range s.watched {
			v := in.state.Load()
			switch {
			case v&1 == 0 || v&interrupted != 0:
				in.seen = 0 // idle, or already interrupted
			case v != in.seen:
				in.seen, in.seenAt = v, now // a call the watchdog had not seen yet
			case now-in.seenAt >= in.timeout.Load() && in.state.CompareAndSwap(v, v|interrupted):
				in.interrupt.Set(1)
			}
		}
		s.watchMu.Unlock()
	}
}

// fail discards the dead instance of sl (whose lock the caller holds), counts and
// logs why, and starts its replacement.
func (s *strategy) fail(sl *slot, in *instance, call string) {
	if sl.inst.Load() != in {
		return
	}
	sl.inst.Store(nil)
	s.discard(in)
	dead := in.dead
	s.lastFailure.Store(&dead)
	kind := logTrap
	if errors.Is(in.dead, ErrTimeout) {
		s.timeouts.Add(1)
		kind = logTimeout
	} else {
		s.traps.Add(1)
	}
	s.logLimited(kind, "wasm strategy instance failed; replacing it (the call falls back)",
		"instance", sl.id, "call", call, "error", in.dead)
	s.workMu.Lock()
	defer s.workMu.Unlock()
	if s.closed.Load() {
		return
	}
	s.workers.Add(1)
	go s.replace(sl)
}

// replace starts a new instance for sl, seeds it from a live sibling when the module
// reports and takes health, and installs it. It retries with backoff until it
// succeeds or the strategy closes.
func (s *strategy) replace(sl *slot) {
	defer s.workers.Done()
	backoff := 50 * time.Millisecond
	for {
		if s.closed.Load() {
			return
		}
		in, err := s.start(context.Background(), sl.id)
		if err == nil {
			err = s.install(sl, in)
		}
		if err == nil {
			s.replaced.Add(1)
			s.log.Info("wasm strategy instance replaced", "instance", sl.id)
			return
		}
		s.replaceFailures.Add(1)
		s.log.Error("wasm strategy instance could not be replaced; retrying", "instance", sl.id, "error", err, "retry_in", backoff)
		t := time.NewTimer(backoff)
		select {
		case <-s.done:
			t.Stop()
			return
		case <-t.C:
		}
		backoff = min(2*backoff, 10*time.Second)
	}
}

// install seeds in from a sibling's health (under obsMu, so that no broadcast falls
// between the sibling's table and the new instance) and puts it in sl.
func (s *strategy) install(sl *slot, in *instance) error {
	s.obsMu.Lock()
	defer s.obsMu.Unlock()
	if s.features.HealthReporter && s.features.HealthSeeder {
		rows := s.siblingHealth(sl)
		if len(rows) == 0 {
			// No live sibling (a locally applied module runs one instance): start
			// from the policy the host decides with.
			rows = s.policy
		}
		if len(rows) > 0 {
			in.enc = wasmabi.AppendSeed(in.enc[:0], s.wall(s.nanos()), rows)
			code, err := s.callInput(in, in.fnSeed, in.enc, s.opts.StartTimeout)
			if err == nil && code < 0 {
				err = fmt.Errorf("%w: seed: %s", ErrGuest, s.guestText(in, code))
			}
			if err != nil {
				s.discard(in)
				return err
			}
		}
	}
	sl.mu.Lock()
	defer sl.mu.Unlock()
	if s.closed.Load() {
		s.discard(in)
		return ErrClosed
	}
	sl.inst.Store(in)
	return nil
}

// siblingHealth returns the health table of the first live instance other than
// self's. s.obsMu is held.
func (s *strategy) siblingHealth(self *slot) []sdk.BrokerHealth {
	for _, sl := range s.slots {
		if sl == self {
			continue
		}
		sl.mu.Lock()
		in := sl.inst.Load()
		var rows []sdk.BrokerHealth
		if in != nil {
			rows, _ = s.health(in, s.opts.CallTimeout)
			if in.dead != nil {
				s.fail(sl, in, "health")
			}
		}
		sl.mu.Unlock()
		if rows != nil {
			return rows
		}
	}
	return nil
}

// Log kinds, each limited to one line a second (with the count of those suppressed).
const (
	logTrap = iota
	logTimeout
	logGuestError
	numLogKinds
)

// logLimited logs at error level at most once a second per kind.
func (s *strategy) logLimited(kind int, msg string, args ...any) {
	now := s.nanos()
	next := s.logNext[kind].Load()
	if now < next || !s.logNext[kind].CompareAndSwap(next, now+int64(time.Second)) {
		s.logSuppressed[kind].Add(1)
		return
	}
	if n := s.logSuppressed[kind].Swap(0); n > 0 {
		args = append(args, "suppressed", n)
	}
	s.log.Error(msg, args...)
}
