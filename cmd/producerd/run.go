package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/producerd/producerd/host"
	"github.com/producerd/producerd/internal/builtin"
	"github.com/producerd/producerd/internal/config"
	"github.com/producerd/producerd/internal/daemon"
)

func cmdRun(e *env, args []string) int {
	fs := newFlags(e, "run", "[-c FILE]", `
Run the daemon: start the producer groups and their strategy plugins, then serve the
ingress API (gRPC and HTTP/JSON) and the admin API until SIGTERM or SIGINT.

Signals:
  SIGHUP           re-read the config; a broken config leaves the running one in place
  SIGTERM, SIGINT  graceful shutdown: stop accepting, finish in-flight messages within
                   daemon.shutdown_timeout, unregister from the brokers, stop the
                   plugins, exit 0; a second signal exits at once (status 1)`,
		`  producerd run -c producer.toml
  producerd run -c /etc/producerd/producer.toml -log-level debug`)
	file := fs.String("c", "producer.toml", "config `file`")
	level := fs.String("log-level", "", "override daemon.log_level (trace, debug, info, warn, error)")
	format := fs.String("log-format", "", "override daemon.log_format (text, json)")
	if _, code, ok := parse(fs, args); !ok {
		return code
	}
	if *format != "" && *format != "text" && *format != "json" {
		return usageError(fs, "-log-format %q: want text or json", *format)
	}
	cfg, err := config.Load(*file)
	if err != nil {
		fmt.Fprintln(e.stderr, err)
		return 1
	}
	if *level != "" {
		cfg.Daemon.LogLevel = *level
	}
	if *format != "" {
		cfg.Daemon.LogFormat = *format
	}
	log := daemon.NewLogger(cfg.Daemon.LogLevel, cfg.Daemon.LogFormat, e.stderr)
	steadySysmon(e, *file, cfg.Daemon, log)
	tuneRuntime(cfg.Daemon, log)
	d, err := daemon.New(daemon.Options{Config: cfg, Logger: log, Version: versionString()})
	if err != nil {
		return fail(e, "%v", err)
	}
	defer adaptProcs(cfg.Daemon, d.Requests, log)()
	sigs := make(chan os.Signal, 4)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP)
	defer signal.Stop(sigs)
	if err := d.Start(context.Background()); err != nil {
		log.Error("start failed", "error", err)
		return 1
	}
	return serveUntilSignal(d, log, sigs)
}

// serveUntilSignal reloads on SIGHUP and shuts down gracefully on SIGTERM or SIGINT; a
// second SIGTERM or SIGINT during the shutdown exits at once with status 1.
func serveUntilSignal(d *daemon.Daemon, log hclog.Logger, sigs <-chan os.Signal) int {
	for sig := range sigs {
		if sig == syscall.SIGHUP {
			log.Info("SIGHUP: reloading the config")
			go func() { _, _, _ = d.Reload(context.Background()) }()
			continue
		}
		log.Info("signal received: shutting down (send it again to exit at once)", "signal", sig.String())
		break
	}
	done := make(chan error, 1)
	go func() { done <- d.Shutdown(context.Background()) }()
	for {
		select {
		case err := <-done:
			if err != nil {
				log.Warn("shutdown finished with errors", "error", err)
			}
			return 0
		case sig := <-sigs:
			if sig == syscall.SIGHUP {
				continue
			}
			log.Error("second signal: exiting without waiting", "signal", sig.String())
			return 1
		}
	}
}

