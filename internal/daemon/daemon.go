// Package daemon is producerd's daemon: it turns a config.Config into running producer
// groups (core.Producer, one client instance), their strategies (package host, plugins
// out of process), the ingress API (gRPC and HTTP/JSON), the admin API (gRPC and HTTP on
// one listener, with /metrics) and the operations on them: reload, swap, drain and a
// graceful shutdown.
//
// Every message accepted by an API holds a slot of a daemon-wide limiter until it is
// answered; over the bound the unary APIs answer RESOURCE_EXHAUSTED (HTTP 429) at once,
// and SendStream stops reading until room appears (a streamed message holds its slot
// until its ack is written). A message is never logged, nor is the admin token.
package daemon

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-hclog"
	"go.opentelemetry.io/otel/trace"
	"google.golang.org/grpc"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	"github.com/producerd/producerd/core"
	"github.com/producerd/producerd/internal/config"
	"github.com/producerd/producerd/remoting"
)

// Options configures a Daemon.
type Options struct {
	// Config is the validated configuration; required.
	Config *config.Config
	// Logger receives the daemon's logs. Default: a new hclog logger on stderr with the
	// config's level and format.
	Logger hclog.Logger
	// Version is reported by Status. Default "(devel)".
	Version string
	// PluginCommand starts a built-in strategy out of process; the name of the
	// built-in is appended. Default [host.SelfExecutable(), "plugin"].
	PluginCommand []string
	// ReloadConfig reads the config again for Reload (SIGHUP and the admin call).
	// Default config.Load(Config.File).
	ReloadConfig func() (*config.Config, error)
	// TracerProvider, when set, receives the spans whatever [tracing] says (tests use
	// the SDK's in-memory exporter). Default: per [tracing], OTLP/gRPC or none.
	TracerProvider trace.TracerProvider
}

// Daemon is a running producerd. Create it with New, then Start; Shutdown stops it.
// Reload, Swap, Drain and Resume are safe to call concurrently with traffic and each
// other (they are serialized).
type Daemon struct {
	opts    Options
	log     hclog.Logger
	met     *metrics
	limit   *limiter
	tx      *txRouter // transactions.go
	started time.Time
	failLog logLimiter  // failed-send log lines (faillog.go)
	trace   *tracing    // OpenTelemetry spans (tracing.go)
	plugins *pluginPool // plugin processes shared by the groups (strategy.go)

	cfg    atomic.Pointer[config.Config]
	cfgGen atomic.Int64
	groups atomic.Pointer[map[string]*group]

	// opMu serializes Start, Reload, Swap, Drain, Resume and Shutdown.
	opMu sync.Mutex

	grpcSrv, adminGRPC  *grpc.Server
	httpSrv, adminHTTP  *http.Server
	grpcLn, httpLn      net.Listener
	unixLn              *unixIngress // ingress.unix, or nil
	adminLn             net.Listener
	health, adminHealth *health.Server
	rmq                 *rmqv2Ingress // [ingress] rocketmq_grpc_listen, nil when off

	// stopping is closed when shutdown has waited for in-flight messages: open streams
	// end then.
	stopping chan struct{}
	// hardStop is closed when the shutdown deadline passed with messages in flight:
	// streams then answer what they still hold with UNAVAILABLE.
	hardStop chan struct{}
	shutdown atomic.Bool
	serveWG  sync.WaitGroup

	// genToken is the admin token generated when none is configured (at start, or by a
	// reload that removes the configured one), written to genTokenPath (under opMu).
	genToken     atomic.Pointer[string]
	genTokenPath string
	authLog      logLimiter

	readiness readiness
	serving   atomic.Bool // not draining
}

// group is one producer group and its strategy host.
type group struct {
	name string
	cfg  config.Producer
	prod *core.Producer
	host strategyHost
	// tracer writes the message trace (message_trace); nil when off.
	tracer *core.MsgTracer
	// topics bounds the topics the group sends to (limits.max_topics).
	topics *topicTracker

	mu       sync.Mutex
	strategy string           // name of the active strategy
	spec     *config.Strategy // what it runs
}

func (g *group) strategyName() string {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.strategy
}

