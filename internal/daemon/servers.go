package daemon

import (
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"strings"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/keepalive"
	"google.golang.org/grpc/reflection"

	"github.com/producerd/producerd/api/producerdpb"
	"github.com/producerd/producerd/internal/config"
)

// gRPC flow-control windows of the ingress server. Fixed windows (which turn off
// gRPC's bandwidth estimation, which grows them up to 16 MiB) bound what a client can
// push into a stream the daemon does not read: SendStream stops reading at the
// in-flight bound, and then at most streamWindow bytes wait per stream.
const (
	streamWindow = 256 << 10
	// maxHeaderBytes bounds an HTTP request's headers (net/http's default is 1 MiB).
	maxHeaderBytes    = 64 << 10
	connWindow        = 1 << 20
	maxStreamsPerConn = 256
	// streamWorkers is gRPC's pool of goroutines that run calls (beyond it a call gets a
	// new goroutine, as without the pool): a pooled goroutine keeps the stack a call grew,
	// where a new one copies its stack as it grows (copystack was 6 % of the daemon's
	// CPU with 64 senders; the pool took 36 to 32-33 µs per message, harness sync-64).
	streamWorkers = 128
)

func loadTLS(t config.TLS) (*tls.Config, error) {
	if !t.Enabled() {
		return nil, nil
	}
	cert, err := tls.LoadX509KeyPair(t.Cert, t.Key)
	if err != nil {
		return nil, err
	}
	return &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}, nil
}

// listen opens the listeners and starts serving.
func (d *Daemon) listen(cfg *config.Config) error {
	ingTLS, err := loadTLS(cfg.Ingress.TLS)
	if err != nil {
		return fmt.Errorf("daemon: ingress TLS: %w", err)
	}
	admTLS, err := loadTLS(cfg.Admin.TLS)
	if err != nil {
		return fmt.Errorf("daemon: admin TLS: %w", err)
	}
	if cfg.Ingress.GRPC != "" {
		if d.grpcLn, err = net.Listen("tcp", cfg.Ingress.GRPC); err != nil {
			return fmt.Errorf("daemon: ingress grpc: %w", err)
		}
	}
	if cfg.Ingress.HTTP != "" {
		if d.httpLn, err = net.Listen("tcp", cfg.Ingress.HTTP); err != nil {
			return fmt.Errorf("daemon: ingress http: %w", err)
		}
	}
	if cfg.Admin.Listen != "" {
		if d.adminLn, err = net.Listen("tcp", cfg.Admin.Listen); err != nil {
			return fmt.Errorf("daemon: admin: %w", err)
		}
	}
	if cfg.Ingress.Unix != "" {
		if d.unixLn, err = listenUnix(cfg.Ingress.Unix, os.FileMode(cfg.Ingress.UnixMode), cfg.Limits.ReadHeaderTimeout); err != nil {
			return err
		}
	}

	if d.adminLn != nil && cfg.Admin.Token == "" {
		if err := d.generateToken(tokenPath(cfg, d.adminLn.Addr().String())); err != nil {
			return err
		}
	}

	d.health = health.NewServer()
	d.adminHealth = health.NewServer()
	d.setServing(true)

	lim := cfg.Limits
	perListener := d.connectionCap(lim.MaxConnections)
	for _, ln := range []*net.Listener{&d.grpcLn, &d.httpLn, &d.adminLn} {
		if *ln != nil {
			*ln = newLimitListener(*ln, perListener)
		}
	}
	if d.unixLn != nil {
		d.unixLn.start(perListener)
	}
	if d.grpcLn != nil || d.unixLn != nil {
		opts := append(grpcConnOptions(lim), grpc.MaxRecvMsgSize(int(lim.MaxGRPCMessageSize)), grpc.ForceServerCodecV2(ingressCodec{}),
			grpc.InitialWindowSize(streamWindow), grpc.InitialConnWindowSize(connWindow), grpc.MaxConcurrentStreams(maxStreamsPerConn),
			grpc.NumStreamWorkers(streamWorkers))
		if ingTLS != nil {
			opts = append(opts, grpc.Creds(credentials.NewTLS(ingTLS)))
		}
		d.grpcSrv = grpc.NewServer(opts...)
		d.grpcSrv.RegisterService(d.ingressDesc(), &ingress{d: d})
		healthpb.RegisterHealthServer(d.grpcSrv, d.health)
		reflection.Register(d.grpcSrv)
		if d.grpcLn != nil {
			d.serve("ingress grpc", func() error { return d.grpcSrv.Serve(d.grpcLn) })
		}
		if d.unixLn != nil {
			d.serve("ingress unix grpc", func() error { return d.grpcSrv.Serve(d.unixLn.grpc) })
		}
	}
	if d.httpLn != nil || d.unixLn != nil {
		loopback := d.httpLn == nil || config.IsLoopback(d.httpLn.Addr().String()) // a Unix socket is local
		d.httpSrv = &http.Server{Handler: d.ingressGuard(loopback, d.ingressHTTP()), ReadHeaderTimeout: lim.ReadHeaderTimeout, ReadTimeout: lim.ReadTimeout,
			IdleTimeout: lim.IdleTimeout, MaxHeaderBytes: maxHeaderBytes, TLSConfig: ingTLS,
			ErrorLog: d.log.Named("http").StandardLogger(nil)}
		if d.httpLn != nil {
			d.serve("ingress http", func() error { return serveHTTP(d.httpSrv, d.httpLn, ingTLS != nil) })
		}
		if d.unixLn != nil {
			d.serve("ingress unix http", func() error { return serveHTTP(d.httpSrv, d.unixLn.http, ingTLS != nil) })
		}
	}
	if d.adminLn != nil {
		d.adminGRPC = grpc.NewServer(grpc.ChainUnaryInterceptor(d.adminAuth))
		producerdpb.RegisterAdminServer(d.adminGRPC, &admin{d: d})
		healthpb.RegisterHealthServer(d.adminGRPC, d.adminHealth)
		reflection.Register(d.adminGRPC)
		// One listener for gRPC and HTTP: HTTP/2 requests with a gRPC content type go
		// to the gRPC server, everything else to the HTTP mux. Without TLS the server
		// speaks HTTP/2 with prior knowledge (h2c), as gRPC clients do.
		mux := d.browserGuard(config.IsLoopback(d.adminLn.Addr().String()), d.adminMux())
		h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.ProtoMajor == 2 && strings.HasPrefix(r.Header.Get("Content-Type"), "application/grpc") {
				d.adminGRPC.ServeHTTP(w, r)
				return
			}
			mux.ServeHTTP(w, r)
		})
		var protos http.Protocols
		protos.SetHTTP1(true)
		protos.SetHTTP2(true)
		protos.SetUnencryptedHTTP2(admTLS == nil)
		d.adminHTTP = &http.Server{Handler: h, ReadHeaderTimeout: lim.ReadHeaderTimeout, ReadTimeout: lim.ReadTimeout, IdleTimeout: lim.IdleTimeout,
			MaxHeaderBytes: maxHeaderBytes, TLSConfig: admTLS, Protocols: &protos,
			ErrorLog: d.log.Named("admin").StandardLogger(nil)}
		d.serve("admin", func() error { return serveHTTP(d.adminHTTP, d.adminLn, admTLS != nil) })
	}
	return d.listenRMQv2(cfg, ingTLS)
}

