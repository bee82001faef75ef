//go:build !wasip1

package sdk

import (
	"fmt"
	"math"
	"os"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/go-plugin"
	"google.golang.org/grpc"

	"github.com/producerd/producerd/internal/strategywire"
)

// parentPoll is how often a plugin checks that the process that started it is alive.
const parentPoll = 250 * time.Millisecond

// Serve runs the strategy build makes as a producerd strategy plugin: a plugin's main
// function is one call, func main() { sdk.Serve(mystrategy.New) } (or
// sdk.Serve(sdk.NoSettings(...)) for one without settings). It does not return while
// the host uses the plugin, and returns when the host shuts it down.
//
// Serve owns the plugin side of the protocol:
//
//   - the go-plugin handshake (magic cookie, protocol version), the gRPC
//     server, and mutual TLS when the host asks for it (go-plugin AutoMTLS);
//   - strategy protocol version negotiation; the strategy is built once, by build,
//     from the settings (JSON) the host sends in Describe, and the optional interfaces
//     it implements (Observer, HealthReporter, HealthSeeder, Describer) are declared in
//     the answer; a constructor error rejects the plugin with its message;
//   - the decision session: selections, outcomes, health publication, with panics in
//     Select and Observe recovered and reported as errors;
//   - logging: an hclog JSON logger on stderr, which go-plugin forwards to the host's
//     log tagged with the plugin's name (level from the environment variable PRODUCERD_PLUGIN_LOG_LEVEL); plugin code can log
//     through Logger();
//   - exit when the host goes away: go-plugin's handshake (the binary refuses to run
//     when not started by a host, exit status 1) plus a watchdog that exits (status 3)
//     as soon as the parent process is gone, even if it died by SIGKILL.
func Serve(build Constructor) {
	if build == nil {
		fmt.Fprintln(os.Stderr, "sdk.Serve: nil Constructor")
		os.Exit(2)
	}
	log := Logger()
	if os.Getenv(strategywire.Handshake.MagicCookieKey) == strategywire.Handshake.MagicCookieValue {
		go watchParent(log, os.Getppid())
	}
	plugin.Serve(&plugin.ServeConfig{
		HandshakeConfig: strategywire.Handshake,
		Plugins:         plugin.PluginSet{strategywire.PluginName: &grpcPlugin{build: build, log: log}},
		GRPCServer: func(opts []grpc.ServerOption) *grpc.Server {
			opts = append(opts, grpc.MaxRecvMsgSize(math.MaxInt32))
			return grpc.NewServer(opts...)
		},
		Logger: log,
	})
}

var pluginLogger = hclog.New(&hclog.LoggerOptions{
	Name:       "plugin",
	Level:      hclog.LevelFromString(envOr(strategywire.EnvLogLevel, "info")),
	Output:     os.Stderr,
	JSONFormat: true,
})

// Logger returns the logger a plugin should use: JSON lines on the process's original
// stderr, which go-plugin forwards to the host's log.
func Logger() hclog.Logger { return pluginLogger }

func envOr(k, def string) string {
	if v := os.Getenv(k); v != "" {
		return v
	}
	return def
}

// watchParent exits the process when its parent changes (the parent died and the
// process was re-parented). go-plugin alone leaves a plugin running when its host dies
// without shutting it down.
func watchParent(log hclog.Logger, ppid int) {
	if ppid <= 1 {
		return
	}
	t := time.NewTicker(parentPoll)
	defer t.Stop()
	for range t.C {
		if p := os.Getppid(); p != ppid {
			log.Error("host process is gone; exiting", "parent", ppid, "now", p)
			os.Exit(3)
		}
	}
}
