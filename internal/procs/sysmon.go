package procs

import (
	"strconv"
	"strings"
)

// SteadySysmon is the GODEBUG setting that keeps the Go runtime's system monitor
// (sysmon) out of its deep sleep. Without it, sysmon parks whenever every P is idle, and
// the first system call after that wakes it to poll every 20 µs until the Ps are idle
// again: a process that idles between requests (the daemon with one sender, twice per
// message; a strategy plugin between the host's batches) pays a wake-up and several
// polls per request, which on the 2-vCPU benchmark VM were 4 of the daemon's 7 context
// switches per message and a quarter of its CPU. With schedtrace set, sysmon never parks
// (runtime proc.go, sysmon): it backs off from 20 µs to its 10 ms tick while it has no P
// to retake, about 100 wake-ups a second however busy the process is. The runtime reads
// it only at process start.
//
// Its side effects, the reason it is not the default: the scheduler trace it enables
// prints a "SCHED" line on stderr at start when the machine has been up longer than the
// value (2147483647 ms, 24.8 days, the largest the runtime accepts), and again every
// 24.8 days of the process's life; and a fatal panic prints the scheduler's state (a
// line per thread and per goroutine) before the panic message.
const SteadySysmon = "schedtrace=2147483647"

// GODEBUGSets reports whether the GODEBUG value godebug sets the runtime's integer
// setting key, parsed as the runtime parses it: a field key=N, no spaces, N an int32.
func GODEBUGSets(godebug, key string) bool {
	for kv := range strings.SplitSeq(godebug, ",") {
		if k, v, ok := strings.Cut(kv, "="); ok && k == key {
			if _, err := strconv.ParseInt(v, 10, 32); err == nil {
				return true
			}
		}
	}
	return false
}

// WithSteadySysmon returns the GODEBUG value godebug with SteadySysmon added, or
// godebug itself when it sets schedtrace already (its owner's choice wins).
func WithSteadySysmon(godebug string) string {
	switch {
	case GODEBUGSets(godebug, "schedtrace"):
		return godebug
	case godebug == "":
		return SteadySysmon
	}
	return godebug + "," + SteadySysmon
}