func (g *group) strategyStatus() strategyState {
	st := g.host.Status()
	if st.Name == "" {
		st.Name = g.strategyName()
	}
	return st
}

// New validates opts and prepares a daemon; it does no I/O.
func New(opts Options) (*Daemon, error) {
	if opts.Config == nil {
		return nil, errors.New("daemon: Options.Config is required")
	}
	if opts.Version == "" {
		opts.Version = "(devel)"
	}
	if opts.Logger == nil {
		opts.Logger = NewLogger(opts.Config.Daemon.LogLevel, opts.Config.Daemon.LogFormat, os.Stderr)
	}
	if len(opts.PluginCommand) == 0 {
		exe, err := selfExecutable()
		if err != nil {
			return nil, fmt.Errorf("daemon: cannot find the producerd binary for built-in plugins: %w", err)
		}
		opts.PluginCommand = []string{exe, "plugin"}
	}
	if opts.ReloadConfig == nil {
		file := opts.Config.File
		opts.ReloadConfig = func() (*config.Config, error) { return config.Load(file) }
	}
	d := &Daemon{opts: opts, log: opts.Logger, stopping: make(chan struct{}), hardStop: make(chan struct{})}
	d.plugins = newPluginPool(d.log)
	d.limit = newLimiter(opts.Config.Daemon.MaxInflightMessages, opts.Config.Daemon.MaxInflightBytes)
	d.met = newMetrics(d)
	d.tx = newTxRouter(d)
	d.met.reg.MustRegister(&msgTraceCollector{d: d})
	tr, err := newTracing(opts.Config.Tracing, opts.TracerProvider, opts.Version)
	if err != nil {
		return nil, err
	}
	d.trace = tr
	d.cfg.Store(opts.Config)
	empty := map[string]*group{}
	d.groups.Store(&empty)
	return d, nil
}

// Config returns the configuration in force.
func (d *Daemon) Config() *config.Config { return d.cfg.Load() }

func (d *Daemon) groupMap() map[string]*group { return *d.groups.Load() }

// groupList returns the groups sorted by name.
func (d *Daemon) groupList() []*group {
	m := d.groupMap()
	out := make([]*group, 0, len(m))
	for _, g := range m {
		out = append(out, g)
	}
	slices.SortFunc(out, func(a, b *group) int { return compareStrings(a.name, b.name) })
	return out
}

func compareStrings(a, b string) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// lookup returns the group a message names ("" = the only group).
func (d *Daemon) lookup(name string) (*group, error) {
	m := d.groupMap()
	if name == "" {
		if len(m) == 1 {
			for _, g := range m {
				return g, nil
			}
		}
		return nil, fmt.Errorf("%w: the daemon has %d groups; name one in producer_group", ErrUnknownGroup, len(m))
	}
	if g, ok := m[name]; ok {
		return g, nil
	}
	return nil, fmt.Errorf("%w %q", ErrUnknownGroup, name)
}

// Start starts the strategy hosts and producer groups, then opens the listeners. On
// error everything started is stopped again.
func (d *Daemon) Start(ctx context.Context) (err error) {
	d.opMu.Lock()
	defer d.opMu.Unlock()
	d.started = time.Now()
	cfg := d.Config()
	for _, w := range cfg.Warnings() {
		d.log.Warn("insecure setting in the configuration", "warning", w)
	}
	defer func() {
		if err != nil {
			d.closeListeners()
			d.closeGroups(context.Background(), d.groupList())
		}
	}()
	groups := make(map[string]*group, len(cfg.Producers))
	for _, p := range cfg.Producers {
		g, err := d.startGroup(ctx, cfg, p)
		if err != nil {
			d.closeGroups(context.Background(), mapValues(groups))
			return err
		}
		groups[p.Group] = g
	}
	d.groups.Store(&groups)
	if err := d.listen(cfg); err != nil {
		return err
	}
	d.warnExposure(cfg)
	d.startReadiness(ctx)
	d.log.Info("producerd started", "groups", len(groups), "ingress_grpc", addrOf(d.grpcLn),
		"ingress_http", addrOf(d.httpLn), "ingress_unix", cfg.Ingress.Unix, "admin", addrOf(d.adminLn))
	return nil
}

