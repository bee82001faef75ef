package daemon

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"sync"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	pb "github.com/producerd/producerd/api/rmqv2"
	"github.com/producerd/producerd/core"
	"github.com/producerd/producerd/internal/config"
	"github.com/producerd/producerd/internal/rmqv2"
)

// apiRMQv2 labels the apache.rocketmq.v2 ingress in metrics.
const apiRMQv2 = "rocketmq_grpc"

// rmqv2Ingress is the third ingress listener: the producer half of RocketMQ 5's
// apache.rocketmq.v2.MessagingService, for the official rocketmq-clients SDKs.
type rmqv2Ingress struct {
	ln  net.Listener
	srv *grpc.Server
	svc *rmqv2.Service
}

// listenRMQv2 opens [ingress] rocketmq_grpc_listen (with the ingress TLS) and serves it;
// nothing when it is empty.
func (d *Daemon) listenRMQv2(cfg *config.Config, tlsCfg *tls.Config) error {
	addr := cfg.Ingress.RocketMQGRPC
	if addr == "" {
		return nil
	}
	maxBody, namespace := core.DefaultMaxMessageSize, ""
	for _, p := range cfg.Producers {
		if p.Group == cfg.Ingress.RocketMQGRPCGroup || (cfg.Ingress.RocketMQGRPCGroup == "" && len(cfg.Producers) == 1) {
			if p.MaxMessageSize > 0 {
				maxBody = int(p.MaxMessageSize)
			}
			namespace = p.Namespace
		}
	}
	svc, err := rmqv2.New(rmqv2.Options{Sender: &rmqv2Sender{d: d, group: cfg.Ingress.RocketMQGRPCGroup},
		MaxBodySize: maxBody, Logger: d.log.Named("rmqv2"),
		OnInvalid:    func(pb.Code) { d.met.rejected.WithLabelValues(apiRMQv2, "invalid").Inc() },
		Transactions: &rmqv2Tx{d: d, group: cfg.Ingress.RocketMQGRPCGroup},
		Auth:         cfg.Ingress.RocketMQGRPCAuth, Namespace: namespace,
		// One Telemetry stream per connected client; Settings name no more topics than
		// the daemon tracks.
		MaxTelemetryStreams: cfg.Limits.MaxConnections, MaxTopics: cfg.Limits.MaxTopics,
		MaxBatch: cfg.Daemon.MaxInflightMessages,
		// As on the daemon's own gRPC ingress; more calls than the daemon takes in
		// flight would only be refused.
		MaxStreamsPerConn: min(maxStreamsPerConn, cfg.Daemon.MaxInflightMessages),
		// recvPerConn requests of a connection received at a time, as on the daemon's
		// own gRPC ingress (grpcframes.go).
		RecvGate: newRecvGate().turn})
	if err != nil {
		return err
	}
	d.tx.mu.Lock()
	d.tx.v2check = svc.CheckTransaction
	d.tx.mu.Unlock()
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("daemon: ingress rocketmq_grpc_listen: %w", err)
	}
	lim := cfg.Limits
	ln = newLimitListener(ln, d.connectionCap(lim.MaxConnections))
	// The ingress limits apply (the later options override the service's defaults).
	opts := append(svc.ServerOptions(), grpc.MaxRecvMsgSize(int(lim.MaxGRPCMessageSize)))
	opts = append(opts, grpcConnOptions(lim)...)
	if tlsCfg != nil {
		opts = append(opts, grpc.Creds(credentials.NewTLS(tlsCfg)))
	}
	srv := grpc.NewServer(opts...)
	svc.Register(srv)
	healthpb.RegisterHealthServer(srv, d.health)
	d.rmq = &rmqv2Ingress{ln: ln, srv: srv, svc: svc}
	d.log.Info("rocketmq grpc ingress", "addr", ln.Addr().String(), "group", cfg.Ingress.RocketMQGRPCGroup,
		"namespace", namespace, "authentication", cfg.Ingress.RocketMQGRPCAuth != nil)
	d.serve("ingress rocketmq grpc", func() error { return srv.Serve(ln) })
	return nil
}

// RocketMQGRPCAddr returns the bound apache.rocketmq.v2 address ("" when off).
func (d *Daemon) RocketMQGRPCAddr() string {
	if d.rmq == nil {
		return ""
	}
	return addrOf(d.rmq.ln)
}

