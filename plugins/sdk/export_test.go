//go:build !wasip1

package sdk

import (
	"github.com/hashicorp/go-hclog"
	"google.golang.org/grpc"

	"github.com/producerd/producerd/plugins/sdk/internal/strategypb"
)

// RegisterForTest registers impl's strategy service on s, as a plugin process does; impl
// takes no settings.
func RegisterForTest(s *grpc.Server, impl Selector) {
	strategypb.RegisterStrategyServer(s, newServer(NoSettings(func() Selector { return impl }), hclog.NewNullLogger()))
}

// RegisterConstructorForTest registers the strategy service of build on s.
func RegisterConstructorForTest(s *grpc.Server, build Constructor) {
	strategypb.RegisterStrategyServer(s, newServer(build, hclog.NewNullLogger()))
}

// NewRemoteForTest returns a Remote over an established connection.
func NewRemoteForTest(c *grpc.ClientConn) *Remote {
	return &Remote{rpc: strategypb.NewStrategyClient(c)}
}
