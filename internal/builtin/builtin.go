// Package builtin is the registry of producerd's built-in strategies (round-robin and
// latency-fault) and their settings.
//
// The strategies themselves, and their constructors from settings, belong to package
// host (host.DefaultBuiltins); this package adds what the daemon needs around them: a
// summary and the accepted setting keys for `producerd strategy list` and strict config
// decoding, Validate for `producerd validate`, and Serve for the hidden
// `producerd plugin NAME` subcommand that the host re-executes. Settings travel as JSON
// (the TOML [strategy.NAME.settings] table converted as is), durations as strings
// ("3s").
package builtin

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"time"

	"github.com/producerd/producerd/host"
	"github.com/producerd/producerd/plugins/latencyfault"
)

// Names of the built-in strategies.
const (
	RoundRobin   = "roundrobin"
	LatencyFault = "latencyfault"
)

// ErrUnknown is returned for a name that is no built-in strategy.
var ErrUnknown = errors.New("builtin: unknown built-in strategy")

// SettingError is a problem with one setting; Key is its name in the settings table
// ("" when it concerns the table as a whole).
type SettingError struct {
	Key string
	Err error
}

func (e *SettingError) Error() string {
	if e.Key == "" {
		return e.Err.Error()
	}
	return e.Key + ": " + e.Err.Error()
}

func (e *SettingError) Unwrap() error { return e.Err }

// Strategy describes one built-in strategy.
type Strategy struct {
	// Name is the built-in's name, as in plugin = "builtin:NAME".
	Name string
	// Summary is a one-line description for `producerd strategy list`.
	Summary string
	// Settings are the keys its settings table accepts.
	Settings []string
}

var registry = []Strategy{
	{Name: LatencyFault, Summary: "latency-fault avoidance (Java MQFaultStrategy), isolation cap, presets rocketmq4|rocketmq5",
		Settings: []string{"preset", "latency_max", "not_available", "isolation_latency", "never_shorten", "max_isolated_share"}},
	{Name: RoundRobin, Summary: "round-robin from a random start, avoiding the last failed broker on a retry"},
}

// Lookup returns the built-in strategy called name.
func Lookup(name string) (Strategy, bool) {
	i := slices.IndexFunc(registry, func(s Strategy) bool { return s.Name == name })
	if i < 0 {
		return Strategy{}, false
	}
	return registry[i], true
}

// All returns every built-in strategy, sorted by name.
func All() []Strategy {
	out := slices.Clone(registry)
	slices.SortFunc(out, func(a, b Strategy) int { return cmpString(a.Name, b.Name) })
	return out
}

func cmpString(a, b string) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// Validate checks settings (JSON) for the built-in called name: the keyed checks of
// this package first (so that a problem names its setting), then the host's own
// constructor, whose result is closed at once.
func Validate(name string, settings []byte) error {
	if _, ok := Lookup(name); !ok {
		return fmt.Errorf("%w %q", ErrUnknown, name)
	}
	if name == LatencyFault && !emptySettings(settings) {
		var s LatencyFaultSettings
		dec := json.NewDecoder(bytes.NewReader(settings))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&s); err != nil {
			return &SettingError{Err: err}
		}
		if err := s.check(); err != nil {
			return err
		}
	}
	b := host.DefaultBuiltins()[name]
	if b == nil {
		return fmt.Errorf("%w %q (not known to the host)", ErrUnknown, name)
	}
	sel, err := b(settings)
	if err != nil {
		return &SettingError{Err: err}
	}
	if c, ok := sel.(io.Closer); ok {
		_ = c.Close()
	}
	return nil
}

// Serve serves the built-in called name as an out-of-process plugin; it is what
// `producerd plugin NAME` runs. It returns when the host shuts the plugin down.
func Serve(name string) error {
	return host.ServeBuiltin(name, nil)
}

func emptySettings(b []byte) bool {
	switch string(bytes.TrimSpace(b)) {
	case "", "{}", "null":
		return true
	}
	return false
}

// LatencyFaultSettings are the settings of the latencyfault built-in. Zero fields take
// the chosen preset's values.
type LatencyFaultSettings struct {
	// Preset is "rocketmq4" (default: Java 4.9 tables, isolation 30s => 10min) or
	// "rocketmq5" (Java 5 tables, never shortens an isolation).
	Preset string `json:"preset,omitempty"`
	// LatencyMax and NotAvailable replace the fault tables (durations, index-aligned).
	LatencyMax   []string `json:"latency_max,omitempty"`
	NotAvailable []string `json:"not_available,omitempty"`
	// IsolationLatency is what a failed attempt counts as (a duration).
	IsolationLatency string `json:"isolation_latency,omitempty"`
	// NeverShorten selects the Java 5 rule (an outcome never ends an isolation early).
	NeverShorten *bool `json:"never_shorten,omitempty"`
	// MaxIsolatedShare caps the share of brokers isolated at once, in (0, 1].
	MaxIsolatedShare float64 `json:"max_isolated_share,omitempty"`
}

// check reports every malformed value, keyed by setting.
func (s *LatencyFaultSettings) check() error {
	var errs []error
	if _, err := latencyfault.Preset(s.Preset); err != nil {
		errs = append(errs, &SettingError{Key: "preset", Err: err})
	}
	for key, list := range map[string][]string{"latency_max": s.LatencyMax, "not_available": s.NotAvailable} {
		for i, v := range list {
			if _, err := time.ParseDuration(v); err != nil {
				errs = append(errs, &SettingError{Key: fmt.Sprintf("%s[%d]", key, i), Err: fmt.Errorf("invalid duration %q", v)})
			}
		}
	}
	if s.IsolationLatency != "" {
		if _, err := time.ParseDuration(s.IsolationLatency); err != nil {
			errs = append(errs, &SettingError{Key: "isolation_latency", Err: fmt.Errorf("invalid duration %q", s.IsolationLatency)})
		}
	}
	if s.MaxIsolatedShare < 0 || s.MaxIsolatedShare > 1 {
		errs = append(errs, &SettingError{Key: "max_isolated_share", Err: fmt.Errorf("%v is out of range (0, 1]", s.MaxIsolatedShare)})
	}
	return errors.Join(errs...)
}
