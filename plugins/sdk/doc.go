// # Writing a plugin
//
// A third-party strategy is a constructor from settings plus a Go program whose main
// function calls Serve with it. This one keeps the messages of one sharding key on one
// queue, spreads the others with package pick (round-robin away from a broker that just
// failed) and takes an optional salt from its settings:
//
//	package main
//
//	import (
//		"context"
//		"hash/fnv"
//
//		"github.com/producerd/producerd/plugins/sdk"
//		"github.com/producerd/producerd/plugins/sdk/pick"
//	)
//
//	type settings struct {
//		Salt string `json:"salt"`
//	}
//
//	type byKey struct {
//		salt string
//		rr   *pick.Picker
//	}
//
//	func build(raw []byte) (sdk.Selector, error) {
//		var s settings
//		if err := sdk.DecodeSettings(raw, &s); err != nil {
//			return nil, err // names the key: FILE:LINE in the daemon's config
//		}
//		return &byKey{salt: s.Salt, rr: pick.New(pick.Options{})}, nil
//	}
//
//	func (s *byKey) Describe() sdk.Descriptor {
//		return sdk.Descriptor{Name: "bykey", NeedsMessage: true}
//	}
//
//	func (s *byKey) Select(_ context.Context, sel *sdk.Selection) (int, error) {
//		if m := sel.Message; m != nil && m.ShardingKey != "" {
//			h := fnv.New32a()
//			h.Write([]byte(s.salt + m.ShardingKey))
//			return int(h.Sum32() % uint32(len(sel.Queues))), nil
//		}
//		return s.rr.Pick(sel), nil
//	}
//
//	func main() { sdk.Serve(build) }
//
// A strategy that does not need each message should not answer decisions at all: it
// declares LocalApply and publishes its policy (weights, exclusions) as its health
// table, and the host decides in-process with package pick (see
// plugins/examples/leastlatency). Build it, point the daemon's strategy config at the
// executable (pinned by its SHA-256), and test it with sdktest.Conformance before
// shipping it. Serve handles the handshake, TLS, versioning, settings, logging and exit
// with the host; a panic or error in Select only makes the host fall back for that
// decision.
//
// # What is not here
//
// The host side of the protocol (starting plugin processes, the decision stream,
// deadlines, fallbacks, supervision, hot swap) is package host and its internal
// packages; what both sides share (handshake, protocol versions, the generated
// protocol) is internal to producerd. A plugin author needs none of it: Serve speaks
// the protocol, and package sdktest runs a strategy through the same checks the host
// applies.
package sdk
