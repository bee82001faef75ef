//go:build !wasip1

package sdk

import (
	"context"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/go-plugin"
	"google.golang.org/grpc"

	"github.com/producerd/producerd/plugins/sdk/internal/strategypb"
)

// Protocol constants shared by Serve (the plugin side) and Remote (the host side).
const (
	// ProtocolVersion is the strategy protocol version this SDK speaks; host and plugin
	// agree on it in Describe. It changes when the session messages change meaning.
	// Version 2 adds BrokerHealth.weight (a version-1 peer sends none: unweighted) and
	// DescribeRequest.settings: the plugin builds its strategy from them in Describe
	// and gets no Configure.
	ProtocolVersion = 2
	// MinProtocolVersion is the oldest strategy protocol version this SDK still speaks.
	MinProtocolVersion = 1
	// PluginName is the name a strategy is served and dispensed under.
	PluginName = "strategy"
	// RouteVersionsKept is how many route versions of one topic a plugin session keeps
	// (the most recently defined ones). A selection that refers to an older one is
	// answered with ErrRouteUnknown and the host sends the queue list again.
	RouteVersionsKept = 4
	// RouteTopicsKept bounds the topics a plugin session keeps routes for; past it the
	// session forgets all routes and the host re-sends them as needed.
	RouteTopicsKept = 4096
)

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

// PluginSet returns the go-plugin plugin set of a strategy. The plugin side passes the
// constructor of the strategy it serves (Serve does this); the host passes nil and
// dispenses PluginName to get a *Remote.
func PluginSet(build Constructor) plugin.PluginSet {
	return plugin.PluginSet{PluginName: &grpcPlugin{build: build}}
}

// grpcPlugin binds the strategy service to go-plugin's gRPC transport.
type grpcPlugin struct {
	plugin.NetRPCUnsupportedPlugin
	build Constructor
	log   hclog.Logger
}

var _ plugin.GRPCPlugin = (*grpcPlugin)(nil)

func (p *grpcPlugin) GRPCServer(_ *plugin.GRPCBroker, s *grpc.Server) error {
	strategypb.RegisterStrategyServer(s, newServer(p.build, p.log))
	return nil
}

func (p *grpcPlugin) GRPCClient(_ context.Context, _ *plugin.GRPCBroker, c *grpc.ClientConn) (any, error) {
	return &Remote{rpc: strategypb.NewStrategyClient(c)}, nil
}
