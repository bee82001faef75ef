package wasm_test

import (
	"testing"

	"github.com/producerd/producerd/plugins/sdk"
	"github.com/producerd/producerd/plugins/sdk/sdktest"
)

// TestConformance runs the SDK's conformance suite against the WebAssembly builds of
// round-robin, latency-fault (both presets), the key-hash and least-latency examples. Each subtest
// loads a fresh Strategy of two instances, so the suite also exercises the pool and
// the Observe broadcast.
func TestConformance(t *testing.T) {
	tests := []struct {
		name     string
		pkg      string
		settings string
	}{
		{"roundrobin", pkgRoundRobin, ""},
		{"latencyfault-rocketmq4", pkgLatencyFault, `{"preset":"rocketmq4"}`},
		{"latencyfault-rocketmq5", pkgLatencyFault, `{"preset":"rocketmq5"}`},
		{"keyhash", pkgKeyHash, ""},
		{"leastlatency", pkgLeastLatency, `{"band":1.5}`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			path := buildModule(t, tc.pkg)
			skipHeavyUnderRace(t, path)
			sdktest.Conformance(t, func(t *testing.T) sdk.Selector {
				opts := testOptions(t, nil)
				opts.Instances = 2
				opts.Settings = []byte(tc.settings)
				return load(t, path, opts)
			})
		})
	}
}
