// Package strategypb is the generated protobuf and gRPC code of the producerd strategy
// plugin protocol (proto/strategy.proto). It is internal: plugin authors and the host
// use the translated types of package sdk. Regenerate with `go generate ./plugins/sdk`.
package strategypb
