// Command ingress-echo is the floor of the daemon's single-sender benchmark: a gRPC
// server of producerd's Ingress API whose Send answers at once with a fixed result,
// without a broker behind it. The harness runs the daemon's load client against it
// (sync-1, rows "gRPC hop alone"), so that RESULTS.md shows what one loopback gRPC round
// trip costs on the machine next to what the daemon's round trip costs.
//
// It serves with the daemon's ingress settings (stream and connection windows, stream
// workers, streams per connection) on one P, as producerd's procs = "auto" runs with a
// single sender, and answers the gRPC health check. SIGTERM or SIGINT stops it.
//
//	ingress-echo -addr 127.0.0.1:7390 -unix /tmp/echo.sock
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"net"
	"os"
	"os/signal"
	"runtime"
	"syscall"

	"google.golang.org/grpc"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	"github.com/producerd/producerd/api/producerdpb"
)

// The daemon's ingress settings (internal/daemon/servers.go).
const (
	streamWindow      = 256 << 10
	connWindow        = 1 << 20
	maxStreamsPerConn = 256
	streamWorkers     = 128
)

func main() {
	addr := flag.String("addr", "127.0.0.1:7390", "TCP `address` to serve on")
	unix := flag.String("unix", "", "also serve on this Unix socket `path`")
	procs := flag.Int("procs", 1, "GOMAXPROCS (the daemon runs on one P with one sender)")
	flag.Parse()
	if err := run(*addr, *unix, *procs); err != nil {
		fmt.Fprintln(os.Stderr, "ingress-echo:", err)
		os.Exit(1)
	}
}

func run(addr, unix string, procs int) error {
	if procs > 0 {
		runtime.GOMAXPROCS(procs)
	}
	srv := grpc.NewServer(grpc.InitialWindowSize(streamWindow), grpc.InitialConnWindowSize(connWindow),
		grpc.MaxConcurrentStreams(maxStreamsPerConn), grpc.NumStreamWorkers(streamWorkers))
	producerdpb.RegisterIngressServer(srv, echo{})
	healthpb.RegisterHealthServer(srv, health.NewServer())

	var lns []net.Listener
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	lns = append(lns, ln)
	if unix != "" {
		_ = os.Remove(unix)
		uln, err := net.Listen("unix", unix)
		if err != nil {
			ln.Close()
			return err
		}
		lns = append(lns, uln)
	}
	errs := make(chan error, len(lns))
	for _, l := range lns {
		go func() { errs <- srv.Serve(l) }()
	}
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT)
	select {
	case <-sigs:
		srv.Stop()
		return nil
	case err := <-errs:
		srv.Stop()
		if errors.Is(err, grpc.ErrServerStopped) {
			return nil
		}
		return err
	}
}

// echo answers Send with a fixed result; the other methods are unimplemented.
type echo struct {
	producerdpb.UnimplementedIngressServer
}

// result has the fields and sizes of a daemon's answer for a stored message.
var result = &producerdpb.SendResponse{Result: &producerdpb.SendResult{
	MsgId: "7F0000010A6B1B2C3D4E5F6000000001", OffsetMsgId: "7F00000100002A9F00000000001E8480", Topic: "IT_Bench",
	Broker: "broker-a", QueueId: 3, QueueOffset: 1234567, Status: producerdpb.SendStatus_SEND_STATUS_SEND_OK, Attempts: 1,
}}

func (echo) Send(context.Context, *producerdpb.SendRequest) (*producerdpb.SendResponse, error) {
	return result, nil
}
