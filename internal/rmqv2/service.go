// Package rmqv2 serves the producer half of RocketMQ 5's gRPC protocol
// (apache.rocketmq.v2.MessagingService), so applications that publish with the official
// rocketmq-clients SDKs can set their endpoint to producerd unchanged.
//
// QueryRoute points the client at producerd itself (the address it called); Telemetry
// answers the settings handshake and carries check-backs to the client; SendMessage turns
// v2 messages into core messages and sends them through a Sender (the daemon's producer
// group, so its strategy, limits and metrics apply), transactional ones through
// Transactions; EndTransaction ends those or answers a check-back; RecallMessage recalls a
// timer message; Heartbeat and NotifyClientTermination are acknowledged. Every other
// method of the service, the consumer RPCs among them, answers gRPC UNIMPLEMENTED.
//
// Unary answers always end with gRPC status OK and carry their outcome in the response's
// apache.rocketmq.v2.Status, as the Apache RocketMQ Proxy does; the codes are the ones
// the SDKs map to their exceptions (spec rocketmq-grpc-v2-producer.md §8.3).
package rmqv2

import (
	"context"
	"fmt"
	"net"
	"strconv"
	"time"

	"github.com/hashicorp/go-hclog"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"

	pb "github.com/producerd/producerd/api/rmqv2"
	"github.com/producerd/producerd/core"
	"github.com/producerd/producerd/remoting"
)

// Sender sends messages built by the service. *core.Producer implements it; the daemon
// wraps its producer group with the in-flight limiter and metrics. Errors are classified
// with errors.Is / errors.As (core's and remoting's errors, ErrTooManyRequests,
// ErrUnavailable).
type Sender interface {
	Send(ctx context.Context, m *core.Message) (*core.SendResult, error)
	SendBatch(ctx context.Context, msgs []*core.Message) (*core.SendResult, error)
}

// Recaller is the optional extension of a Sender that recalls timer messages
// (RecallMessage, RocketMQ 5.3.2+): *core.Producer implements it. Without it RecallMessage
// answers NOT_IMPLEMENTED.
type Recaller interface {
	// RecallMessage recalls the timer message of topic whose send answered handle and
	// returns its message id.
	RecallMessage(ctx context.Context, topic, handle string) (string, error)
}

// Options configures a Service.
type Options struct {
	// Sender sends the messages; required.
	Sender Sender
	// MaxBodySize is the largest body accepted, announced to clients in Settings.
	// Default core.DefaultMaxMessageSize (4 MiB).
	MaxBodySize int
	// Logger receives debug logs of sessions; default a null logger.
	Logger hclog.Logger
	// OnInvalid, if set, is called for every SendMessage refused before sending (a
	// malformed request), with the code answered; it must not block.
	OnInvalid func(code pb.Code)
	// Transactions, if set, serves TRANSACTION messages and EndTransaction; without it
	// they are refused (UNSUPPORTED) and routes do not accept the type.
	Transactions Transactions
	// CheckTimeout bounds how long a check-back waits for a client's answer; default
	// DefaultCheckTimeout.
	CheckTimeout time.Duration
	// Auth, if set, is the credential every call must be signed with (the SDKs'
	// authorization header); only AccessKey and SecretKey are used. Nil: no
	// authentication.
	Auth *remoting.Credentials
	// Namespace is the namespace served: that of the producer group the Sender sends
	// through. Calls naming another namespace are refused (FORBIDDEN); "" is accepted.
	Namespace string
	// MaxTelemetryStreams bounds the open Telemetry streams (an SDK client opens one per
	// endpoint); one more is answered TOO_MANY_REQUESTS and ends. Default
	// DefaultMaxTelemetryStreams.
	MaxTelemetryStreams int
	// MaxTopics bounds the topics a client's Settings may name (the daemon sends to no
	// more per group: limits.max_topics); more end the stream with INVALID_ARGUMENT.
	// Default DefaultMaxTopics.
	MaxTopics int
	// MaxBatch bounds the messages of one SendMessage (the daemon passes its in-flight
	// bound, which a larger batch could never pass); more are PAYLOAD_TOO_LARGE before
	// any conversion. Default DefaultMaxBatch.
	MaxBatch int
	// MaxStreamsPerConn bounds the unary calls one connection has open at a time; its
	// Telemetry streams (at most 4) come on top. The sum is gRPC's MaxConcurrentStreams,
	// announced to the client in SETTINGS: the SDKs queue calls past it, and a stream
	// opened past it anyway is reset with REFUSED_STREAM. gRPC buffers up to one request
	// (the receive limit) per open call before a handler sees it, so this bounds what
	// one connection holds. Default DefaultMaxStreamsPerConn.
	MaxStreamsPerConn int
	// RecvGate, if set, is waited for before each unary call receives its request (see
	// RecvGate), so that what gRPC buffers of a connection's requests is bounded by the
	// gate, not by MaxStreamsPerConn requests. Nil: gRPC receives every call's request
	// at once.
	RecvGate RecvGate
}

