//go:build !wasip1

package strategywire

import "google.golang.org/grpc"

// RegisterServer registers the plugin side of the strategy service on s, serving the
// strategy that build (an sdk.Constructor) makes. Package sdk, which owns the plugin
// side, sets it when it is initialised (outside wasip1); it is nil until a program
// imports sdk. It lets the host's tests run a strategy behind a real gRPC connection
// without starting a process; production plugins get the same server through
// sdk.Serve.
var RegisterServer func(s *grpc.Server, build any)