func mapValues(m map[string]*group) []*group {
	out := make([]*group, 0, len(m))
	for _, g := range m {
		out = append(out, g)
	}
	return out
}

func addrOf(ln net.Listener) string {
	if ln == nil {
		return ""
	}
	return ln.Addr().String()
}

// Requests returns how many sends (a message, a batch or a stream's message) the
// daemon admitted so far and how many of them while others were in flight: the load
// package internal/procs adapts the runtime's Ps to.
func (d *Daemon) Requests() (admitted, overlapped uint64) { return d.limit.requests() }

// Addrs returns the bound addresses ("" for a disabled listener).
func (d *Daemon) Addrs() (ingressGRPC, ingressHTTP, admin string) {
	return addrOf(d.grpcLn), addrOf(d.httpLn), addrOf(d.adminLn)
}

// startGroup starts a group's strategy, then its producer.
func (d *Daemon) startGroup(ctx context.Context, cfg *config.Config, p config.Producer) (*group, error) {
	spec := cfg.Strategies[p.Strategy]
	d.met.strategySeries(p.Group, p.Strategy)
	h, err := d.newHost(ctx, p.Group, spec)
	if err != nil {
		return nil, fmt.Errorf("daemon: group %s: strategy %s: %w", p.Group, p.Strategy, err)
	}
	pc, err := d.producerConfig(cfg, p)
	if err != nil {
		_ = h.Close()
		return nil, err
	}
	pc.Strategy = h.Selector()
	tracer, err := d.newMsgTracer(pc, p)
	if err != nil {
		_ = h.Close()
		return nil, fmt.Errorf("daemon: group %s: message trace: %w", p.Group, err)
	}
	if tracer != nil {
		pc.Hooks.OnStored = tracer.Record
	}
	prod, err := core.NewProducer(pc)
	if err != nil {
		_ = h.Close()
		if tracer != nil {
			_ = tracer.Close(context.Background())
		}
		return nil, fmt.Errorf("daemon: group %s: %w", p.Group, err)
	}
	prod.SetTransactionChecker(d.tx.checker(p.Group))
	d.log.Info("producer group started", "group", p.Group, "client", prod.Client().ID(), "strategy", p.Strategy)
	topics := newTopicTracker(cfg.Limits.MaxTopics, cfg.Limits.TopicIdle, func(topic string) { d.met.forgetTopic(p.Group, topic); prod.ForgetTopic(topic) })
	return &group{name: p.Group, cfg: p, prod: prod, host: h, tracer: tracer, strategy: p.Strategy, spec: spec, topics: topics}, nil
}

// producerConfig maps a [[producer]] table and the [client] table to core's config.
func (d *Daemon) producerConfig(cfg *config.Config, p config.Producer) (core.ProducerConfig, error) {
	c := cfg.Client
	rc := remoting.Config{
		ConnectTimeout: c.ConnectTimeout, IdleTimeout: c.IdleTimeout, MaxFrameSize: int(c.MaxFrameSize),
		Hooks: d.met.remotingHooks(), Logger: d.log.Named("remoting"), Credentials: c.ACL,
	}
	if c.Serialize == "rocketmq" {
		rc.Serialize = remoting.RocketMQ
	}
	if c.TLS {
		tc := &tls.Config{ServerName: c.ServerName, InsecureSkipVerify: c.InsecureSkipVerify, MinVersion: tls.VersionTLS12} //nolint:gosec // opt-in, documented
		if c.TLSCA != "" {
			pem, err := os.ReadFile(c.TLSCA)
			if err != nil {
				return core.ProducerConfig{}, fmt.Errorf("daemon: client.tls_ca: %w", err)
			}
			pool := x509.NewCertPool()
			if !pool.AppendCertsFromPEM(pem) {
				return core.ProducerConfig{}, fmt.Errorf("daemon: client.tls_ca %s holds no PEM certificate", c.TLSCA)
			}
			tc.RootCAs = pool
		}
		rc.TLS = tc
	}
	pc := core.ProducerConfig{
		Group: p.Group,
		Client: core.ClientConfig{
			NameServers: c.NameServers, InstanceName: c.InstanceName, UnitName: c.UnitName, ClientIP: c.ClientIP,
			RouteRefresh: c.RouteRefresh, Heartbeat: c.Heartbeat, APITimeout: c.APITimeout,
			MaxQueuesPerBroker: p.MaxQueuesPerBroker, MaxBrokersPerRoute: p.MaxBrokersPerRoute,
			MaxQueuesPerRoute: p.MaxQueuesPerRoute, Remoting: rc, Logger: d.log.Named("core"),
		},
		SendTimeout:                      p.SendTimeout,
		Retries:                          p.Retries,
		NoRetries:                        p.NoRetries,
		NoAsyncRetries:                   p.NoAsyncRetries,
		AsyncRetries:                     p.AsyncRetries,
		AttemptTimeout:                   p.AttemptTimeout,
		RetryAnotherBrokerWhenNotStoreOK: p.RetryAnotherBrokerWhenNotStoreOK,
		MaxMessageSize:                   int(p.MaxMessageSize),
		CompressThreshold:                int(p.CompressThreshold),
		CompressLevel:                    p.CompressLevel,
		CreateTopicKey:                   p.CreateTopicKey,
		NoAutoCreate:                     !p.AutoCreateTopic,
		DefaultTopicQueueNums:            p.DefaultTopicQueueNums,
		MaxAsyncInFlight:                 p.MaxAsyncInflight,
		Hooks:                            d.met.producerHooks(p.Group),
	}
	pc.Hooks.OnAttemptContext = d.trace.attemptHook()
	if !p.Compress {
		pc.CompressThreshold = -1
	}
	d.orderConfig(&pc, p)
	return pc, nil
}