// grpcConnOptions are the connection limits of an ingress gRPC server: the HTTP/2
// handshake within read_header_timeout; a connection without a call for idle_timeout
// is told to go away (GOAWAY) and closed, so idle connections cannot hold every
// max_connections slot; a connection silent for keepalive_time is pinged and closed
// when the answer does not come within keepalive_timeout.
func grpcConnOptions(lim config.Limits) []grpc.ServerOption {
	return []grpc.ServerOption{grpc.ConnectionTimeout(lim.ReadHeaderTimeout),
		grpc.KeepaliveParams(keepalive.ServerParameters{MaxConnectionIdle: lim.IdleTimeout, Time: lim.KeepaliveTime, Timeout: lim.KeepaliveTimeout})}
}

// serveHTTP serves ln; useTLS is decided by the caller, since Serve may set s.TLSConfig
// (HTTP/2 setup) while a second listener of the same server starts.
func serveHTTP(s *http.Server, ln net.Listener, useTLS bool) error {
	if useTLS {
		return s.ServeTLS(ln, "", "")
	}
	return s.Serve(ln)
}

// serve runs a server until it is stopped; an unexpected end is logged.
func (d *Daemon) serve(name string, f func() error) {
	d.serveWG.Go(func() {
		err := f()
		if err != nil && !errors.Is(err, http.ErrServerClosed) && !errors.Is(err, grpc.ErrServerStopped) && !d.shutdown.Load() {
			d.log.Error("server stopped", "server", name, "error", err)
		}
	})
}

// connectionCap is limits.max_connections, lowered when three listeners at that cap
// would use up the process's descriptor limit (then the brokers and plugins could not
// get one): each listener gets a quarter of the descriptors above a reserve of 64.
func (d *Daemon) connectionCap(configured int) int {
	fit, nofile, lowered := connectionFit(configured)
	if lowered {
		d.log.Warn("limits.max_connections lowered to fit the descriptor limit (ulimit -n)", "configured", configured, "used", fit, "nofile", nofile)
	}
	return fit
}
