package wasm_test

import (
	"context"
	"testing"

	"github.com/producerd/producerd/plugins/examples/keyhash"
	"github.com/producerd/producerd/plugins/examples/leastlatency"
	"github.com/producerd/producerd/plugins/latencyfault"
	"github.com/producerd/producerd/plugins/roundrobin"
	"github.com/producerd/producerd/plugins/sdk"
	"github.com/producerd/producerd/plugins/sdk/sdktest"
)

// benchStrategies are the strategies compared: each built in-process and as a module.
var benchStrategies = []struct {
	name   string
	pkg    string
	native func(tb testing.TB) sdk.Selector
}{
	{"roundrobin", pkgRoundRobin, func(testing.TB) sdk.Selector { return roundrobin.New() }},
	{"latencyfault", pkgLatencyFault, func(tb testing.TB) sdk.Selector {
		s, err := latencyfault.New(latencyfault.Options{})
		if err != nil {
			tb.Fatal(err)
		}
		tb.Cleanup(func() { _ = s.Close() })
		return s
	}},
	{"keyhash", pkgKeyHash, func(testing.TB) sdk.Selector { return keyhash.New() }},
	{"leastlatency", pkgLeastLatency, func(tb testing.TB) sdk.Selector {
		s, err := leastlatency.New(nil)
		if err != nil {
			tb.Fatal(err)
		}
		return s
	}},
}

var benchSink int

// BenchmarkSelect measures one decision: in-process (the strategy's own Select) and
// through WebAssembly (host/wasm: encode, copy into guest memory, call, decode), one
// goroutine and b.RunParallel. The route (4 brokers × 8 queues) is already known to
// the instances, as in steady state; keyhash gets a keyed message.
//
//	go test -run '^$' -bench . -benchmem ./host/wasm/
func BenchmarkSelect(b *testing.B) {
	ctx := context.Background()
	rt := sdktest.NewRoute("bench", sdktest.Queues(4, 8))
	for _, bs := range benchStrategies {
		sel := rt.First()
		if bs.name == "keyhash" {
			sel.Message = &sdk.MessageInfo{ShardingKey: "order-42", Keys: []string{"order-42"}, Size: 512}
		}
		mods := map[string]func(b *testing.B) sdk.Selector{
			"inprocess": func(b *testing.B) sdk.Selector { return bs.native(b) },
			"wasm": func(b *testing.B) sdk.Selector {
				return load(b, buildModule(b, bs.pkg), testOptions(b, nil))
			},
		}
		for _, mode := range []string{"inprocess", "wasm"} {
			b.Run(bs.name+"/"+mode, func(b *testing.B) {
				s := mods[mode](b)
				if _, err := s.Select(ctx, sel); err != nil {
					b.Fatal(err)
				}
				b.ReportAllocs()
				b.ResetTimer()
				for b.Loop() {
					i, err := s.Select(ctx, sel)
					if err != nil {
						b.Fatal(err)
					}
					benchSink += i
				}
			})
			b.Run(bs.name+"/"+mode+"-parallel", func(b *testing.B) {
				s := mods[mode](b)
				if _, err := s.Select(ctx, sel); err != nil {
					b.Fatal(err)
				}
				b.ReportAllocs()
				b.ResetTimer()
				b.RunParallel(func(pb *testing.PB) {
					n := 0
					for pb.Next() {
						i, err := s.Select(ctx, sel)
						if err != nil {
							b.Error(err)
							return
						}
						n += i
					}
					_ = n
				})
			})
		}
	}
}

// BenchmarkSelectFloor is the cost of the ABI itself: a guest written by hand
// against docs/wasm-abi.md (testdata/badguest: no SDK, reads the slot and returns 0),
// so host encoding, the call and Go's export entry, without wasmguest or a strategy.
func BenchmarkSelectFloor(b *testing.B) {
	s := load(b, buildModule(b, pkgBadGuest), testOptions(b, nil))
	sel := sdktest.NewRoute("ok", sdktest.Queues(4, 8)).First()
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := s.Select(ctx, sel); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkObserve measures reporting one outcome to latency-fault: in-process, and
// through WebAssembly, where every instance of the pool applies it.
func BenchmarkObserve(b *testing.B) {
	ctx := context.Background()
	outcomes := []sdk.Outcome{sdktest.OK("broker-b", 3_000_000)}
	b.Run("inprocess", func(b *testing.B) {
		s := benchStrategies[1].native(b).(sdk.Observer)
		b.ReportAllocs()
		for b.Loop() {
			s.Observe(ctx, outcomes)
		}
	})
	b.Run("wasm", func(b *testing.B) {
		s := load(b, buildModule(b, pkgLatencyFault), testOptions(b, nil))
		b.ReportAllocs()
		for b.Loop() {
			s.Observe(ctx, outcomes)
		}
	})
}
