package main

import (
	"context"
	"math"
	"os"
	"runtime"
	"runtime/debug"
	"slices"
	"strings"

	"github.com/hashicorp/go-hclog"

	"github.com/producerd/producerd/internal/config"
	"github.com/producerd/producerd/internal/procs"
)

// tuneRuntime applies daemon.gc_percent and daemon.memory_limit to the Go runtime, each
// unless its environment variable (GOGC, GOMEMLIMIT) is set, which the runtime has
// already applied. They are read at start; a reload does not change them.
func tuneRuntime(d config.Daemon, log hclog.Logger) {
	if os.Getenv("GOGC") == "" {
		debug.SetGCPercent(d.GCPercent) // GCOff is -1, as for the runtime
	}
	if os.Getenv("GOMEMLIMIT") == "" && d.MemoryLimit != 0 { // 0: a Config not from Parse
		limit := d.MemoryLimit
		if limit == config.NoMemoryLimit {
			limit = math.MaxInt64
		}
		debug.SetMemoryLimit(limit)
	}
	// SetMemoryLimit with a negative value reads the limit without changing it.
	log.Debug("go runtime", "gc_percent", d.GCPercent, "GOGC", os.Getenv("GOGC"), "memory_limit", debug.SetMemoryLimit(-1), "GODEBUG", os.Getenv("GODEBUG"))
}

// steadySysmon re-executes the daemon (same PID and arguments, the environment with
// procs.SteadySysmon added to GODEBUG) when daemon.sysmon is "steady", GODEBUG does not
// set schedtrace already and the config is a regular file (one from a pipe could not be
// read again). It returns when it did not re-execute, or could not (logged). It runs
// before the daemon starts anything.
func steadySysmon(e *env, file string, d config.Daemon, log hclog.Logger) {
	godebug := os.Getenv("GODEBUG")
	if d.Sysmon != config.SysmonSteady || e.reexec == nil || procs.GODEBUGSets(godebug, "schedtrace") {
		return
	}
	if st, err := os.Stat(file); err != nil || !st.Mode().IsRegular() {
		log.Warn("go runtime: daemon.sysmon = \"steady\" re-reads the config, which is not a regular file; running with Go's default", "config", file)
		return
	}
	environ := slices.DeleteFunc(os.Environ(), func(kv string) bool { return strings.HasPrefix(kv, "GODEBUG=") })
	err := e.reexec(append(environ, "GODEBUG="+procs.WithSteadySysmon(godebug)))
	log.Warn("go runtime: could not re-execute with a steady sysmon; running with Go's default", "error", err)
}

// adaptProcs applies daemon.procs unless GOMAXPROCS is set: a number of Ps, or "auto",
// a procs.Controller fed by the daemon's requests until stop, which gives the runtime
// its default back. Read at start; a reload does not change it.
func adaptProcs(d config.Daemon, requests func() (admitted, overlapped uint64), log hclog.Logger) (stop func()) {
	if os.Getenv("GOMAXPROCS") != "" || d.Procs == 0 { // 0: a Config not from Parse
		return func() {}
	}
	if d.Procs != config.ProcsAuto {
		runtime.GOMAXPROCS(d.Procs)
		return func() {}
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	c := &procs.Controller{Policy: procs.DefaultPolicy, Max: runtime.GOMAXPROCS(0), Requests: requests,
		Changed: func(n int, cores float64) { log.Debug("go runtime: procs changed", "procs", n, "cores_used", cores) }}
	go func() { defer close(done); c.Run(ctx) }()
	return func() { cancel(); <-done }
}
