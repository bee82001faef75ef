package latencyfault

import (
	"errors"
	"fmt"
	"time"

	"github.com/producerd/producerd/plugins/sdk"
)

// Settings are latency-fault's settings as JSON, the form they take in the daemon's
// [strategy.NAME.settings] table and across the plugin boundary. Unknown keys are an
// error; durations are strings ("550ms"); zero fields keep the preset's values.
type Settings struct {
	// Preset is "rocketmq4" (default) or "rocketmq5".
	Preset           string   `json:"preset"`
	LatencyMax       []string `json:"latency_max"`
	NotAvailable     []string `json:"not_available"`
	IsolationLatency string   `json:"isolation_latency"`
	NeverShorten     *bool    `json:"never_shorten"`
	MaxIsolatedShare float64  `json:"max_isolated_share"`
}

// ParseSettings decodes JSON settings (empty, "{}" and "null" mean none) into Options,
// starting from the preset they name. It is latency-fault's one settings parser (the
// built-in, the plugin, the WebAssembly module, validate and simulate all reach it
// through Constructor). Every problem is reported, each as an *sdk.SettingError naming
// its key (so they wrap sdk.ErrInvalidSettings), joined. The Options are not validated
// further: New does that.
func ParseSettings(raw []byte) (Options, error) {
	var s Settings
	if err := sdk.DecodeSettings(raw, &s); err != nil {
		return Options{}, err
	}
	var errs []error
	opts, err := Preset(s.Preset)
	if err != nil {
		errs = append(errs, &sdk.SettingError{Key: "preset", Err: err})
	}
	durations := func(key string, in []string) []time.Duration {
		out := make([]time.Duration, len(in))
		for i, v := range in {
			d, err := time.ParseDuration(v)
			if err != nil {
				errs = append(errs, &sdk.SettingError{Key: fmt.Sprintf("%s[%d]", key, i), Err: fmt.Errorf("invalid duration %q", v)})
			}
			out[i] = d
		}
		return out
	}
	if s.LatencyMax != nil {
		opts.LatencyMax = durations("latency_max", s.LatencyMax)
	}
	if s.NotAvailable != nil {
		opts.NotAvailable = durations("not_available", s.NotAvailable)
	}
	if s.IsolationLatency != "" {
		d, err := time.ParseDuration(s.IsolationLatency)
		if err != nil {
			errs = append(errs, &sdk.SettingError{Key: "isolation_latency", Err: fmt.Errorf("invalid duration %q", s.IsolationLatency)})
		}
		opts.IsolationLatency = d
	}
	if s.NeverShorten != nil {
		opts.NeverShorten = *s.NeverShorten
	}
	if s.MaxIsolatedShare < 0 || s.MaxIsolatedShare > 1 {
		errs = append(errs, &sdk.SettingError{Key: "max_isolated_share", Err: fmt.Errorf("%v is out of range (0, 1]", s.MaxIsolatedShare)})
	}
	opts.MaxIsolatedShare = s.MaxIsolatedShare
	if len(errs) > 0 {
		return Options{}, errors.Join(errs...)
	}
	return opts, nil
}

// Constructor returns latency-fault's sdk.Constructor: ParseSettings, then New with
// the clock now (nil: time.Now; a WebAssembly module passes wasmguest.Now).
func Constructor(now func() time.Time) sdk.Constructor {
	return func(settings []byte) (sdk.Selector, error) {
		opts, err := ParseSettings(settings)
		if err != nil {
			return nil, err
		}
		if now != nil {
			opts.Now = now
		}
		st, err := New(opts)
		if err != nil {
			return nil, fmt.Errorf("%w: %w", sdk.ErrInvalidSettings, err)
		}
		return st, nil
	}
}
