package latencyfault

import (
	"context"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"time"
)

// Preset names accepted by Preset.
const (
	// PresetRocketMQ4 is the Java 4.9 client's MQFaultStrategy (spec §7.3): the default.
	PresetRocketMQ4 = "rocketmq4"
	// PresetRocketMQ5 is the Java 5.1.4+ client's MQFaultStrategy (spec §7.4).
	PresetRocketMQ5 = "rocketmq5"
)

// Defaults of Options, applied to zero fields by New.
const (
	// DefaultIsolationLatency is the latency an outcome with Isolation set counts as
	// (Java 4.9: 30 s, which the default table maps to 600 s of isolation).
	DefaultIsolationLatency = 30 * time.Second
	// DefaultMaxIsolatedShare is the share of the known brokers that may be isolated at
	// once.
	DefaultMaxIsolatedShare = 0.5
	// DefaultProbeInterval is how often isolated brokers are probed when a Probe is set
	// (the Java 5 detector's period).
	DefaultProbeInterval = 3 * time.Second
	// DefaultProbeTimeout bounds one probe call (the Java 5 detector's timeout).
	DefaultProbeTimeout = 200 * time.Millisecond
)

// Default tables (Java 4.9, spec §7.3), index-aligned: an attempt latency of at least
// DefaultLatencyMax[i] (and below DefaultLatencyMax[i+1]) makes the broker unavailable
// for DefaultNotAvailable[i].
var (
	DefaultLatencyMax   = ms(50, 100, 550, 1000, 2000, 3000, 15000)
	DefaultNotAvailable = ms(0, 0, 30000, 60000, 120000, 180000, 600000)
)

// Java 5.1.4+ tables and isolation latency (spec §7.4), used by PresetRocketMQ5.
var (
	RocketMQ5LatencyMax       = ms(50, 100, 550, 1800, 3000, 5000, 15000)
	RocketMQ5NotAvailable     = ms(0, 0, 2000, 5000, 6000, 10000, 30000)
	RocketMQ5IsolationLatency = 10 * time.Second
)

func ms(v ...int) []time.Duration {
	out := make([]time.Duration, len(v))
	for i, x := range v {
		out[i] = time.Duration(x) * time.Millisecond
	}
	return out
}

// Options configures a Strategy. The zero value is the Java 4.9 behaviour (the
// default preset) with the isolation cap at DefaultMaxIsolatedShare and no probe. Every
// zero field takes its default; New validates the rest and reports all problems at
// once. New copies the slices, so the caller may reuse them.
type Options struct {
	// LatencyMax and NotAvailable are the fault tables, index-aligned and of equal
	// length: an attempt whose latency L satisfies LatencyMax[i] ≤ L < LatencyMax[i+1]
	// (or L ≥ LatencyMax[i] for the last i) makes its broker unavailable for
	// NotAvailable[i]; L below LatencyMax[0] means 0. LatencyMax must be strictly
	// ascending and positive, NotAvailable not negative. Both nil: DefaultLatencyMax and
	// DefaultNotAvailable. One nil and not the other is an error.
	LatencyMax, NotAvailable []time.Duration
	// IsolationLatency is the latency an outcome with Isolation set counts as, whatever
	// its real latency (as the Java client's updateFaultItem(…, isolation=true) does).
	// Default DefaultIsolationLatency (30 s ⇒ 600 s with the default table).
	IsolationLatency time.Duration
	// NeverShorten selects the Java 5.x update rule: an outcome can only move a broker's
	// isolation end later, never earlier, so a fast success does not end an isolation.
	// False (the default) is the Java 4.9 rule: every outcome overwrites the broker's
	// entry, so a fast success makes the broker available at once.
	NeverShorten bool
	// MaxIsolatedShare caps the share of the known brokers that may be isolated at
	// once, in (0, 1]; 1 disables the cap (the Java behaviour). Default
	// DefaultMaxIsolatedShare (0.5). See the package documentation for the exact rule.
	MaxIsolatedShare float64
	// Probe, when set, is called for each isolated broker every ProbeInterval, with a
	// context bounded by ProbeTimeout; a nil error re-admits the broker at once. It is
	// called from one goroutine, one broker at a time, which Close stops. Default nil:
	// no probing and no goroutine.
	Probe func(ctx context.Context, broker string) error
	// ProbeInterval is the period of the probe round. Default DefaultProbeInterval.
	ProbeInterval time.Duration
	// ProbeTimeout bounds each Probe call. Default DefaultProbeTimeout.
	ProbeTimeout time.Duration
	// Now is the clock. Default time.Now. Tests inject a manual clock; it must be safe
	// for concurrent use and should not go backwards.
	Now func() time.Time
	// Rand is the source of random start positions. It is called with the strategy's
	// lock held, so it need not be safe for concurrent use. Default math/rand/v2.Uint64.
	Rand func() uint64
}

