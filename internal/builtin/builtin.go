// Package builtin is the registry of producerd's built-in strategies (round-robin and
// latency-fault) and their settings.
//
// The strategies themselves, and their constructors from settings, belong to package
// host (host.DefaultBuiltins); this package adds what the daemon needs around them: a
// summary and the accepted setting keys (read from each strategy's settings type) for
// `producerd strategy list`, Validate for `producerd validate` (the strategy's own
// constructor), and Serve for the hidden
// `producerd plugin NAME` subcommand that the host re-executes. Settings travel as JSON
// (the TOML [strategy.NAME.settings] table converted as is), durations as strings
// ("3s").
package builtin

import (
	"errors"
	"fmt"
	"io"
	"slices"

	"github.com/producerd/producerd/host"
	"github.com/producerd/producerd/plugins/latencyfault"
	"github.com/producerd/producerd/plugins/sdk"
)

// Names of the built-in strategies.
const (
	RoundRobin   = "roundrobin"
	LatencyFault = "latencyfault"
)

// ErrUnknown is returned for a name that is no built-in strategy.
var ErrUnknown = errors.New("builtin: unknown built-in strategy")

// SettingError is a problem with one setting; Key is its name in the settings table
// ("" when it concerns the table as a whole). It is the strategies' own error type.
type SettingError = sdk.SettingError

// Strategy describes one built-in strategy.
type Strategy struct {
	// Name is the built-in's name, as in plugin = "builtin:NAME".
	Name string
	// Summary is a one-line description for `producerd strategy list`.
	Summary string
	// Settings are the keys its settings table accepts, read from the json tags of the
	// strategy's own settings type (the one its parser decodes), never kept by hand.
	Settings []string
}

var registry = []Strategy{
	{Name: LatencyFault, Summary: "latency-fault avoidance (Java MQFaultStrategy), isolation cap, presets rocketmq4|rocketmq5",
		Settings: sdk.SettingKeys(latencyfault.Settings{})},
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

// Validate checks settings (JSON) for the built-in called name by building it with the
// host's constructor (the strategy's one settings parser) and closing the result at
// once. Problems with a key are *SettingError values, joined.
func Validate(name string, settings []byte) error {
	if _, ok := Lookup(name); !ok {
		return fmt.Errorf("%w %q", ErrUnknown, name)
	}
	b := host.DefaultBuiltins()[name]
	if b == nil {
		return fmt.Errorf("%w %q (not known to the host)", ErrUnknown, name)
	}
	sel, err := b(settings)
	if err != nil {
		return err
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
