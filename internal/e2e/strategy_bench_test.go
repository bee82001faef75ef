package e2e

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/producerd/producerd/core"
	"github.com/producerd/producerd/host"
	"github.com/producerd/producerd/internal/rmqtest"
)

// The plugin budget (issue 4), against the real broker:
//
//	go test -run '^$' -bench 'Strategy' -benchtime 20000x ./internal/e2e/
//
// compares each strategy in-process with the same strategy as a plugin process, for
// pipelined async sends (throughput) and sequential sync sends (p50 latency).

var strategies = []string{"roundrobin", "latencyfault", "keyhash"}

// benchSpecs are the strategies compared: each in-process, as a plugin process, and
// latency-fault also as WebAssembly.
func benchSpecs(b *testing.B) []host.Spec {
	var out []host.Spec
	for _, name := range strategies {
		for _, inProc := range []bool{true, false} {
			s := spec(name, inProc)
			s.Name = name + "/" + mode(inProc)
			out = append(out, s)
		}
	}
	return append(out, host.Spec{Name: "latencyfault/wasm",
		Plugin: buildWasm(b, "github.com/producerd/producerd/plugins/latencyfault/wasm")})
}

func BenchmarkStrategyAsync(b *testing.B) {
	for _, sp := range benchSpecs(b) {
		b.Run(sp.Name, func(b *testing.B) {
			c := rmqtest.Require(b)
			p := benchProducer(b, c, sp)
			body := make([]byte, 1024)
			sem := make(chan struct{}, 1024)
			var wg sync.WaitGroup
			b.ReportAllocs()
			b.ResetTimer()
			start := time.Now()
			for i := range b.N {
				sem <- struct{}{}
				wg.Add(1)
				m := &core.Message{Topic: "IT_Bench", Body: body, ShardingKey: fmt.Sprint("k", i%256)}
				if err := p.SendAsync(context.Background(), m, func(_ *core.SendResult, err error) {
					if err != nil {
						b.Error(err)
					}
					<-sem
					wg.Done()
				}); err != nil {
					b.Fatal(err)
				}
			}
			wg.Wait()
			b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "msgs/s")
		})
	}
}

func BenchmarkStrategySync(b *testing.B) {
	for _, sp := range benchSpecs(b) {
		b.Run(sp.Name, func(b *testing.B) {
			c := rmqtest.Require(b)
			p := benchProducer(b, c, sp)
			body := make([]byte, 1024)
			lats := make([]time.Duration, 0, b.N)
			b.ReportAllocs()
			b.ResetTimer()
			for i := range b.N {
				t0 := time.Now()
				if _, err := p.Send(context.Background(), &core.Message{Topic: "IT_Bench", Body: body, ShardingKey: fmt.Sprint("k", i%256)}); err != nil {
					b.Fatal(err)
				}
				lats = append(lats, time.Since(t0))
			}
			b.StopTimer()
			slices.Sort(lats)
			b.ReportMetric(float64(lats[len(lats)/2].Microseconds()), "p50-µs")
			b.ReportMetric(float64(lats[len(lats)*99/100].Microseconds()), "p99-µs")
		})
	}
}

func mode(inProc bool) string {
	if inProc {
		return "inprocess"
	}
	return "plugin"
}

func benchProducer(b *testing.B, c *rmqtest.Cluster, sp host.Spec) *core.Producer {
	b.Helper()
	var logs syncBuffer
	h := newHost(b, sp, &logs)
	p := newProducer(b, c, h.Strategy())
	for range 20 { // warm routes, connections and the plugin session
		if _, err := p.Send(context.Background(), &core.Message{Topic: "IT_Bench", Body: []byte("warm"), ShardingKey: "k"}); err != nil {
			b.Fatal(err)
		}
	}
	return p
}
