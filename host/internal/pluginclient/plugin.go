// Package pluginclient is the host side of the strategy plugin protocol: the go-plugin
// client plugin (PluginSet), Remote (Describe, Configure, Open) and Session, the one
// long-lived decision stream to a plugin process. The plugin side is package sdk
// (sdk.Serve); what both share is in internal/strategywire. Package host supervises
// plugin processes on top of it.
package pluginclient

import (
	"context"

	"github.com/hashicorp/go-plugin"
	"google.golang.org/grpc"

	"github.com/producerd/producerd/internal/strategywire"
	"github.com/producerd/producerd/internal/strategywire/strategypb"
)

// PluginSet returns the go-plugin plugin set a host starts strategy plugins with
// (together with strategywire.Handshake). Dispensing strategywire.PluginName from it
// yields a *Remote.
func PluginSet() plugin.PluginSet {
	return plugin.PluginSet{strategywire.PluginName: &grpcPlugin{}}
}

// grpcPlugin binds the host side of the strategy service to go-plugin's gRPC
// transport. As a server it registers nothing (a plugin process gets its server from
// sdk.Serve): a process serving it completes go-plugin's handshake but answers no
// strategy call, which is what tests of handshake failures need.
type grpcPlugin struct {
	plugin.NetRPCUnsupportedPlugin
}

var _ plugin.GRPCPlugin = (*grpcPlugin)(nil)

func (p *grpcPlugin) GRPCServer(*plugin.GRPCBroker, *grpc.Server) error { return nil }

func (p *grpcPlugin) GRPCClient(_ context.Context, _ *plugin.GRPCBroker, c *grpc.ClientConn) (any, error) {
	return NewRemote(c), nil
}

// NewRemote returns a Remote over an established connection to a plugin's strategy
// service (go-plugin's client does this on Dispense; tests dial one themselves).
func NewRemote(c *grpc.ClientConn) *Remote {
	return &Remote{rpc: strategypb.NewStrategyClient(c)}
}
