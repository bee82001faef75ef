package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/producerd/producerd/internal/daemon"
	"github.com/producerd/producerd/internal/simulate"
)

func cmdSimulate(e *env, args []string) int {
	fs := newFlags(e, "simulate", "-scenario FILE [flags]", `
Replay a fault scenario against queue-selection strategies and compare them. Each
strategy of the scenario runs in turn against a fresh in-process dev broker cluster
(same seed, same fault timeline) through the real producer and strategy host, in real
time: a 40s scenario takes a little over 40s per strategy. The table goes to stdout,
progress to stderr; -svg also draws per strategy each broker's share of attempts over
time and the latency over time, with the fault windows shaded.

The scenario format is described in docs/simulator.md; examples are in
examples/scenarios. Only loopback addresses are used.`,
		`  producerd simulate -scenario examples/scenarios/slow-broker.toml
  producerd simulate -scenario examples/scenarios/slow-broker.toml -svg slow-broker.svg
  producerd simulate -scenario examples/scenarios/broker-down.toml -strategy round-robin -duration 15s
  producerd simulate -scenario my.toml -check`)
	file := fs.String("scenario", "", "scenario `file` (TOML)")
	svgPath := fs.String("svg", "", "write the chart to this `path` (SVG)")
	jsonPath := fs.String("json", "", "write the full report to this `path` (JSON)")
	dur := fs.Duration("duration", 0, "run only the first `duration` of the scenario (0: all of it)")
	only := fs.String("strategy", "", "comma-separated strategy `names` to run (default: all)")
	check := fs.Bool("check", false, "only decode and check the scenario")
	quiet := fs.Bool("q", false, "no progress lines")
	level := fs.String("log-level", "off", "log `level` of the dev broker, host and producer (stderr)")
	pos, code, ok := parse(fs, args)
	if !ok {
		return code
	}
	if *file == "" && len(pos) == 1 {
		*file, pos = pos[0], nil
	}
	switch {
	case *file == "":
		return usageError(fs, "missing -scenario FILE")
	case len(pos) > 0:
		return usageError(fs, "unexpected arguments %q", pos)
	case *dur < 0:
		return usageError(fs, "negative duration")
	}
	sc, err := simulate.ParseFile(*file)
	if err != nil {
		fmt.Fprintf(e.stderr, "%v\n", err)
		return 1
	}
	if *check {
		fmt.Fprintf(e.stdout, "%s: ok: %s; %d fault windows; strategies:", *file, sc.Summary(), len(sc.Faults))
		for _, s := range sc.Strategies {
			fmt.Fprintf(e.stdout, " %s (%s, %s)", s.Name, s.Plugin, s.Where())
		}
		fmt.Fprintln(e.stdout)
		return 0
	}
	opts := simulate.Options{Duration: *dur, Strategies: splitList(*only), Logger: daemon.NewLogger(*level, "text", e.stderr)}
	if !*quiet {
		opts.Progress = e.stderr
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	run := sc.Load.Duration
	if *dur > 0 && *dur < run {
		run = *dur
	}
	n := len(sc.Strategies)
	if len(opts.Strategies) > 0 {
		n = len(opts.Strategies)
	}
	fmt.Fprintf(e.stderr, "simulating %s: %v of scenario time for each of %d strategies, in real time (about %v)\n",
		sc.Name, run, n, (time.Duration(n) * (run + 2*time.Second)).Round(time.Second))
	rep, err := simulate.Run(ctx, sc, opts)
	if err != nil {
		if errors.Is(err, context.Canceled) {
			return fail(e, "simulate: interrupted")
		}
		return fail(e, "%v", err)
	}
	fmt.Fprintln(e.stderr)
	if err := simulate.WriteTable(e.stdout, rep); err != nil {
		return fail(e, "simulate: %v", err)
	}
	if *svgPath != "" {
		if err := writeFileWith(*svgPath, func(f *os.File) error { return simulate.WriteSVG(f, rep) }); err != nil {
			return fail(e, "simulate: write %s: %v", *svgPath, err)
		}
		fmt.Fprintf(e.stderr, "chart written to %s\n", *svgPath)
	}
	if *jsonPath != "" {
		err := writeFileWith(*jsonPath, func(f *os.File) error {
			enc := json.NewEncoder(f)
			enc.SetIndent("", "  ")
			return enc.Encode(rep)
		})
		if err != nil {
			return fail(e, "simulate: write %s: %v", *jsonPath, err)
		}
		fmt.Fprintf(e.stderr, "report written to %s\n", *jsonPath)
	}
	return 0
}

// writeFileWith creates path and fills it with write, reporting the first error.
func writeFileWith(path string, write func(*os.File) error) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if err := write(f); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}
