package strategywire

// The generated protocol code is committed; regenerate it after editing
// proto/strategy.proto. protoc-gen-go and protoc-gen-go-grpc are looked up in ../../bin
// first (install them with GOBIN=$PWD/bin go install ...), then on PATH.
//go:generate sh -c "PATH=../../bin:$PATH protoc -I proto --go_out=strategypb --go_opt=paths=source_relative --go-grpc_out=strategypb --go-grpc_opt=paths=source_relative strategy.proto"
