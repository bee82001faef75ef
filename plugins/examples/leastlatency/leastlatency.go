// Package leastlatency is an example third-party strategy: it sends to the broker with
// the lowest moving-average latency, round-robin over that broker's queues, and keeps a
// small share of traffic on the other brokers so that it notices when one recovers.
//
// It never answers a decision itself on the host's hot path: it publishes a policy
// (per-broker weights in its health table) and declares LocalApply, so the host decides
// in-process with package pick, and the strategy only updates the weights from
// outcomes. Its own Select is the same pick walk, for in-process and WebAssembly use.
//
// # Rules
//
//   - Each OK outcome updates the broker's exponentially weighted moving average latency
//     (Settings.Alpha); a failed outcome counts as Settings.FailureLatency.
//   - The best brokers are those whose average is within Settings.Band times the lowest
//     average. Each gets weight Settings.BestWeight; every other broker with an average
//     gets weight 1 (its queues still see about 1 pick in BestWeight+1 of theirs).
//   - Until some broker has an average, nothing is weighted: plain round-robin.
package leastlatency

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"math"
	"slices"
	"sync"
	"time"

	"github.com/producerd/producerd/plugins/sdk"
	"github.com/producerd/producerd/plugins/sdk/pick"
)

// Settings are the strategy's settings (JSON, unknown keys rejected).
type Settings struct {
	// Alpha is the weight of a new sample in the moving average, in (0, 1]. Default 0.2.
	Alpha float64 `json:"alpha"`
	// Band: brokers within Band × the lowest average are all "best". Default 1.2; ≥ 1.
	Band float64 `json:"band"`
	// BestWeight is the weight of a best broker (others get 1), 1..pick.MaxWeight.
	// Default 16.
	BestWeight uint32 `json:"best_weight"`
	// FailureLatency is the sample a failed attempt counts as, e.g. "1s". Default 1s.
	FailureLatency string `json:"failure_latency"`
}

// ParseSettings decodes raw (empty means defaults) strictly, fills in the defaults and
// returns them with the parsed failure latency. It is the strategy's one settings
// parser: New, the plugin and the wasm module use it. Problems are *sdk.SettingError
// values naming their key.
func ParseSettings(raw []byte) (Settings, time.Duration, error) {
	s := Settings{Alpha: 0.2, Band: 1.2, BestWeight: 16, FailureLatency: "1s"}
	if err := sdk.DecodeSettings(raw, &s); err != nil {
		return s, 0, err
	}
	var errs []error
	bad := func(key, format string, args ...any) {
		errs = append(errs, &sdk.SettingError{Key: key, Err: fmt.Errorf(format, args...)})
	}
	fail, err := time.ParseDuration(s.FailureLatency)
	switch {
	case err != nil:
		bad("failure_latency", "invalid duration %q", s.FailureLatency)
	case fail <= 0:
		bad("failure_latency", "%s is not positive", fail)
	}
	if !(s.Alpha > 0 && s.Alpha <= 1) {
		bad("alpha", "%v is not in (0, 1]", s.Alpha)
	}
	if !(s.Band >= 1) || math.IsInf(s.Band, 0) {
		bad("band", "%v is not ≥ 1", s.Band)
	}
	if s.BestWeight < 1 || s.BestWeight > pick.MaxWeight {
		bad("best_weight", "%d is not in 1..%d", s.BestWeight, pick.MaxWeight)
	}
	return s, fail, errors.Join(errs...)
}

// New builds the strategy from its settings (see ParseSettings). The value implements
// sdk.Selector, sdk.Observer, sdk.Describer and sdk.HealthReporter.
func New(settings []byte) (sdk.Selector, error) {
	s, fail, err := ParseSettings(settings)
	if err != nil {
		return nil, err
	}
	return &strategy{set: s, fail: fail, p: pick.New(pick.Options{}), avg: make(map[string]float64)}, nil
}

var (
	_ sdk.Selector       = (*strategy)(nil)
	_ sdk.Observer       = (*strategy)(nil)
	_ sdk.Describer      = (*strategy)(nil)
	_ sdk.HealthReporter = (*strategy)(nil)
)

type strategy struct {
	set  Settings
	fail time.Duration
	p    *pick.Picker

	mu       sync.Mutex
	avg      map[string]float64 // broker → moving average latency, ns
	rows     []sdk.BrokerHealth // published policy, sorted by broker
	weighted bool               // the picker has the weights of rows
}

// Describe implements sdk.Describer: LocalApply, the host decides from the weights.
func (s *strategy) Describe() sdk.Descriptor {
	return sdk.Descriptor{Name: "leastlatency", LocalApply: true}
}

// Select implements sdk.Selector with package pick over the published weights.
func (s *strategy) Select(_ context.Context, sel *sdk.Selection) (int, error) {
	if len(sel.Queues) == 0 {
		return -1, sdk.ErrNoQueues
	}
	return s.p.Pick(sel), nil
}

// Observe implements sdk.Observer: it updates the averages and republishes the weights.
func (s *strategy) Observe(_ context.Context, outcomes []sdk.Outcome) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, o := range outcomes {
		if o.Broker == "" {
			continue
		}
		sample := float64(max(o.Latency, 0))
		if o.Kind.Failed() {
			sample = float64(s.fail)
		}
		if a, ok := s.avg[o.Broker]; ok {
			s.avg[o.Broker] = a + s.set.Alpha*(sample-a)
		} else {
			s.avg[o.Broker] = sample
		}
	}
	lowest := math.Inf(1)
	for _, a := range s.avg {
		lowest = min(lowest, a)
	}
	if len(s.rows) != len(s.avg) { // a new broker: rebuild the sorted rows
		s.rows = s.rows[:0]
		for b := range s.avg {
			s.rows = append(s.rows, sdk.BrokerHealth{Broker: b, Available: true})
		}
		slices.SortFunc(s.rows, func(a, b sdk.BrokerHealth) int { return cmp.Compare(a.Broker, b.Broker) })
		s.weighted = false
	}
	changed := !s.weighted
	for i := range s.rows {
		r := &s.rows[i]
		a := s.avg[r.Broker]
		w := uint32(1)
		if a <= lowest*s.set.Band {
			w = s.set.BestWeight
		}
		r.Latency = time.Duration(a)
		if r.Weight != w {
			r.Weight, changed = w, true
		}
	}
	// The picker only needs the weights: republish when they change, not per outcome.
	if changed {
		s.weighted = true
		s.p.SetPolicy(pick.FromHealth(s.rows))
	}
}

// Health implements sdk.HealthReporter: the published policy, one row per broker seen.
func (s *strategy) Health() []sdk.BrokerHealth {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.rows)
}