// Preset returns the Options of a named preset: PresetRocketMQ4 (also "" and
// "default") or PresetRocketMQ5. The caller may adjust the result (for example set a
// Probe) before passing it to New.
func Preset(name string) (Options, error) {
	switch name {
	case "", "default", PresetRocketMQ4:
		return Options{
			LatencyMax:       append([]time.Duration(nil), DefaultLatencyMax...),
			NotAvailable:     append([]time.Duration(nil), DefaultNotAvailable...),
			IsolationLatency: DefaultIsolationLatency,
		}, nil
	case PresetRocketMQ5:
		return Options{
			LatencyMax:       append([]time.Duration(nil), RocketMQ5LatencyMax...),
			NotAvailable:     append([]time.Duration(nil), RocketMQ5NotAvailable...),
			IsolationLatency: RocketMQ5IsolationLatency,
			NeverShorten:     true,
		}, nil
	}
	return Options{}, fmt.Errorf("%w %q (want %q or %q)", ErrUnknownPreset, name, PresetRocketMQ4, PresetRocketMQ5)
}

// resolve validates o and returns it with defaults filled in.
func (o Options) resolve() (Options, error) {
	var errs []error
	switch {
	case o.LatencyMax == nil && o.NotAvailable == nil:
		o.LatencyMax, o.NotAvailable = DefaultLatencyMax, DefaultNotAvailable
	case o.LatencyMax == nil || o.NotAvailable == nil:
		errs = append(errs, errors.New("LatencyMax and NotAvailable must be set together"))
	case len(o.LatencyMax) != len(o.NotAvailable):
		errs = append(errs, fmt.Errorf("LatencyMax has %d entries, NotAvailable %d: they must be index-aligned", len(o.LatencyMax), len(o.NotAvailable)))
	case len(o.LatencyMax) == 0:
		errs = append(errs, errors.New("LatencyMax and NotAvailable are empty"))
	}
	for i, l := range o.LatencyMax {
		if l <= 0 {
			errs = append(errs, fmt.Errorf("LatencyMax[%d] = %v, must be positive", i, l))
		}
		if i > 0 && l <= o.LatencyMax[i-1] {
			errs = append(errs, fmt.Errorf("LatencyMax[%d] = %v, must be above LatencyMax[%d] = %v", i, l, i-1, o.LatencyMax[i-1]))
		}
	}
	for i, d := range o.NotAvailable {
		if d < 0 {
			errs = append(errs, fmt.Errorf("NotAvailable[%d] = %v, must not be negative", i, d))
		}
	}
	o.LatencyMax = append([]time.Duration(nil), o.LatencyMax...)
	o.NotAvailable = append([]time.Duration(nil), o.NotAvailable...)

	if o.IsolationLatency < 0 {
		errs = append(errs, fmt.Errorf("IsolationLatency = %v, must not be negative", o.IsolationLatency))
	} else if o.IsolationLatency == 0 {
		o.IsolationLatency = DefaultIsolationLatency
	}
	switch {
	case math.IsNaN(o.MaxIsolatedShare) || o.MaxIsolatedShare < 0 || o.MaxIsolatedShare > 1:
		errs = append(errs, fmt.Errorf("MaxIsolatedShare = %v, must be in (0, 1]", o.MaxIsolatedShare))
	case o.MaxIsolatedShare == 0:
		o.MaxIsolatedShare = DefaultMaxIsolatedShare
	}
	if o.ProbeInterval < 0 {
		errs = append(errs, fmt.Errorf("ProbeInterval = %v, must not be negative", o.ProbeInterval))
	} else if o.ProbeInterval == 0 {
		o.ProbeInterval = DefaultProbeInterval
	}
	if o.ProbeTimeout < 0 {
		errs = append(errs, fmt.Errorf("ProbeTimeout = %v, must not be negative", o.ProbeTimeout))
	} else if o.ProbeTimeout == 0 {
		o.ProbeTimeout = DefaultProbeTimeout
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Rand == nil {
		o.Rand = rand.Uint64
	}
	if len(errs) > 0 {
		return Options{}, fmt.Errorf("%w: %w", ErrInvalidOptions, errors.Join(errs...))
	}
	return o, nil
}

// notAvailable maps a latency to its isolation duration (Java's
// computeNotAvailableDuration: scan from the top for the first LatencyMax ≤ latency).
func (o *Options) notAvailable(latency time.Duration) time.Duration {
	for i := len(o.LatencyMax) - 1; i >= 0; i-- {
		if latency >= o.LatencyMax[i] {
			return o.NotAvailable[i]
		}
	}
	return 0
}