// stopRMQv2 ends the Telemetry streams and stops the server gracefully (forcefully at
// ctx's end), in wg.
func (d *Daemon) stopRMQv2(ctx context.Context, wg *sync.WaitGroup) {
	if d.rmq == nil {
		return
	}
	d.rmq.svc.Close()
	wg.Go(func() {
		done := make(chan struct{})
		go func() { d.rmq.srv.GracefulStop(); close(done) }()
		select {
		case <-done:
		case <-ctx.Done():
			d.rmq.srv.Stop()
			<-done
		}
	})
}

// rmqv2Sender sends the v2 ingress's messages through a producer group with the
// daemon's in-flight limiter and metrics, as every other ingress does.
type rmqv2Sender struct {
	d     *Daemon
	group string
}

var _ rmqv2.Sender = (*rmqv2Sender)(nil)

func (s *rmqv2Sender) Send(ctx context.Context, m *core.Message) (*core.SendResult, error) {
	return s.send(ctx, m.Topic, []*core.Message{m})
}

func (s *rmqv2Sender) SendBatch(ctx context.Context, msgs []*core.Message) (*core.SendResult, error) {
	return s.send(ctx, msgs[0].Topic, msgs)
}

// RecallMessage implements rmqv2.Recaller through the group's producer. It is admitted
// as a send (limits.max_topics, the in-flight bound): core keeps a route for every topic
// it is asked about, and the handle is the client's to forge.
func (s *rmqv2Sender) RecallMessage(ctx context.Context, topic, handle string) (string, error) {
	g, err := s.d.admitRMQv2(s.group, topic)
	if err != nil {
		return "", err
	}
	size := int64(len(topic) + len(handle))
	if err := s.d.acquireRMQv2(1, size); err != nil {
		return "", err
	}
	defer s.d.limit.release(1, size)
	return g.prod.RecallMessage(ctx, topic, handle)
}

func (s *rmqv2Sender) send(ctx context.Context, topic string, msgs []*core.Message) (*core.SendResult, error) {
	d := s.d
	g, err := d.admitRMQv2(s.group, topic)
	if err != nil {
		return nil, err
	}
	var size int64
	for _, m := range msgs {
		size += messageSize(m)
	}
	if err := d.acquireRMQv2(len(msgs), size); err != nil {
		return nil, err
	}
	defer d.limit.release(len(msgs), size)
	start := time.Now()
	var res *core.SendResult
	if len(msgs) == 1 {
		res, err = g.prod.Send(ctx, msgs[0])
	} else {
		res, err = g.prod.SendBatch(ctx, msgs)
	}
	attempts := 0
	if res != nil {
		attempts = res.Attempts
	}
	d.finished(apiRMQv2, g, topic, start, attempts, err)
	return res, err
}

// admitRMQv2 admits a v2 call (send, transaction begin, recall) on topic through group
// as every API admits a send: the group known and the topic within limits.max_topics.
// The caller then takes its in-flight slot with acquireRMQv2 (a begin with
// txRouter.start), charged messageSize, the rule of every API. A refusal is counted and
// marked for the v2 service (rmqv2Refusal).
func (d *Daemon) admitRMQv2(group, topic string) (*group, error) {
	g, err := d.lookup(group)
	if err != nil {
		return nil, rmqv2Refusal(d.reject(apiRMQv2, err))
	}
	if err := d.admitTopic(g, topic); err != nil {
		return nil, rmqv2Refusal(d.reject(apiRMQv2, err))
	}
	return g, nil
}

// acquireRMQv2 takes n messages of size bytes from the in-flight limiter; a refusal is
// counted and marked for the v2 service.
func (d *Daemon) acquireRMQv2(n int, size int64) error {
	if err := d.limit.acquire(n, size); err != nil {
		return rmqv2Refusal(d.reject(apiRMQv2, err))
	}
	return nil
}

// rmqv2Refusal marks the daemon's refusals with the sentinels the v2 service answers as
// codes the SDKs retry: over a bound (in flight, topics) is TOO_MANY_REQUESTS, draining
// is INTERNAL_SERVER_ERROR; anything else stays as it is.
func rmqv2Refusal(err error) error {
	switch {
	case errors.Is(err, errBusy), errors.Is(err, errTooManyTx):
		return fmt.Errorf("%w: %w", rmqv2.ErrTooManyRequests, err)
	case errors.Is(err, errDraining):
		return fmt.Errorf("%w: %w", rmqv2.ErrUnavailable, err)
	}
	return err
}