func cmdValidate(e *env, args []string) int {
	fs := newFlags(e, "validate", "[-c FILE]", `
Check a config file the way 'producerd run' would, without binding ports: unknown
keys, wrong types, bad durations and sizes, missing plugins, bad strategy settings,
duplicate groups, ports out of range, two listeners on one address (127.0.0.1,
localhost and 0.0.0.0 on one port included), non-loopback listeners without TLS (or
insecure = true), secret and token files others can read and TLS files that do not
load are each reported with FILE:LINE and the key; plugins others could replace and
plugins that do not match their sha256 pin are refused as 'run' refuses them. Each
strategy given by path (a plugin or a .wasm module) is then built once off to the side,
as a swap would (its own settings parser, one trial decision), and closed; -no-start
skips that. The warnings 'run' logs at start are printed (on stderr, "warning: ...").
Exit status 0 when the config is valid, 1 otherwise.`,
		`  producerd validate -c producer.toml
  producerd validate -c producer.toml && systemctl reload producerd`)
	file := fs.String("c", "producer.toml", "config `file`")
	printKeys := fs.Bool("print", false, "print every key's effective value and where it came from (file:line, env VAR or default)")
	noStart := fs.Bool("no-start", false, "do not build the strategies given by path")
	pos, code, ok := parse(fs, args)
	if !ok {
		return code
	}
	switch len(pos) {
	case 0:
	case 1:
		*file = pos[0]
	default:
		return usageError(fs, "one config FILE expected, got %q", pos)
	}
	cfg, err := config.Load(*file)
	if err != nil {
		fmt.Fprintln(e.stderr, err)
		return 1
	}
	if err := daemon.Check(cfg); err != nil {
		fmt.Fprintln(e.stderr, err)
		return 1
	}
	if !*noStart {
		if err := checkStrategies(*file, cfg); err != nil {
			fmt.Fprintln(e.stderr, err)
			return 1
		}
	}
	for _, w := range daemon.StartWarnings(cfg) {
		fmt.Fprintln(e.stderr, "warning:", w)
	}
	var strategies []string
	for _, n := range cfg.StrategyNames() {
		if !cfg.Strategies[n].Implicit {
			strategies = append(strategies, n)
		}
	}
	if *printKeys {
		tw := tabwriter.NewWriter(e.stdout, 0, 4, 1, ' ', 0)
		for _, src := range cfg.Sources {
			fmt.Fprintf(tw, "%s = %s\t# %s\n", src.Key, src.Value, src.From)
		}
		_ = tw.Flush()
	}
	fmt.Fprintf(e.stdout, "%s: ok (%d producer group(s), strategies %v)\n", *file, len(cfg.Producers), strategies)
	return 0
}

func cmdPlugin(e *env, args []string) int {
	fs := newFlags(e, "plugin", "NAME", `
Serve the built-in strategy NAME as an out-of-process plugin over go-plugin. The daemon
starts this itself; it is not meant to be run by hand.`, "")
	pos, code, ok := parse(fs, args)
	if !ok {
		return code
	}
	if len(pos) != 1 {
		return usageError(fs, "want exactly one built-in NAME")
	}
	if err := builtin.Serve(pos[0]); err != nil {
		return fail(e, "plugin %s: %v", pos[0], err)
	}
	return 0
}

// checkStrategyTimeout bounds building and trying one strategy in validate.
const checkStrategyTimeout = 2 * time.Minute

// checkStrategies builds every strategy of cfg given by path off to the side
// (host.Check) and reports each failure as FILE: strategy NAME: error, or, when the
// strategy's own settings parser rejected its settings naming the keys, each as
// FILE:LINE: key strategy.NAME.settings.KEY: problem (Strategy.SettingsError).
func checkStrategies(file string, cfg *config.Config) error {
	var errs []error
	for _, n := range cfg.StrategyNames() {
		s := cfg.Strategies[n]
		if s.Path == "" {
			continue
		}
		// A wasm module is compiled here: on a loaded 2-core machine that took over 30 s.
		ctx, cancel := context.WithTimeout(context.Background(), checkStrategyTimeout)
		spec := host.Spec{Name: s.Name, Plugin: s.Path, Settings: s.Settings, SHA256: s.SHA256, AllowInsecurePath: s.AllowInsecurePath, Env: s.Env}
		if err := host.Check(ctx, host.Config{Logger: hclog.NewNullLogger()}, spec); err != nil {
			var se *builtin.SettingError
			if errors.As(err, &se) {
				errs = append(errs, s.SettingsError(err))
			} else {
				errs = append(errs, fmt.Errorf("%s: strategy %s: %w", file, n, err))
			}
		}
		cancel()
	}
	return errors.Join(errs...)
}
