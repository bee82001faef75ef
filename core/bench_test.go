package core_test

import (
	"context"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/producerd/producerd/core"
	"github.com/producerd/producerd/internal/rmqtest"
)

// latencies collects per-send latencies from many goroutines.
type latencies struct {
	mu sync.Mutex
	d  []time.Duration
}

func (l *latencies) add(d time.Duration) {
	l.mu.Lock()
	l.d = append(l.d, d)
	l.mu.Unlock()
}

func (l *latencies) report(b *testing.B, elapsed time.Duration) {
	slices.Sort(l.d)
	if len(l.d) == 0 {
		return
	}
	b.ReportMetric(float64(len(l.d))/elapsed.Seconds(), "msgs/s")
	b.ReportMetric(float64(l.d[len(l.d)/2].Microseconds()), "p50-µs")
	b.ReportMetric(float64(l.d[len(l.d)*99/100].Microseconds()), "p99-µs")
}

// BenchmarkIntegrationSendSync measures sync 1 KiB sends against the real broker with 1
// and 64 goroutines: go test -run '^$' -bench IntegrationSend -benchmem ./core/
func BenchmarkIntegrationSendSync(b *testing.B) {
	for _, workers := range []int{1, 64} {
		b.Run(map[int]string{1: "1-goroutine", 64: "64-goroutines"}[workers], func(b *testing.B) {
			c := rmqtest.Require(b)
			p := benchProducer(b, c)
			body := make([]byte, 1024)
			var lat latencies
			b.ReportAllocs()
			b.ResetTimer()
			start := time.Now()
			var wg sync.WaitGroup
			per := (b.N + workers - 1) / workers
			for range workers {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for range per {
						t0 := time.Now()
						if _, err := p.Send(context.Background(), &core.Message{Topic: "IT_Bench", Body: body}); err != nil {
							b.Error(err)
							return
						}
						lat.add(time.Since(t0))
					}
				}()
			}
			wg.Wait()
			b.StopTimer()
			lat.report(b, time.Since(start))
		})
	}
}

// BenchmarkIntegrationSendAsync measures pipelined async 1 KiB sends with up to 1024 in
// flight.
func BenchmarkIntegrationSendAsync(b *testing.B) {
	c := rmqtest.Require(b)
	p := benchProducer(b, c)
	body := make([]byte, 1024)
	var lat latencies
	var wg sync.WaitGroup
	sem := make(chan struct{}, 1024)
	b.ReportAllocs()
	b.ResetTimer()
	start := time.Now()
	for range b.N {
		sem <- struct{}{}
		wg.Add(1)
		t0 := time.Now()
		err := p.SendAsync(context.Background(), &core.Message{Topic: "IT_Bench", Body: body}, func(_ *core.SendResult, err error) {
			if err != nil {
				b.Error(err)
			}
			lat.add(time.Since(t0))
			<-sem
			wg.Done()
		})
		if err != nil {
			b.Fatal(err)
		}
	}
	wg.Wait()
	b.StopTimer()
	lat.report(b, time.Since(start))
}

func benchProducer(b *testing.B, c *rmqtest.Cluster) *core.Producer {
	b.Helper()
	p, err := core.NewProducer(core.ProducerConfig{Group: "bench_core", Client: core.ClientConfig{NameServers: []string{c.NameServer}}})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { p.Close(context.Background()) })
	// Warm the route and connections outside the timed loop.
	for range 10 {
		if _, err := p.Send(context.Background(), &core.Message{Topic: "IT_Bench", Body: []byte("warm")}); err != nil {
			b.Fatal(err)
		}
	}
	return p
}
