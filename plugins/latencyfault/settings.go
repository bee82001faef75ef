package latencyfault

import (
	"bytes"
	"encoding/json"
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
// starting from the preset they name. Every error wraps sdk.ErrInvalidSettings. The
// Options are not validated further: New does that.
func ParseSettings(raw []byte) (Options, error) {
	var s Settings
	if t := bytes.TrimSpace(raw); len(t) > 0 && string(t) != "null" && string(t) != "{}" {
		d := json.NewDecoder(bytes.NewReader(t))
		d.DisallowUnknownFields()
		if err := d.Decode(&s); err != nil {
			return Options{}, fmt.Errorf("%w: latencyfault: %w", sdk.ErrInvalidSettings, err)
		}
	}
	opts, err := Preset(s.Preset)
	if err != nil {
		return Options{}, fmt.Errorf("%w: %w", sdk.ErrInvalidSettings, err)
	}
	var errs []error
	durations := func(key string, in []string) []time.Duration {
		out := make([]time.Duration, len(in))
		for i, v := range in {
			d, err := time.ParseDuration(v)
			if err != nil {
				errs = append(errs, fmt.Errorf("%s[%d]: %w", key, i, err))
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
			errs = append(errs, fmt.Errorf("isolation_latency: %w", err))
		}
		opts.IsolationLatency = d
	}
	if s.NeverShorten != nil {
		opts.NeverShorten = *s.NeverShorten
	}
	opts.MaxIsolatedShare = s.MaxIsolatedShare
	if len(errs) > 0 {
		return Options{}, fmt.Errorf("%w: latencyfault: %w", sdk.ErrInvalidSettings, errors.Join(errs...))
	}
	return opts, nil
}
