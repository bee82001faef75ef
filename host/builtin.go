package host

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"sync/atomic"

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
func RoundRobin(settings []byte) (sdk.Selector, error) {
	if !emptySettings(settings) {
		return nil, fmt.Errorf("%w: roundrobin takes no settings", sdk.ErrInvalidSettings)
	}
	return roundrobin.New(), nil
}

// LatencyFaultSettings are the settings of the "latencyfault" built-in.
type LatencyFaultSettings = latencyfault.Settings

// LatencyFault is the "latencyfault" Builtin; see latencyfault.ParseSettings.
func LatencyFault(settings []byte) (sdk.Selector, error) {
	opts, err := latencyfault.ParseSettings(settings)
	if err != nil {
		return nil, err
	}
	st, err := latencyfault.New(opts)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", sdk.ErrInvalidSettings, err)
	}
	return st, nil
}

func emptySettings(b []byte) bool {
	switch string(bytes.TrimSpace(b)) {
	case "", "{}", "null":
		return true
	}
	return false
}

// ServeBuiltin runs the built-in strategy name as a plugin process (it calls sdk.Serve
// and returns when the host shuts the plugin down). The daemon's "plugin NAME"
// subcommand, which Spec.Command starts by default, calls it. builtins nil means
// DefaultBuiltins(). The strategy is built with empty settings and rebuilt with the
// host's settings when Configure arrives.
func ServeBuiltin(name string, builtins map[string]Builtin) error {
	if builtins == nil {
		builtins = DefaultBuiltins()
	}
	b, ok := builtins[name]
	if !ok {
		return fmt.Errorf("%w %q", ErrUnknownBuiltin, name)
	}
	sel, err := newConfigured(b)
	if err != nil {
		return err
	}
	sel.localApply = localApplyBuiltins[name]
	sdk.Serve(sel)
	return nil
}

// localApplyBuiltins are the built-ins whose documented Select rules are exactly the
// sdk.Descriptor.LocalApply rules (round-robin from a random start per topic and route
// version over available brokers, last-broker avoidance, least-bad when none is
// available). ServeBuiltin declares LocalApply for them even when their own Describe
// does not, so that the host applies their decisions locally from their published
// health instead of asking the plugin per message.
var localApplyBuiltins = map[string]bool{"roundrobin": true, "latencyfault": true}

// configured adapts a Builtin to sdk.Configurable: it delegates to the strategy built
// from the latest settings. It declares the optional interfaces of the strategy built
// with empty settings (sdk.FeatureDeclarer), plus Configurable.
type configured struct {
	build      Builtin
	cur        atomic.Pointer[sdk.Selector]
	feat       sdk.Features
	localApply bool
}

var (
	_ sdk.Selector        = (*configured)(nil)
	_ sdk.Observer        = (*configured)(nil)
	_ sdk.HealthReporter  = (*configured)(nil)
	_ sdk.HealthSeeder    = (*configured)(nil)
	_ sdk.Describer       = (*configured)(nil)
	_ sdk.Configurable    = (*configured)(nil)
	_ sdk.FeatureDeclarer = (*configured)(nil)
)

func newConfigured(b Builtin) (*configured, error) {
	s, err := b(nil)
	if err != nil {
		return nil, err
	}
	c := &configured{build: b, feat: sdk.FeaturesOf(s)}
	c.feat.Configurable, c.feat.Describer = true, true
	c.cur.Store(&s)
	return c, nil
}

func (c *configured) Features() sdk.Features { return c.feat }

func (c *configured) Configure(settings []byte) error {
	s, err := c.build(settings)
	if err != nil {
		return err
	}
	if f := sdk.FeaturesOf(s); f.Observer != c.feat.Observer || f.HealthReporter != c.feat.HealthReporter || f.HealthSeeder != c.feat.HealthSeeder {
		return fmt.Errorf("%w: these settings change the strategy's declared interfaces", sdk.ErrInvalidSettings)
	}
	// Keep what the old instance learned about the brokers.
	if hr, ok := (*c.cur.Load()).(sdk.HealthReporter); ok {
		if seeder, ok := s.(sdk.HealthSeeder); ok {
			seeder.Seed(hr.Health())
		}
	}
	old := c.cur.Swap(&s)
	if cl, ok := (*old).(io.Closer); ok {
		_ = cl.Close()
	}
	return nil
}

func (c *configured) Select(ctx context.Context, s *sdk.Selection) (int, error) {
	return (*c.cur.Load()).Select(ctx, s)
}

func (c *configured) Observe(ctx context.Context, o []sdk.Outcome) {
	if obs, ok := (*c.cur.Load()).(sdk.Observer); ok {
		obs.Observe(ctx, o)
	}
}

func (c *configured) Health() []sdk.BrokerHealth {
	if hr, ok := (*c.cur.Load()).(sdk.HealthReporter); ok {
		return hr.Health()
	}
	return nil
}

func (c *configured) Seed(rows []sdk.BrokerHealth) {
	if hs, ok := (*c.cur.Load()).(sdk.HealthSeeder); ok {
		hs.Seed(rows)
	}
}

func (c *configured) Describe() sdk.Descriptor {
	d := sdk.DescriptorOf(*c.cur.Load())
	d.LocalApply = d.LocalApply || c.localApply
	return d
}