// closeGroups closes producers (waiting for their sends within ctx and unregistering
// from the brokers), then their strategy hosts (stopping the plugin processes).
func (d *Daemon) closeGroups(ctx context.Context, gs []*group) error {
	var errs []error
	for _, g := range gs {
		if err := g.prod.Close(ctx); err != nil {
			errs = append(errs, err)
		}
		if g.tracer != nil { // after the producer: its last sends are traced too
			if err := g.tracer.Close(ctx); err != nil {
				errs = append(errs, fmt.Errorf("daemon: group %s: close message trace: %w", g.name, err))
			}
		}
		if err := g.host.Close(); err != nil {
			errs = append(errs, fmt.Errorf("daemon: group %s: close strategy: %w", g.name, err))
		}
	}
	return errors.Join(errs...)
}

// Drain stops accepting messages and waits for those in flight, up to ctx and the
// shutdown timeout; it returns how many were still in flight.
func (d *Daemon) Drain(ctx context.Context) int64 {
	d.opMu.Lock()
	defer d.opMu.Unlock()
	return d.drain(ctx)
}

func (d *Daemon) drain(ctx context.Context) int64 {
	d.limit.setDraining(true)
	d.setServing(false)
	ctx, cancel := context.WithTimeout(ctx, d.Config().Daemon.ShutdownTimeout)
	defer cancel()
	n := d.limit.wait(ctx)
	d.log.Info("drained", "remaining", n)
	return n
}

// Resume accepts messages again after Drain (not after Shutdown).
func (d *Daemon) Resume() error {
	d.opMu.Lock()
	defer d.opMu.Unlock()
	if d.shutdown.Load() {
		return errDraining
	}
	d.limit.setDraining(false)
	d.setServing(true)
	d.log.Info("resumed")
	return nil
}

func (d *Daemon) setServing(on bool) {
	d.serving.Store(on)
	d.updateHealth()
}

// updateHealth publishes SERVING when the daemon is ready and not draining.
func (d *Daemon) updateHealth() {
	st := healthpb.HealthCheckResponse_NOT_SERVING
	if d.serving.Load() && d.readiness.ready.Load() {
		st = healthpb.HealthCheckResponse_SERVING
	}
	for _, h := range []*health.Server{d.health, d.adminHealth} {
		if h != nil {
			h.SetServingStatus("", st)
			h.SetServingStatus("producerd.v1.Ingress", st)
		}
	}
}

