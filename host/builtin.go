package host

import (
	"fmt"

	"github.com/producerd/producerd/plugins/latencyfault"
	"github.com/producerd/producerd/plugins/roundrobin"
	"github.com/producerd/producerd/plugins/sdk"
)

// DefaultBuiltins returns the built-in strategies: "roundrobin" (takes no settings) and
// "latencyfault" (settings: see LatencyFaultSettings).
func DefaultBuiltins() map[string]Builtin {
	return map[string]Builtin{
		"roundrobin":   RoundRobin,
		"latencyfault": LatencyFault,
	}
}

// RoundRobin is the "roundrobin" Builtin; it accepts only empty settings.
var RoundRobin Builtin = roundrobin.Build

// LatencyFaultSettings are the settings of the "latencyfault" built-in.
type LatencyFaultSettings = latencyfault.Settings

// LatencyFault is the "latencyfault" Builtin; see latencyfault.ParseSettings.
var LatencyFault Builtin = latencyfault.Constructor(nil)

// ServeBuiltin runs the built-in strategy name as a plugin process (it calls sdk.Serve
// with the built-in's constructor and returns when the host shuts the plugin down). The
// daemon's "plugin NAME" subcommand, which Spec.Command starts by default, calls it.
// builtins nil means DefaultBuiltins().
func ServeBuiltin(name string, builtins map[string]Builtin) error {
	if builtins == nil {
		builtins = DefaultBuiltins()
	}
	b, ok := builtins[name]
	if !ok {
		return fmt.Errorf("%w %q", ErrUnknownBuiltin, name)
	}
	sdk.Serve(b)
	return nil
}
