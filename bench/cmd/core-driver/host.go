//go:build !nohost

package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/producerd/producerd/host"
	"github.com/producerd/producerd/plugins/examples/keyhash"
	"github.com/producerd/producerd/plugins/examples/leastlatency"
	"github.com/producerd/producerd/plugins/sdk"
)

// latencySettings are the latency-fault settings of producer.toml's example.
const latencySettings = `{"preset":"rocketmq5","max_isolated_share":0.5}`

// benchStrategies are the strategies of the -strategy NAME-PATH forms, by short name:
// the two built-ins, the least-latency example and keyhash (which needs each message).
var benchStrategies = map[string]string{"rr": "roundrobin", "lf": "latencyfault", "ll": "leastlatency", "kh": "keyhash"}

// benchBuiltins are the constructors the host knows them by, in process and in the
// plugin process ("core-driver plugin NAME"): the daemon's built-ins and the two examples.
var benchBuiltins = func() map[string]host.Builtin {
	b := host.DefaultBuiltins()
	b["leastlatency"], b["keyhash"] = leastlatency.New, keyhash.Build
	return b
}()

// hostStrategy starts a host with one of benchStrategies on one path: in process
// (NAME-inproc), as a plugin process (NAME-plugin: this executable, "plugin NAME") or as
// a WebAssembly module (NAME-wasm: wasm/NAME.wasm next to this executable, which
// bench/run.sh builds). At the end the driver prints the host's decision and fallback
// counts (STRATEGY line).
func hostStrategy(name string) (sdk.Selector, func(), error) {
	short, path, _ := strings.Cut(name, "-")
	long, ok := benchStrategies[short]
	if !ok {
		return nil, nil, fmt.Errorf("unknown -strategy %q", name)
	}
	spec := host.Spec{Name: long, Plugin: long}
	if long == "latencyfault" {
		spec.Settings = []byte(latencySettings)
	}
	switch path {
	case "inproc":
		spec.InProcess = true
	case "plugin":
		exe, err := os.Executable()
		if err != nil {
			return nil, nil, err
		}
		spec.Command = []string{exe, "plugin", long}
	case "wasm":
		exe, err := os.Executable()
		if err != nil {
			return nil, nil, err
		}
		spec.Plugin = filepath.Join(filepath.Dir(exe), "wasm", long+".wasm")
	default:
		return nil, nil, fmt.Errorf("unknown -strategy %q (want NAME-inproc, NAME-plugin or NAME-wasm)", name)
	}
	h, err := host.New(host.Config{Builtins: benchBuiltins})
	if err != nil {
		return nil, nil, err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := h.Start(ctx, spec); err != nil {
		h.Close()
		return nil, nil, fmt.Errorf("start strategy %s: %w", name, err)
	}
	return h.Strategy(), func() {
		st := h.Status()
		fmt.Printf("STRATEGY decisions=%d fallbacks=%d\n", st.Decisions, st.Fallbacks)
		h.Close()
	}, nil
}

func servePlugin(name string) error { return host.ServeBuiltin(name, benchBuiltins) }
