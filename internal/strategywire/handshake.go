//go:build !wasip1

package strategywire

import "github.com/hashicorp/go-plugin"

// Handshake is the go-plugin handshake of producerd strategy plugins. The magic cookie
// only keeps a plugin binary from being run by hand by mistake; it is not a security
// measure (AutoMTLS and the optional SHA-256 pin are). ProtocolVersion is go-plugin's
// application protocol version: it changes only with an incompatible change of the
// gRPC service; compatible changes are negotiated in Describe.
var Handshake = plugin.HandshakeConfig{
	ProtocolVersion:  1,
	MagicCookieKey:   "PRODUCERD_STRATEGY_PLUGIN",
	MagicCookieValue: "7c1e4b0a9d2f46e8b3a5producerd-strategy",
}
