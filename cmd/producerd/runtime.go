package main

import (
	"math"
	"os"
	"runtime/debug"

	"github.com/hashicorp/go-hclog"

	"github.com/producerd/producerd/internal/config"
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
	log.Debug("go runtime", "gc_percent", d.GCPercent, "GOGC", os.Getenv("GOGC"), "memory_limit", debug.SetMemoryLimit(-1))
}
