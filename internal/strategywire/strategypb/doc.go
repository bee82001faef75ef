// Package strategypb is the generated protobuf and gRPC code of the producerd strategy
// plugin protocol (../proto/strategy.proto). It is internal: plugin authors use the
// contract of package sdk, which translates it on the plugin side; the host translates
// it in host/internal/pluginclient. Regenerate with `go generate ./internal/strategywire`.
package strategypb
