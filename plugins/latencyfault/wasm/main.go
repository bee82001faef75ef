// Command wasm is the latency-fault strategy (package latencyfault) as a WebAssembly
// module for host/wasm. Build it with
//
//	GOOS=wasip1 GOARCH=wasm go build -buildmode=c-shared -o latencyfault.wasm ./plugins/latencyfault/wasm
//
// Its settings (JSON, unknown keys rejected) are those of the "latencyfault" built-in
// (latencyfault.Settings): preset, latency_max, not_available, isolation_latency,
// never_shorten, max_isolated_share. The module reads the time from each call
// (wasmguest.Now) and has no active probe: it has no network.
package main

import (
	"context"
	"fmt"

	"github.com/producerd/producerd/plugins/latencyfault"
	"github.com/producerd/producerd/plugins/sdk"
	"github.com/producerd/producerd/plugins/sdk/wasmguest"
)

func init() {
	s, err := build(nil)
	if err != nil {
		panic(err) // the defaults are valid
	}
	wasmguest.Register(&configured{cur: s}, wasmguest.UsesClock())
}

func main() {}

func build(raw []byte) (latencyfault.Strategy, error) {
	opts, err := latencyfault.ParseSettings(raw)
	if err != nil {
		return nil, err
	}
	opts.Now = wasmguest.Now
	st, err := latencyfault.New(opts)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", sdk.ErrInvalidSettings, err)
	}
	return st, nil
}

// configured is the registered strategy: latency-fault built from the module's
// settings. A module instance is single-threaded, so it needs no lock.
type configured struct{ cur latencyfault.Strategy }

var (
	_ sdk.Configurable    = (*configured)(nil)
	_ sdk.FeatureDeclarer = (*configured)(nil)
)

func (c *configured) Features() sdk.Features {
	return sdk.Features{Observer: true, HealthReporter: true, HealthSeeder: true, Configurable: true, Describer: true}
}

func (c *configured) Configure(raw []byte) error {
	s, err := build(raw)
	if err != nil {
		return err
	}
	c.cur = s
	return nil
}

func (c *configured) Select(ctx context.Context, s *sdk.Selection) (int, error) {
	return c.cur.Select(ctx, s)
}

func (c *configured) Observe(ctx context.Context, o []sdk.Outcome) { c.cur.Observe(ctx, o) }
func (c *configured) Health() []sdk.BrokerHealth                   { return c.cur.Health() }
func (c *configured) Seed(rows []sdk.BrokerHealth)                 { c.cur.Seed(rows) }
func (c *configured) Describe() sdk.Descriptor                     { return c.cur.Describe() }
