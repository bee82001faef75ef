//go:build linux

package host

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/producerd/producerd/internal/procs"
)

// procCPU returns the CPU time (user and system) process pid has used: for this
// process procs.ProcessCPU (getrusage, microseconds), for another the sum of its threads' run time
// from /proc/PID/task/*/schedstat (nanoseconds; a thread that exited is not counted,
// and Go rarely ends one), else /proc/PID/stat (10 ms ticks).
func procCPU(pid int) time.Duration {
	if pid == 0 {
		return 0
	}
	if pid == os.Getpid() {
		return procs.ProcessCPU()
	}
	if tasks, _ := filepath.Glob("/proc/" + strconv.Itoa(pid) + "/task/*/schedstat"); len(tasks) > 0 {
		var sum time.Duration
		for _, t := range tasks {
			b, err := os.ReadFile(t)
			if f := strings.Fields(string(b)); err == nil && len(f) > 0 {
				ns, _ := strconv.ParseInt(f[0], 10, 64)
				sum += time.Duration(ns)
			}
		}
		return sum
	}
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0
	}
	s := string(b)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+2:])
	if len(f) < 13 {
		return 0
	}
	u, _ := strconv.ParseInt(f[11], 10, 64)
	k, _ := strconv.ParseInt(f[12], 10, 64)
	return time.Duration(u+k) * 10 * time.Millisecond // USER_HZ is 100 on Linux
}
