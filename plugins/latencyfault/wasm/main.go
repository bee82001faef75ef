// Command wasm is the latency-fault strategy (package latencyfault) as a WebAssembly
// module for host/wasm. Build it with
//
//	GOOS=wasip1 GOARCH=wasm go build -buildmode=c-shared -o latencyfault.wasm ./plugins/latencyfault/wasm
//
// Its settings (JSON, unknown keys rejected) are those of the "latencyfault" built-in
// (host.LatencyFaultSettings): preset, latency_max, not_available, isolation_latency,
// never_shorten, max_isolated_share. The module reads the time from each call
// (wasmguest.Now) and has no active probe: it has no network.
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

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

// settings mirrors host.LatencyFaultSettings (the module cannot import package host).
type settings struct {
	Preset           string   `json:"preset"`
	LatencyMax       []string `json:"latency_max"`
	NotAvailable     []string `json:"not_available"`
	IsolationLatency string   `json:"isolation_latency"`
	NeverShorten     *bool    `json:"never_shorten"`
	MaxIsolatedShare float64  `json:"max_isolated_share"`
}

func build(raw []byte) (latencyfault.Strategy, error) {
	var s settings
	if t := bytes.TrimSpace(raw); len(t) > 0 && string(t) != "null" {
		d := json.NewDecoder(bytes.NewReader(t))
		d.DisallowUnknownFields()
		if err := d.Decode(&s); err != nil {
			return nil, fmt.Errorf("%w: latencyfault: %w", sdk.ErrInvalidSettings, err)
		}
	}
	opts, err := latencyfault.Preset(s.Preset)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", sdk.ErrInvalidSettings, err)
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
		return nil, fmt.Errorf("%w: latencyfault: %w", sdk.ErrInvalidSettings, errors.Join(errs...))
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
