//go:build !wasip1

package sdk

import (
	"context"
	"errors"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/go-plugin"
	"google.golang.org/grpc"

	"github.com/producerd/producerd/internal/strategywire"
	"github.com/producerd/producerd/internal/strategywire/strategypb"
)

// grpcPlugin binds the plugin side of the strategy service to go-plugin's gRPC
// transport. The host's side is host/internal/pluginclient.
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

func (p *grpcPlugin) GRPCClient(context.Context, *plugin.GRPCBroker, *grpc.ClientConn) (any, error) {
	return nil, errors.New("sdk: the plugin side has no client")
}

func init() {
	strategywire.RegisterServer = func(s *grpc.Server, build any) {
		strategypb.RegisterStrategyServer(s, newServer(build.(Constructor), nil))
	}
}
