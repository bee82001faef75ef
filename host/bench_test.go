package host

import (
	"context"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/producerd/producerd/host/internal/pluginclient"
	"github.com/producerd/producerd/plugins/sdk"
	"github.com/producerd/producerd/plugins/sdk/sdktest"
)

// Benchmarks of one decision through the Host, in-process versus out of process.
//
//	go test -run '^$' -bench . -benchmem ./host/
//
// "op" is one decision: Select, plus Observe of an OK outcome for the strategies that
// observe (so batching is included). Sequential benchmarks give the per-decision
// latency a synchronous send adds; Parallel ones the throughput at saturation.

// cpuMeter reports the CPU time the host process and the plugin process spent per
// op, so that a benchmark shows the whole cost of a decision, not only its latency.
type cpuMeter struct {
	h         *Host
	self, plg time.Duration
}

func procCPU(pid int) time.Duration {
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

func (m *cpuMeter) start() {
	m.self, m.plg = procCPU(os.Getpid()), procCPU(m.h.Status().PID)
}

func (m *cpuMeter) report(b *testing.B) {
	self, plg := procCPU(os.Getpid())-m.self, time.Duration(0)
	if pid := m.h.Status().PID; pid != 0 {
		plg = procCPU(pid) - m.plg
	}
	b.ReportMetric(float64(self.Nanoseconds())/float64(b.N), "host-cpu-ns/op")
	b.ReportMetric(float64(plg.Nanoseconds())/float64(b.N), "plugin-cpu-ns/op")
}

func benchHost(b *testing.B, spec Spec) (*cpuMeter, sdk.Selector) {
	b.Helper()
	h, _ := newHost(b, func(c *Config) {
		c.DecisionTimeout = pluginclient.DefaultDecisionTimeout
		c.UrgentTimeout = pluginclient.DefaultUrgentTimeout
	})
	if err := h.Start(context.Background(), spec); err != nil {
		b.Fatal(err)
	}
	if st := h.Status(); !spec.InProcess && st.Mode != ModePlugin {
		b.Fatalf("plugin not running: %+v", st)
	}
	b.Cleanup(func() {
		st := h.Status()
		if st.Fallbacks > 0 {
			b.Logf("%s: %d of %d decisions fell back: %v", spec.Plugin, st.Fallbacks, st.Decisions, st.FallbacksByReason)
		}
	})
	// Warm up: a fresh plugin process pays page faults and first-use costs.
	s := h.Strategy()
	obs, _ := s.(sdk.Observer)
	rt := sdktest.NewRoute("bench", sdktest.Queues(4, 4))
	for k := range 2000 {
		sel := rt.First()
		sel.Message = &sdk.MessageInfo{ShardingKey: strconv.Itoa(k)}
		decide(context.Background(), b, s, obs, sel)
	}
	return &cpuMeter{h: h}, s
}

func benchSpecs(b *testing.B, plugin string) []struct {
	name string
	spec Spec
} {
	out := []struct {
		name string
		spec Spec
	}{{"in-process", Spec{Plugin: plugin, InProcess: true}}}
	if plugin == "keyhash" {
		return append(out, struct {
			name string
			spec Spec
		}{"plugin", Spec{Name: "keyhash", Plugin: keyhashPlugin(b)}})
	}
	return append(out, struct {
		name string
		spec Spec
	}{"plugin", Spec{Plugin: plugin, Command: selfCommand(plugin)}})
}

func decide(ctx context.Context, b *testing.B, s sdk.Selector, obs sdk.Observer, sel *sdk.Selection) {
	i, err := s.Select(ctx, sel)
	if err != nil || i < 0 || i >= len(sel.Queues) {
		b.Fatalf("Select = %d, %v", i, err)
	}
	if obs != nil {
		q := sel.Queues[i]
		obs.Observe(ctx, []sdk.Outcome{{Topic: sel.Topic, Broker: q.Broker, Queue: q.ID, Latency: 2 * time.Millisecond}})
	}
}

func BenchmarkDecision(b *testing.B) {
	for _, plugin := range []string{"roundrobin", "latencyfault", "leastlatency"} {
		for _, tc := range benchSpecs(b, plugin) {
			m, s := benchHost(b, tc.spec)
			obs, _ := s.(sdk.Observer)
			b.Run(plugin+"/"+tc.name+"/sequential", func(b *testing.B) {
				rt := sdktest.NewRoute("bench", sdktest.Queues(4, 4))
				ctx := context.Background()
				b.ReportAllocs()
				b.ResetTimer()
				m.start()
				defer m.report(b)
				for range b.N {
					decide(ctx, b, s, obs, rt.First())
				}
			})
			b.Run(plugin+"/"+tc.name+"/parallel", func(b *testing.B) {
				ctx := context.Background()
				b.ReportAllocs()
				b.ResetTimer()
				m.start()
				defer m.report(b)
				b.RunParallel(func(pb *testing.PB) {
					rt := sdktest.NewRoute("bench", sdktest.Queues(4, 4))
					for pb.Next() {
						decide(ctx, b, s, obs, rt.First())
					}
				})
			})
		}
	}
}

func BenchmarkKeyhash(b *testing.B) {
	for _, tc := range benchSpecs(b, "keyhash") {
		m, s := benchHost(b, tc.spec)
		for _, par := range []int{1, 16} {
			b.Run(tc.name+"/callers-x"+strconv.Itoa(par), func(b *testing.B) {
				ctx := context.Background()
				b.SetParallelism(par)
				b.ReportAllocs()
				b.ResetTimer()
				m.start()
				defer m.report(b)
				b.RunParallel(func(pb *testing.PB) {
					rt := sdktest.NewRoute("bench", sdktest.Queues(4, 4))
					msg := &sdk.MessageInfo{ShardingKey: "order-42"}
					k := 0
					for pb.Next() {
						k++
						msg.ShardingKey = "order-" + strconv.Itoa(k&1023)
						sel := rt.First()
						sel.Message = msg
						decide(ctx, b, s, nil, sel)
					}
				})
			})
		}
	}
}

// BenchmarkUrgentOutcome: Observe of a failed outcome, which waits until the plugin
// applied it and published its table (the round trip that makes the next Select avoid
// the broker).
func BenchmarkUrgentOutcome(b *testing.B) {
	for _, tc := range benchSpecs(b, "latencyfault") {
		m, s := benchHost(b, tc.spec)
		b.Run(tc.name, func(b *testing.B) {
			obs := s.(sdk.Observer)
			ctx := context.Background()
			brokers := []string{"broker-a", "broker-b", "broker-c", "broker-d"}
			b.ReportAllocs()
			b.ResetTimer()
			m.start()
			defer m.report(b)
			for k := range b.N {
				obs.Observe(ctx, []sdk.Outcome{{Topic: "bench", Broker: brokers[k%4], Kind: sdk.OutcomeConnectFailure, Isolation: true, Latency: time.Millisecond}})
			}
		})
	}
}
