// Package producerdpb holds the generated Go code of api/producerd.proto: the producerd
// ingress (Send, SendStream, SendBatch) and admin services. The generated files are
// committed; regenerate them after editing the .proto with `go generate ./api/...`
// (protoc-gen-go and protoc-gen-go-grpc are looked up in ../../bin first, then on PATH).
package producerdpb

//go:generate sh -c "PATH=../../bin:$PATH protoc -I .. --go_out=. --go_opt=paths=source_relative --go-grpc_out=. --go-grpc_opt=paths=source_relative producerd.proto"
