package host

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/producerd/producerd/core"
	"github.com/producerd/producerd/host/internal/pluginclient"
	"github.com/producerd/producerd/internal/rmqtest"
)

// BenchmarkStrategySend sends async 1 KiB messages at saturation (1024 in flight) to
// the real RocketMQ (PRODUCERD_RMQ_STATE) through core with each strategy on each path,
// side by side in one run:
//
//	PRODUCERD_RMQ_STATE=/work/rmq/cluster.json go test -run '^$' -bench StrategySend -benchtime 20000x ./host/
//
// Strategies: round-robin, latency-fault, the least-latency example (they publish a
// policy: the host decides in-process on every path) and keyhash (it needs the message:
// every decision crosses to the plugin or the module). Messages carry keys (Keys), not
// a sharding key, since a sharding key is placed by core (core/order.go) and never
// reaches a strategy. Paths: in-process, process (a plugin process), wasm. Reported:
// msgs/s, host-cpu-ns/op (the test process: core, host and, for wasm, the module) and
// plugin-cpu-ns/op.
func BenchmarkStrategySend(b *testing.B) {
	c := rmqtest.Require(b)
	for _, name := range []string{"roundrobin", "latencyfault", "leastlatency", "keyhash"} {
		for _, path := range []string{"in-process", "process", "wasm"} {
			b.Run(name+"/"+path, func(b *testing.B) {
				benchSend(b, c, sendSpec(b, name, path))
			})
		}
	}
}

var wasmPkgs = map[string]string{
	"roundrobin":   "../plugins/roundrobin/wasm",
	"latencyfault": "../plugins/latencyfault/wasm",
	"leastlatency": "../plugins/examples/leastlatency/wasm",
	"keyhash":      "../plugins/examples/keyhash/wasm",
}

var wasmBuilt sync.Map // strategy name → path of its module

func sendSpec(b *testing.B, name, path string) Spec {
	switch path {
	case "in-process":
		return Spec{Plugin: name, InProcess: true}
	case "process":
		if name == "keyhash" {
			return Spec{Name: "keyhash", Plugin: keyhashPlugin(b)}
		}
		return Spec{Plugin: name, Command: selfCommand(name)}
	}
	if p, ok := wasmBuilt.Load(name); ok {
		return Spec{Name: name, Plugin: p.(string)}
	}
	out := filepath.Join(b.TempDir(), name+".wasm")
	cmd := exec.Command("go", "build", "-buildmode=c-shared", "-o", out, wasmPkgs[name])
	cmd.Env = append(os.Environ(), "GOOS=wasip1", "GOARCH=wasm")
	if msg, err := cmd.CombinedOutput(); err != nil {
		b.Fatalf("go build %s: %v\n%s", wasmPkgs[name], err, msg)
	}
	dir, err := os.MkdirTemp("", "producerd-sendbench-*")
	if err != nil {
		b.Fatal(err)
	}
	keep := filepath.Join(dir, name+".wasm")
	if err := os.Rename(out, keep); err != nil {
		b.Fatal(err)
	}
	wasmBuilt.Store(name, keep)
	return Spec{Name: name, Plugin: keep}
}

func benchSend(b *testing.B, c *rmqtest.Cluster, spec Spec) {
	h, _ := newHost(b, func(c *Config) {
		c.DecisionTimeout = pluginclient.DefaultDecisionTimeout
		c.UrgentTimeout = pluginclient.DefaultUrgentTimeout
	})
	if err := h.Start(context.Background(), spec); err != nil {
		b.Fatal(err)
	}
	p, err := core.NewProducer(core.ProducerConfig{Group: "bench_strategy", Strategy: h.Strategy(),
		Client: core.ClientConfig{NameServers: []string{c.NameServer}, InstanceName: "sendbench-" + strconv.Itoa(os.Getpid())}})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = p.Close(context.Background()) })
	body := make([]byte, 1024)
	run := func(n int) time.Duration {
		var wg sync.WaitGroup
		sem := make(chan struct{}, 1024)
		start := time.Now()
		for k := range n {
			sem <- struct{}{}
			wg.Add(1)
			m := &core.Message{Topic: "IT_Bench", Body: body, Keys: []string{"order-" + strconv.Itoa(k&1023)}}
			err := p.SendAsync(context.Background(), m, func(_ *core.SendResult, err error) {
				if err != nil {
					b.Error(err)
				}
				<-sem
				wg.Done()
			})
			if err != nil {
				b.Fatal(err)
			}
		}
		wg.Wait()
		return time.Since(start)
	}
	run(2000) // warm up: routes, connections, a fresh plugin's first costs
	m := &cpuMeter{h: h}
	st0 := h.Status()
	b.ReportAllocs()
	b.ResetTimer()
	m.start()
	elapsed := run(b.N)
	b.StopTimer()
	m.report(b)
	b.ReportMetric(float64(b.N)/elapsed.Seconds(), "msgs/s")
	st := h.Status()
	if fb := st.Fallbacks - st0.Fallbacks; fb > 0 {
		b.Logf("%s: %d of %d decisions fell back: %v", spec.Plugin, fb, st.Decisions-st0.Decisions, st.FallbacksByReason)
	}
	b.ReportMetric(float64(st.Fallbacks-st0.Fallbacks), "fallbacks")
}