// Defaults of Options.
const (
	// DefaultMaxTelemetryStreams is the default Options.MaxTelemetryStreams, the
	// daemon's default limits.max_connections: one stream per connected client.
	DefaultMaxTelemetryStreams = 1024
	// DefaultMaxTopics is the default Options.MaxTopics (the daemon's limits.max_topics).
	DefaultMaxTopics = 1000
	// DefaultMaxBatch is the default Options.MaxBatch (the daemon's default
	// max_inflight_messages).
	DefaultMaxBatch = 10000
	// DefaultMaxStreamsPerConn is the default Options.MaxStreamsPerConn, the bound of
	// the daemon's own gRPC ingress.
	DefaultMaxStreamsPerConn = 256
)

// Bounds of one Telemetry stream. Until a client reads, its stream holds one command it
// sent and the answer to the one before, so both are bounded.
const (
	// maxTelemetryPerConn bounds the Telemetry streams of one connection: an SDK client
	// has one (a new one after the old one ended).
	maxTelemetryPerConn = 4
	// maxCommandSize bounds a TelemetryCommand a client sends (Settings of 1000 topics
	// of the longest names are about 200 KiB).
	maxCommandSize = 1 << 20
	// maxHeaderListSize bounds the headers of one call (grpc-go's default is 16 MiB,
	// held for the call's life); the SDKs send under 1 KiB.
	maxHeaderListSize = 64 << 10
	// maxClientIDLength bounds x-mq-client-id, which every open transaction keeps: the
	// SDKs' host@pid@index@time ids are under 300 bytes.
	maxClientIDLength = 1024
)

// Service implements the producer methods of apache.rocketmq.v2.MessagingService. It is
// safe for concurrent use. Close ends the open Telemetry streams.
type Service struct {
	pb.UnimplementedMessagingServiceServer
	opts Options
	done chan struct{}
	tx   txState
}

var _ pb.MessagingServiceServer = (*Service)(nil)

// New validates opts and returns a Service; it does no I/O.
func New(opts Options) (*Service, error) {
	if opts.Sender == nil {
		return nil, fmt.Errorf("rmqv2: Options.Sender is required")
	}
	if opts.MaxBodySize <= 0 {
		opts.MaxBodySize = core.DefaultMaxMessageSize
	}
	if opts.Logger == nil {
		opts.Logger = hclog.NewNullLogger()
	}
	if opts.CheckTimeout <= 0 {
		opts.CheckTimeout = DefaultCheckTimeout
	}
	if opts.MaxTelemetryStreams <= 0 {
		opts.MaxTelemetryStreams = DefaultMaxTelemetryStreams
	}
	if opts.MaxTopics <= 0 {
		opts.MaxTopics = DefaultMaxTopics
	}
	if opts.MaxBatch <= 0 {
		opts.MaxBatch = DefaultMaxBatch
	}
	if opts.MaxStreamsPerConn <= 0 {
		opts.MaxStreamsPerConn = DefaultMaxStreamsPerConn
	}
	s := &Service{opts: opts, done: make(chan struct{})}
	s.tx.sessions = map[string]*session{}
	s.tx.checks = map[string]*orphanCheck{}
	s.tx.perConn = map[string]int{}
	return s, nil
}

