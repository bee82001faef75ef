package daemon

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/producerd/producerd/api/producerdpb"
	"github.com/producerd/producerd/internal/procs"
)

// TestPluginProcessRSS measures (does not assert) the plugin processes of 20 groups
// (PRODUCERD_MEASURE_GROUPS to change) on one out-of-process strategy: their count and
// summed RSS from /proc after 5 s of sends by 20 senders spread over the groups, and the
// sends per second meanwhile (through the dev broker in this process: a comparison of
// group counts, not a benchmark). Set PRODUCERD_MEASURE_RSS=1 to run it:
//
//	PRODUCERD_MEASURE_RSS=1 go test -count=1 -run TestPluginProcessRSS -v ./internal/daemon/
func TestPluginProcessRSS(t *testing.T) {
	if os.Getenv("PRODUCERD_MEASURE_RSS") == "" {
		t.Skip("a measurement: set PRODUCERD_MEASURE_RSS=1")
	}
	const senders = 20
	groups := senders
	if n, err := strconv.Atoi(os.Getenv("PRODUCERD_MEASURE_GROUPS")); err == nil && n > 0 {
		groups = n
	}
	c := startCluster(t)
	var b strings.Builder
	b.WriteString(configText(c.NameServerAddr(), instanceName(t), "latency", 10000))
	for i := 2; i <= groups; i++ {
		fmt.Fprintf(&b, "\n[[producer]]\ngroup = \"g%d\"\nstrategy = \"latency\"\n", i)
	}
	h := startText(t, c, b.String())
	const window = 5 * time.Second
	var sent, failed atomic.Int64
	self0 := procs.ProcessCPU()
	end := time.Now().Add(window)
	var wg sync.WaitGroup
	for i := range senders {
		group := fmt.Sprintf("g%d", i%groups+1)
		wg.Go(func() {
			for time.Now().Before(end) {
				ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
				_, err := h.ingress.Send(ctx, &producerdpb.SendRequest{Message: &producerdpb.Message{
					ProducerGroup: group, Topic: testTopic, Body: []byte("rss")}})
				cancel()
				if err != nil {
					failed.Add(1)
				}
				sent.Add(1)
			}
		})
	}
	wg.Wait()
	self := procs.ProcessCPU() - self0
	children := pluginChildren()
	var rss int64
	var cpu time.Duration
	for _, pid := range children {
		rss += vmRSSKiB(pid)
		cpu += cpuTime(pid)
	}
	n := float64(max(sent.Load(), 1))
	t.Logf("%d groups: %d plugin processes, %.1f MiB RSS in all, %v CPU in all (%.1f µs per send); %d sends in %v (%.0f/s), %d failed; "+
		"this process (daemon, dev broker, clients) %.1f µs CPU per send",
		groups, len(children), float64(rss)/1024, cpu, float64(cpu.Microseconds())/n,
		sent.Load(), window, float64(sent.Load())/window.Seconds(), failed.Load(), float64(self.Microseconds())/n)
}

// vmRSSKiB returns a process's resident set size in KiB (0 if unknown).
func vmRSSKiB(pid int) int64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	for line := range strings.SplitSeq(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			n, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			return n
		}
	}
	return 0
}

// cpuTime returns a process's user and system CPU time so far (0 if unknown).
func cpuTime(pid int) time.Duration {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return 0
	}
	// After "pid (comm)": state is field 3; utime and stime are fields 14 and 15.
	f := strings.Fields(s[i+1:])
	if len(f) < 13 {
		return 0
	}
	ut, _ := strconv.ParseInt(f[11], 10, 64)
	st, _ := strconv.ParseInt(f[12], 10, 64)
	const ticks = 100 // USER_HZ on Linux
	return time.Duration(ut+st) * time.Second / ticks
}
