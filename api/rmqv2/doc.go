// Package rmqv2 holds the generated Go code of rmqv2.proto: the producer subset of RocketMQ
// 5's apache.rocketmq.v2.MessagingService (QueryRoute, Heartbeat, SendMessage, Telemetry,
// EndTransaction, NotifyClientTermination, RecallMessage) and the messages they carry, wire-compatible with rocketmq-apis
// 2.0.4. The .proto is producerd's own, written from the wire facts; the generated files
// are committed. Regenerate with `go generate ./api/rmqv2/` (protoc-gen-go and
// protoc-gen-go-grpc are looked up in ../../bin first, then on PATH).
package rmqv2

//go:generate sh -c "PATH=../../bin:$PATH protoc -I . --go_out=. --go_opt=paths=source_relative --go-grpc_out=. --go-grpc_opt=paths=source_relative rmqv2.proto"