// ServerOptions are the options a gRPC server for the service needs: a receive limit
// that fits a batch of largest bodies (at least 32 MiB, as the daemon's ingress), a
// bound on each call's headers and on the calls of one connection
// (Options.MaxStreamsPerConn) and the UNIMPLEMENTED answer for every other method.
func (s *Service) ServerOptions() []grpc.ServerOption {
	return []grpc.ServerOption{
		grpc.MaxRecvMsgSize(max(32<<20, 2*s.opts.MaxBodySize+1<<20)),
		grpc.UnknownServiceHandler(Unimplemented),
		// An SDK multiplexes every send on one HTTP/2 connection; with hundreds in flight
		// the 64 KiB default windows stall the client between window updates. Fixed
		// windows also bound what a connection can buffer in the daemon.
		grpc.InitialWindowSize(256 << 10),
		grpc.InitialConnWindowSize(4 << 20),
		grpc.MaxHeaderListSize(maxHeaderListSize),
		grpc.MaxConcurrentStreams(uint32(min(s.opts.MaxStreamsPerConn, 1<<30) + maxTelemetryPerConn)),
		grpc.ChainUnaryInterceptor(s.recoverUnary),
	}
}

// recoverUnary turns a panic in a handler into gRPC INTERNAL for that call: one
// malformed request must not stop the daemon every application sends through.
func (s *Service) recoverUnary(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (resp any, err error) {
	defer func() {
		if r := recover(); r != nil {
			s.opts.Logger.Error("rmqv2 handler panic", "method", info.FullMethod, "panic", r)
			resp, err = nil, status.Errorf(codes.Internal, "producerd: internal error in %s", info.FullMethod)
		}
	}()
	return handler(ctx, req)
}

// Register registers the service on gs (behind Options.RecvGate when it is set).
func (s *Service) Register(gs *grpc.Server) {
	if s.opts.RecvGate != nil {
		s.register(gs)
		return
	}
	pb.RegisterMessagingServiceServer(gs, s)
}

// Close makes open Telemetry streams end; call it before stopping the gRPC server
// gracefully. It may be called once.
func (s *Service) Close() { close(s.done) }

// brokerName is the one broker producerd advertises: itself.
const brokerName = "producerd"

// acceptTypes are the message types producerd sends. Topics are not checked against their
// message.type attribute (remoting producers are not either). Without Transactions,
// transactional messages are not supported, so the SDKs refuse them before sending.
var (
	acceptTypes   = []pb.MessageType{pb.MessageType_NORMAL, pb.MessageType_FIFO, pb.MessageType_DELAY}
	acceptTypesTx = []pb.MessageType{pb.MessageType_NORMAL, pb.MessageType_FIFO, pb.MessageType_DELAY, pb.MessageType_TRANSACTION}
)

// Settings producerd announces: the Proxy's defaults for the backoff after
// TOO_MANY_REQUESTS (10 ms doubling to 1 s).
var (
	backoffInitial    = 10 * time.Millisecond
	backoffMax        = time.Second
	backoffMultiplier = float32(2)
)

func okStatus() *pb.Status { return &pb.Status{Code: pb.Code_OK, Message: "OK"} }

func newStatus(c pb.Code, format string, args ...any) *pb.Status {
	return &pb.Status{Code: c, Message: fmt.Sprintf(format, args...)}
}

// clientID returns the x-mq-client-id header, which every RPC must carry.
func clientID(ctx context.Context) string { return header(ctx, "x-mq-client-id") }

func errNoClientID() *pb.Status {
	return newStatus(pb.Code_CLIENT_ID_REQUIRED, "the x-mq-client-id header is required")
}

// QueryRoute answers with one writable queue on one broker whose endpoints are the
// address the client called: every send comes back to producerd, and producerd's
// strategy picks the real broker and queue (the client's queue choice is ignored, as by
// the Proxy). Unlike the Proxy, the topic's existence is checked at the first send, where
// producerd also creates topics when the producer group allows it.
func (s *Service) QueryRoute(ctx context.Context, req *pb.QueryRouteRequest) (*pb.QueryRouteResponse, error) {
	if st := s.checkCall(ctx, req.GetTopic()); st != nil {
		return &pb.QueryRouteResponse{Status: st}, nil
	}
	topic := req.GetTopic().GetName()
	if st := checkTopic(topic); st != nil {
		return &pb.QueryRouteResponse{Status: st}, nil
	}
	ep := req.GetEndpoints()
	if ep.GetScheme() == pb.AddressScheme_ADDRESS_SCHEME_UNSPECIFIED || len(ep.GetAddresses()) == 0 {
		// The Proxy fails here; the address this call arrived on is as good.
		ep = localEndpoints(ctx)
		if ep == nil {
			return &pb.QueryRouteResponse{Status: newStatus(pb.Code_ILLEGAL_ACCESS_POINT, "the request names no endpoints")}, nil
		}
	}
	mq := &pb.MessageQueue{
		Topic:              &pb.Resource{ResourceNamespace: req.GetTopic().GetResourceNamespace(), Name: topic},
		Id:                 0,
		Permission:         pb.Permission_WRITE,
		Broker:             &pb.Broker{Name: brokerName, Id: 0, Endpoints: ep},
		AcceptMessageTypes: acceptTypes,
	}
	if s.opts.Transactions != nil {
		mq.AcceptMessageTypes = acceptTypesTx
	}
	return &pb.QueryRouteResponse{Status: okStatus(), MessageQueues: []*pb.MessageQueue{mq}}, nil
}

// localEndpoints is the server address of this call.
func localEndpoints(ctx context.Context) *pb.Endpoints {
	p, ok := peer.FromContext(ctx)
	if !ok || p.LocalAddr == nil {
		return nil
	}
	ta, ok := p.LocalAddr.(*net.TCPAddr)
	if !ok {
		return nil
	}
	scheme := pb.AddressScheme_IPv4
	if ta.IP.To4() == nil {
		scheme = pb.AddressScheme_IPv6
	}
	return &pb.Endpoints{Scheme: scheme, Addresses: []*pb.Address{{Host: ta.IP.String(), Port: int32(ta.Port)}}}
}

// Heartbeat acknowledges a producer's heartbeat. producerd keeps no per-client state, so
// a heartbeat is accepted before the settings handshake too (the Proxy answers 40015
// then); a consumer's is answered UNRECOGNIZED_CLIENT_TYPE.
func (s *Service) Heartbeat(ctx context.Context, req *pb.HeartbeatRequest) (*pb.HeartbeatResponse, error) {
	if st := s.checkCall(ctx, nil); st != nil {
		return &pb.HeartbeatResponse{Status: st}, nil
	}
	switch req.GetClientType() {
	case pb.ClientType_PRODUCER, pb.ClientType_CLIENT_TYPE_UNSPECIFIED: // 5.0.0-5.0.3 send an empty request
		return &pb.HeartbeatResponse{Status: okStatus()}, nil
	}
	return &pb.HeartbeatResponse{Status: newStatus(pb.Code_UNRECOGNIZED_CLIENT_TYPE,
		"producerd is a producer endpoint; client type %s is not served", req.GetClientType())}, nil
}

// NotifyClientTermination acknowledges a client's shutdown.
func (s *Service) NotifyClientTermination(ctx context.Context, _ *pb.NotifyClientTerminationRequest) (*pb.NotifyClientTerminationResponse, error) {
	if st := s.checkCall(ctx, nil); st != nil {
		return &pb.NotifyClientTerminationResponse{Status: st}, nil
	}
	return &pb.NotifyClientTerminationResponse{Status: okStatus()}, nil
}

// Telemetry answers each Settings command with producerd's settings (the client's own,
// with the backoff, body limit, type validation and metrics replaced, as the Proxy does)
// and ignores the client's other commands. Settings without publishing (a consumer's),
// naming more than Options.MaxTopics topics, or a command over maxCommandSize end the
// stream with gRPC INVALID_ARGUMENT. A stream over Options.MaxTelemetryStreams, or over
// maxTelemetryPerConn on its connection, gets TOO_MANY_REQUESTS as a status command and
// ends. The stream ends when the client closes its side, or at Close.
func (s *Service) Telemetry(stream pb.MessagingService_TelemetryServer) error {
	ctx := stream.Context()
	id := clientID(ctx)
	if st := s.checkCall(ctx, nil); st != nil {
		// As the Proxy: the refusal as a command, then the stream ends.
		return stream.Send(&pb.TelemetryCommand{Status: st})
	}
	conn := clientAddr(ctx)
	if why := s.acquireStream(conn); why != "" {
		return stream.Send(&pb.TelemetryCommand{Status: newStatus(pb.Code_TOO_MANY_REQUESTS, "%s", why)})
	}
	defer s.releaseStream(conn)
	ss := s.openSession(id)
	defer s.closeSession(ss)
	in := make(chan *pb.TelemetryCommand)
	errc := make(chan error, 1)
	go func() {
		for {
			cmd, err := stream.Recv()
			if err != nil {
				errc <- err
				return
			}
			if n := proto.Size(cmd); n > maxCommandSize {
				errc <- status.Errorf(codes.InvalidArgument, "a telemetry command of %d bytes; the limit is %d", n, maxCommandSize)
				return
			}
			if cmd.GetSettings() == nil {
				continue // thread_stack_trace, verify_message_result: nothing to do
			}
			select {
			case in <- cmd:
			case <-ctx.Done():
				return
			}
		}
	}()
	for {
		select {
		case <-s.done:
			return nil
		case <-ctx.Done():
			return ctx.Err()
		case err := <-errc:
			if status.Code(err) == codes.InvalidArgument {
				return err // a command refused above
			}
			// The client closed its side (io.EOF) or the stream broke: both end the call.
			return nil
		case cmd := <-ss.out:
			if err := stream.Send(cmd); err != nil {
				return err
			}
		case cmd := <-in:
			settings := cmd.GetSettings()
			answer, err := s.settings(settings)
			if err != nil {
				return err
			}
			s.setTopics(ss, settings.GetPublishing().GetTopics())
			s.opts.Logger.Debug("rmqv2 settings", "client", id, "topics", len(settings.GetPublishing().GetTopics()))
			if err := stream.Send(&pb.TelemetryCommand{Status: okStatus(), Command: &pb.TelemetryCommand_Settings{Settings: answer}}); err != nil {
				return err
			}
		}
	}
}

// settings builds the answer to a client's Settings.
func (s *Service) settings(in *pb.Settings) (*pb.Settings, error) {
	pub := in.GetPublishing()
	if pub == nil || (in.ClientType != nil && in.GetClientType() != pb.ClientType_PRODUCER) {
		return nil, status.Error(codes.InvalidArgument,
			"producerd is a producer endpoint: the settings carry no publishing; consumers need a RocketMQ Proxy")
	}
	if n := len(pub.GetTopics()); n > s.opts.MaxTopics {
		return nil, status.Errorf(codes.InvalidArgument, "the settings name %d topics; this producerd endpoint sends to at most %d", n, s.opts.MaxTopics)
	}
	for _, t := range pub.GetTopics() {
		if st := s.checkNamespace(t.GetResourceNamespace()); st != nil {
			return nil, status.Error(codes.InvalidArgument, st.GetMessage())
		}
	}
	out := proto.Clone(in).(*pb.Settings)
	attempts := in.GetBackoffPolicy().GetMaxAttempts()
	if attempts <= 0 {
		attempts = 3
	}
	out.BackoffPolicy = &pb.RetryPolicy{MaxAttempts: attempts, Strategy: &pb.RetryPolicy_ExponentialBackoff{
		ExponentialBackoff: &pb.ExponentialBackoff{
			Initial: durationpb.New(backoffInitial), Max: durationpb.New(backoffMax), Multiplier: backoffMultiplier,
		}}}
	out.PubSub = &pb.Settings_Publishing{Publishing: &pb.Publishing{
		Topics: pub.GetTopics(), MaxBodySize: int32(min(s.opts.MaxBodySize, 1<<31-1)), ValidateMessageType: true,
	}}
	out.Metric = &pb.Metric{On: false}
	return out, nil
}

// SendMessage validates and converts the request's messages, sends them (one message
// with Send, several as one RocketMQ batch) and answers one entry per message.
func (s *Service) SendMessage(ctx context.Context, req *pb.SendMessageRequest) (*pb.SendMessageResponse, error) {
	var first *pb.Resource
	if len(req.GetMessages()) > 0 {
		first = req.GetMessages()[0].GetTopic()
	}
	if st := s.checkCall(ctx, first); st != nil {
		return &pb.SendMessageResponse{Status: st}, nil
	}
	msgs, st := s.convert(ctx, req.GetMessages(), time.Now())
	if st == nil && isTransaction(req.GetMessages()) {
		st = s.checkTransaction(req.GetMessages())
	}
	if st != nil {
		if s.opts.OnInvalid != nil {
			s.opts.OnInvalid(st.GetCode())
		}
		return &pb.SendMessageResponse{Status: st}, nil
	}
	if isTransaction(req.GetMessages()) {
		h, tx, err := s.opts.Transactions.Begin(ctx, clientID(ctx), msgs[0])
		if err != nil {
			return &pb.SendMessageResponse{Status: statusOf(err)}, nil
		}
		return &pb.SendMessageResponse{Status: okStatus(), Entries: []*pb.SendResultEntry{{
			Status: okStatus(), MessageId: tx.MsgID, TransactionId: h, Offset: tx.TranStateTableOffset}}}, nil
	}
	var (
		res *core.SendResult
		err error
	)
	if len(msgs) == 1 {
		res, err = s.opts.Sender.Send(ctx, msgs[0])
	} else {
		res, err = s.opts.Sender.SendBatch(ctx, msgs)
	}
	if err != nil {
		return &pb.SendMessageResponse{Status: statusOf(err)}, nil
	}
	return &pb.SendMessageResponse{Status: okStatus(), Entries: entries(res, msgs)}, nil
}

// isTransaction reports whether a request carries a TRANSACTION message.
func isTransaction(msgs []*pb.Message) bool {
	for _, m := range msgs {
		if m.GetSystemProperties().GetMessageType() == pb.MessageType_TRANSACTION {
			return true
		}
	}
	return false
}

// checkTransaction refuses what a transactional send cannot be: more than one message (a
// transaction holds one, as in the SDKs) and transactions where none are served.
func (s *Service) checkTransaction(msgs []*pb.Message) *pb.Status {
	switch {
	case s.opts.Transactions == nil:
		return newStatus(pb.Code_UNSUPPORTED, "producerd does not send transactional messages on this listener")
	case len(msgs) != 1:
		return newStatus(pb.Code_MESSAGE_CORRUPTED, "a transactional message is sent alone, not in a batch of %d", len(msgs))
	}
	return nil
}

// entries answers one entry per message. A batch's result carries the ids joined with
// commas and the first message's offset; the Proxy answers one entry for the whole batch,
// which the Java SDK rejects (entry count != message count).
//
// A message the broker stored but did not flush or replicate in time (FLUSH_DISK_TIMEOUT,
// FLUSH_SLAVE_TIMEOUT, SLAVE_NOT_AVAILABLE) is answered OK with the status in the
// message: it is stored, and the Proxy's error codes for it make the SDKs send it again
// and store it twice.
func entries(res *core.SendResult, msgs []*core.Message) []*pb.SendResultEntry {
	st := okStatus()
	if res.Status != core.SendOK {
		st = newStatus(pb.Code_OK, "stored, sendStatus=%s", res.Status)
	}
	out := make([]*pb.SendResultEntry, len(msgs))
	for i, m := range msgs {
		out[i] = &pb.SendResultEntry{Status: st, MessageId: m.UniqKey, Offset: res.QueueOffset + int64(i)}
		if len(msgs) == 1 {
			out[i].TransactionId, out[i].RecallHandle = res.TransactionID, res.RecallHandle
		}
	}
	return out
}

// clientAddr is the client's address for __BORNHOST when the message has no born host.
func clientAddr(ctx context.Context) string {
	if p, ok := peer.FromContext(ctx); ok && p.Addr != nil {
		return p.Addr.String()
	}
	return ""
}

func millis(t time.Time) string { return strconv.FormatInt(t.UnixMilli(), 10) }