// Shutdown stops the daemon gracefully: it stops accepting messages, waits for those in
// flight (up to the shutdown timeout, or ctx), ends open streams (answering what is
// still pending with UNAVAILABLE), closes the producers (which unregister from the
// brokers), stops the plugins and closes the listeners. It may be called once; later
// calls return nil at once.
func (d *Daemon) Shutdown(ctx context.Context) error {
	if !d.shutdown.CompareAndSwap(false, true) {
		return nil
	}
	d.opMu.Lock()
	defer d.opMu.Unlock()
	cfg := d.Config()
	d.log.Info("shutting down", "timeout", cfg.Daemon.ShutdownTimeout)
	deadline, cancel := context.WithTimeout(ctx, cfg.Daemon.ShutdownTimeout)
	defer cancel()
	remaining := d.drain(deadline)
	if remaining > 0 {
		close(d.hardStop)
	}
	close(d.stopping)
	d.stopReadiness()
	// Streams now answer what they still hold and end.
	d.stopServers(deadline)
	err := d.closeGroups(deadline, d.groupList())
	d.serveWG.Wait()
	d.removeToken()
	if remaining > 0 {
		d.log.Warn("shutdown deadline passed with messages in flight", "remaining", remaining)
	}
	if terr := d.trace.shutdown(context.Background()); terr != nil {
		d.log.Warn("tracing: flushing the last spans failed", "error", terr)
	}
	d.log.Info("producerd stopped")
	return err
}

// stopServers stops the ingress servers gracefully (forcefully at ctx's end), then the
// admin server.
func (d *Daemon) stopServers(ctx context.Context) {
	var wg sync.WaitGroup
	if d.grpcSrv != nil {
		wg.Go(func() {
			done := make(chan struct{})
			go func() { d.grpcSrv.GracefulStop(); close(done) }()
			select {
			case <-done:
			case <-ctx.Done():
				d.grpcSrv.Stop()
				<-done
			}
		})
	}
	if d.httpSrv != nil {
		wg.Go(func() {
			if err := d.httpSrv.Shutdown(ctx); err != nil {
				_ = d.httpSrv.Close()
			}
		})
	}
	d.stopRMQv2(ctx, &wg)
	wg.Wait()
	if d.unixLn != nil {
		_ = d.unixLn.Close() // the servers closed its listeners; this removes the socket
	}
	if d.adminHTTP != nil {
		sctx, cancel := context.WithTimeout(context.Background(), time.Second)
		if err := d.adminHTTP.Shutdown(sctx); err != nil {
			_ = d.adminHTTP.Close()
		}
		cancel()
	}
	if d.adminGRPC != nil {
		d.adminGRPC.Stop()
	}
}

func (d *Daemon) closeListeners() {
	for _, ln := range []net.Listener{d.grpcLn, d.httpLn, d.adminLn} {
		if ln != nil {
			_ = ln.Close()
		}
	}
	if d.unixLn != nil {
		_ = d.unixLn.Close()
	}
}

// Check runs the checks Start would meet before binding its ports, without starting
// anything: the listeners' TLS key pairs load, each external plugin passes the trust
// check and its sha256 pin (checkPlugins), and each group's client settings (its
// CA file holds a certificate) map to a valid core configuration. `producerd validate`
// runs it after config.Load.
func Check(cfg *config.Config) error {
	var errs []error
	if _, err := loadTLS(cfg.Ingress.TLS); err != nil {
		errs = append(errs, fmt.Errorf("daemon: ingress TLS: %w", err))
	}
	if _, err := loadTLS(cfg.Admin.TLS); err != nil {
		errs = append(errs, fmt.Errorf("daemon: admin TLS: %w", err))
	}
	if f := cfg.Admin.GeneratedTokenFile; cfg.Admin.Listen != "" && cfg.Admin.Token == "" && f != "" {
		if _, err := os.Stat(filepath.Dir(f)); err == nil {
			if err := checkTokenDir(filepath.Dir(f)); err != nil {
				errs = append(errs, err)
			}
		}
	}
	errs = append(errs, checkPlugins(cfg)...)
	d := &Daemon{log: hclog.NewNullLogger()}
	d.met = newMetrics(d)
	for _, p := range cfg.Producers {
		if _, err := d.producerConfig(cfg, p); err != nil {
			errs = append(errs, err)
			break // the client settings are shared: one report is enough
		}
	}
	return errors.Join(errs...)
}
