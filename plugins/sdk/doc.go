// # Writing a plugin
//
// A third-party strategy is a Go program whose main function calls Serve. This one
// keeps the messages of one sharding key on one queue, spreads the others round-robin
// away from a broker that just failed, and takes an optional salt from its settings:
//
//	package main
//
//	import (
//		"context"
//		"encoding/json"
//		"hash/fnv"
//		"sync/atomic"
//
//		"github.com/producerd/producerd/plugins/sdk"
//	)
//
//	type byKey struct {
//		Salt string `json:"salt"`
//		next atomic.Uint64
//	}
//
//	func (s *byKey) Describe() sdk.Descriptor {
//		return sdk.Descriptor{Name: "bykey", NeedsMessage: true}
//	}
//
//	func (s *byKey) Configure(settings []byte) error {
//		if len(settings) == 0 {
//			return nil
//		}
//		return json.Unmarshal(settings, s)
//	}
//
//	func (s *byKey) Select(_ context.Context, sel *sdk.Selection) (int, error) {
//		n := len(sel.Queues)
//		if m := sel.Message; m != nil && m.ShardingKey != "" {
//			h := fnv.New32a()
//			h.Write([]byte(s.Salt + m.ShardingKey))
//			return int(h.Sum32() % uint32(n)), nil
//		}
//		start := int(s.next.Add(1) % uint64(n))
//		for k := range n {
//			if i := (start + k) % n; sel.Queues[i].Broker != sel.LastBroker {
//				return i, nil
//			}
//		}
//		return start, nil
//	}
//
//	func main() { sdk.Serve(&byKey{}) }
//
// Build it, point the daemon's strategy config at the executable (optionally pinned by
// its SHA-256), and test it with sdktest.Conformance before shipping it. Serve handles
// the handshake, TLS, versioning, settings, logging and exit with the host; a panic or
// error in Select only makes the host fall back for that decision.
//
// # Talking to a plugin (host side)
//
// A host starts the executable with go-plugin (Handshake, PluginSet(nil), gRPC,
// AutoMTLS), dispenses PluginName to get a *Remote, calls Describe and Configure, and
// opens one Session: a long-lived bidirectional stream that carries pipelined
// selections, batched outcomes and the strategy's published health table. Package host
// does all of this, adds deadlines, fallbacks, supervision and hot swap.
package sdk
