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
)

// TestPluginProcessRSS measures (does not assert) the plugin processes of 20 groups
// on one out-of-process strategy: their count and summed RSS from /proc after 5 s of
// sends through every group, and the sends per second meanwhile. Set
// PRODUCERD_MEASURE_RSS=1 to run it:
//
//	PRODUCERD_MEASURE_RSS=1 go test -count=1 -run TestPluginProcessRSS -v ./internal/daemon/
func TestPluginProcessRSS(t *testing.T) {
	if os.Getenv("PRODUCERD_MEASURE_RSS") == "" {
		t.Skip("a measurement: set PRODUCERD_MEASURE_RSS=1")
	}
	const groups = 20
	c := startCluster(t)
	var b strings.Builder
	b.WriteString(configText(c.NameServerAddr(), instanceName(t), "latency", 10000))
	for i := 2; i <= groups; i++ {
		fmt.Fprintf(&b, "\n[[producer]]\ngroup = \"g%d\"\nstrategy = \"latency\"\n", i)
	}
	h := startText(t, c, b.String())
	const window = 5 * time.Second
	var sent, failed atomic.Int64
	end := time.Now().Add(window)
	var wg sync.WaitGroup
	for i := 1; i <= groups; i++ {
		group := fmt.Sprintf("g%d", i)
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
	children := pluginChildren()
	var rss int64
	for _, pid := range children {
		rss += vmRSSKiB(pid)
	}
	t.Logf("%d groups: %d plugin processes, %.1f MiB RSS in all; %d sends in %v (%.0f/s), %d failed",
		groups, len(children), float64(rss)/1024, sent.Load(), window, float64(sent.Load())/window.Seconds(), failed.Load())
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
