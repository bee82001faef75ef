package core_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/producerd/producerd/core"
	"github.com/producerd/producerd/devbroker"
	"github.com/producerd/producerd/internal/procs"
	"github.com/producerd/producerd/internal/testwait"
)

// BenchmarkRouteRefreshCPU measures the process CPU per scheduled route fetch of an
// unchanged route: 5,000 known topics refreshed every 500ms (10,000 fetches a second),
// the in-process dev NameServer's share included (the same for any client code). An
// op is one fetch: go test -run '^$' -bench RouteRefreshCPU ./core/
func BenchmarkRouteRefreshCPU(b *testing.B) {
	const n = 5000
	cfg := devbroker.Config{Brokers: []string{"broker-a", "broker-b"}, Topics: map[string]int{}}
	for i := range n {
		cfg.Topics[fmt.Sprint("R", i)] = 4
	}
	dev, err := devbroker.Start(context.Background(), cfg)
	if err != nil {
		b.Fatal(err)
	}
	defer dev.Close()
	p, err := core.NewProducer(core.ProducerConfig{Group: "g_refresh_bench",
		Client: core.ClientConfig{NameServers: []string{dev.NameServerAddr()}, RouteRefresh: 500 * time.Millisecond}})
	if err != nil {
		b.Fatal(err)
	}
	defer p.Close(context.Background())
	for i := range n {
		if _, err := p.Send(context.Background(), &core.Message{Topic: fmt.Sprint("R", i), Body: []byte("x")}); err != nil {
			b.Fatal(err)
		}
	}
	// A cycle that knows every topic runs: n more fetches after the sends.
	r := dev.NameServerStats().Requests
	testwait.For(b, time.Minute, "a refresh cycle of every topic", func() bool { return dev.NameServerStats().Requests-r >= n })
	b.ResetTimer()
	c0, r0 := procs.ProcessCPU(), dev.NameServerStats().Requests
	testwait.For(b, time.Minute, "b.N scheduled fetches", func() bool { return dev.NameServerStats().Requests-r0 >= int64(b.N) })
	c1, r1 := procs.ProcessCPU(), dev.NameServerStats().Requests
	b.StopTimer()
	b.ReportMetric(float64((c1-c0).Microseconds())/float64(r1-r0), "cpu-µs/fetch")
}
