package latencyfault

import (
	"context"
	"slices"
	"strings"
	"time"
)

// probeLoop runs a probe round every ProbeInterval until ctx is cancelled by Close.
func (s *strategy) probeLoop(ctx context.Context) {
	t := time.NewTicker(s.opts.ProbeInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			s.probeRound(ctx)
		}
	}
}

// probeRound probes every broker isolated at the start of the round, one at a time,
// and re-admits each one whose probe succeeds, unless an outcome changed its entry
// while the probe ran (a failure observed meanwhile is newer evidence than the probe).
func (s *strategy) probeRound(ctx context.Context) {
	type target struct {
		broker string
		until  int64
	}
	s.mu.Lock()
	now := s.mono()
	var targets []target
	for b, e := range s.table {
		if e.until > now {
			targets = append(targets, target{b, e.until})
		}
	}
	s.mu.Unlock()
	slices.SortFunc(targets, func(a, b target) int { return strings.Compare(a.broker, b.broker) })
	for _, tg := range targets {
		pctx, cancel := context.WithTimeout(ctx, s.opts.ProbeTimeout)
		err := s.opts.Probe(pctx, tg.broker)
		cancel()
		if ctx.Err() != nil {
			return
		}
		if err == nil {
			s.readmit(tg.broker, tg.until)
		}
	}
}

// readmit ends broker's isolation if its entry still ends at until.
func (s *strategy) readmit(broker string, until int64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.mono()
	if e := s.table[broker]; e != nil && e.until == until && e.until > now {
		e.until = now
		s.publish(now)
	}
}
