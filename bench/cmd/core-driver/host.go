//go:build !nohost

package main

import (
	"context"
	"fmt"
	"time"

	"github.com/producerd/producerd/host"
	"github.com/producerd/producerd/plugins/sdk"
)

// latencySettings are the latency-fault settings of producer.toml's example.
const latencySettings = `{"preset":"rocketmq5","max_isolated_share":0.5}`

// hostStrategy starts a host with one built-in, in process or as a plugin process
// (this executable, "plugin NAME").
func hostStrategy(name string) (sdk.Selector, func(), error) {
	spec := host.Spec{Name: name}
	switch name {
	case "rr-inproc", "rr-plugin":
		spec.Plugin = "roundrobin"
	case "lf-inproc", "lf-plugin":
		spec.Plugin, spec.Settings = "latencyfault", []byte(latencySettings)
	default:
		return nil, nil, fmt.Errorf("unknown -strategy %q", name)
	}
	spec.InProcess = name == "rr-inproc" || name == "lf-inproc"
	h, err := host.New(host.Config{})
	if err != nil {
		return nil, nil, err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := h.Start(ctx, spec); err != nil {
		h.Close()
		return nil, nil, fmt.Errorf("start strategy %s: %w", name, err)
	}
	return h.Strategy(), func() { h.Close() }, nil
}

func servePlugin(name string) error { return host.ServeBuiltin(name, nil) }
