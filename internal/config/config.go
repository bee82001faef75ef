// Package config reads producerd's TOML configuration (producer.toml).
//
// Decoding is strict: an unknown key, a value of the wrong type, a bad duration ("3s")
// or size ("4MiB"), a plugin that cannot be found and a duplicate producer group are
// each an *Error naming the file, the line and the key, and Parse joins every problem
// into one error. Parsing does no I/O beyond checking that plugin and TLS files exist;
// it starts nothing, so `producerd validate` is a dry run.
package config

import (
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/producerd/producerd/core"
	"github.com/producerd/producerd/internal/builtin"
	"github.com/producerd/producerd/internal/tomlx"
	"github.com/producerd/producerd/remoting"
)

// ErrInvalid matches every configuration problem (errors.Is).
var ErrInvalid = tomlx.ErrInvalid

// Defaults of the configuration; each field's doc names the key and its default.
const (
	DefaultIngressGRPC         = "127.0.0.1:7380"
	DefaultIngressHTTP         = "127.0.0.1:7381"
	DefaultAdminListen         = "127.0.0.1:7390"
	DefaultShutdownTimeout     = 10 * time.Second
	DefaultMaxInflightMessages = 10000
	DefaultMaxInflightBytes    = 64 << 20
	DefaultInstanceName        = "producerd"
	DefaultReadHeaderTimeout   = 10 * time.Second
	DefaultReadTimeout         = 60 * time.Second
	DefaultIdleTimeout         = 120 * time.Second
	DefaultMaxConnections      = 1024
	DefaultKeepaliveTime       = 60 * time.Second
	DefaultKeepaliveTimeout    = 20 * time.Second
	DefaultStreamAckTimeout    = 30 * time.Second
	DefaultMaxTopics           = 1000
	DefaultTopicIdle           = 10 * time.Minute
	DefaultGroup               = "producerd"
	// BuiltinPrefix marks a built-in strategy in plugin = "builtin:NAME".
	BuiltinPrefix = "builtin:"
)

// Config is a decoded, validated producer.toml.
type Config struct {
	// File is the path the config was read from.
	File string
	// Sources lists every key read with its effective value and where it came from
	// (the file's line, an environment variable or the default), in decoding order;
	// secrets are hidden. producerd validate -print shows it.
	Sources   []Source
	Daemon    Daemon
	Ingress   Ingress
	Admin     Admin
	Limits    Limits
	Readiness Readiness
	Tracing   Tracing
	Client    Client
	// Strategies are the configured strategies by name, plus one entry per built-in
	// under its own name unless a [strategy.NAME] table already uses that name.
	Strategies map[string]*Strategy
	// Producers are the [[producer]] groups, in file order; at least one.
	Producers []Producer

	warnings []string // see Warnings
}

// Daemon is the [daemon] table.
type Daemon struct {
	// LogLevel is trace, debug, info (default), warn, error or off (log_level).
	LogLevel string
	// LogFormat is text (default) or json (log_format).
	LogFormat string
	// ShutdownTimeout bounds how long shutdown and drain wait for in-flight sends
	// (shutdown_timeout, default 10s).
	ShutdownTimeout time.Duration
	// MaxInflightMessages bounds messages accepted and not yet answered, across every
	// API (max_inflight_messages, default 10000).
	MaxInflightMessages int
	// MaxInflightBytes bounds their body bytes (max_inflight_bytes, default 64MiB).
	MaxInflightBytes int64
	// GCPercent is the Go collector's GOGC for the daemon process (gc_percent, default
	// 400: a quarter of the collections of Go's 100, bounded by MemoryLimit); GCOff for
	// gc_percent = "off". The GOGC environment variable, when set, wins.
	GCPercent int
	// MemoryLimit is the Go runtime's soft memory limit (memory_limit, default
	// DefaultMemoryLimit: what the in-flight and topic limits let the daemon hold), at
	// which the collector runs whatever GCPercent says; NoMemoryLimit for memory_limit =
	// "off". GOMEMLIMIT, when set, wins.
	MemoryLimit int64
	// Procs is the daemon's GOMAXPROCS (procs, default ProcsAuto: one P while the
	// process uses under half a core with under a quarter of its requests overlapping,
	// the runtime's default within 100 ms of half of them overlapping or of 80 % of a
	// core used; package internal/procs). The GOMAXPROCS environment variable, when
	// set, wins; 0 is a Config not from Parse, which leaves the runtime alone.
	Procs int
	// Sysmon is how the Go runtime's system monitor runs (sysmon): SysmonRuntime
	// (default) leaves Go's default; SysmonSteady keeps it on its steady tick (10 ms
	// while there is nothing to retake) instead of parking it whenever every P is idle,
	// to be woken by the next system call (with one sender that wake-up was 4 of the
	// daemon's 7 context switches per message), at the price of the side effects
	// internal/procs.SteadySysmon lists. GODEBUG's schedtrace, when set, wins. Read at
	// start only.
	Sysmon string
}

// ProcsAuto is procs = "auto".
const ProcsAuto = -1

// The values of daemon.sysmon.
const (
	SysmonSteady  = "steady"
	SysmonRuntime = "runtime"
)

// BytesPerTopic is what one tracked topic may cost the daemon (route, picker counter,
// tracker entry, metric series, with the collector's headroom), for DefaultMemoryLimit:
// 100,000 topics measured 3.7 KiB each in peak RSS (bench growth table).
const BytesPerTopic = 4 << 10

// DefaultMemoryLimit is memory_limit's default: twice the in-flight bytes (a copy being
// encoded beside the one received), 64 MiB for everything else, and BytesPerTopic for
// each topic limits.max_topics allows. Below the live heap, a soft limit would make the
// collector run without pause.
func DefaultMemoryLimit(maxInflightBytes int64, maxTopics int) int64 {
	return 2*maxInflightBytes + 64<<20 + int64(maxTopics)*BytesPerTopic
}

// GCOff and NoMemoryLimit are the "off" values of gc_percent and memory_limit.
const (
	GCOff         = -1
	NoMemoryLimit = -1
)

// DefaultGCPercent is gc_percent's default.
const DefaultGCPercent = 400

// TLS is a listener's certificate (cert and key, PEM files); empty means plaintext.
type TLS struct {
	Cert, Key string
}

// Enabled reports whether TLS is configured.
func (t TLS) Enabled() bool { return t.Cert != "" }

// Ingress is the [ingress] table: where applications send messages.
type Ingress struct {
	// GRPC is the gRPC listen address (grpc, default 127.0.0.1:7380).
	GRPC string
	// RocketMQGRPC is the apache.rocketmq.v2 listen address for the official RocketMQ 5
	// SDKs (rocketmq_grpc_listen, default "" = off; e.g. 127.0.0.1:8081, the Proxy's port).
	// RocketMQGRPCGroup is the producer group it sends through (rocketmq_grpc_group,
	// default "" = the only group).
	RocketMQGRPC, RocketMQGRPCGroup string
	// RocketMQGRPCAuth, when set, is the one credential the v2 listener accepts: every
	// call must carry the SDKs' `authorization` signature made with it
	// ([ingress.rocketmq_grpc_auth]: access_key and one of secret_key, secret_key_file,
	// secret_key_env). Nil: calls are not authenticated.
	RocketMQGRPCAuth *remoting.Credentials
	// HTTP is the HTTP/JSON listen address (http, default 127.0.0.1:7381); "" disables it.
	HTTP string
	TLS  TLS
	// Insecure allows a non-loopback listener without TLS (insecure, default false);
	// the daemon then warns at every start.
	Insecure bool
	// Unix is the path of a Unix-domain socket serving gRPC and HTTP (unix, default ""
	// = none); UnixMode its permissions (unix_mode, default 0o600: the daemon's user
	// only), the socket's access control.
	Unix     string
	UnixMode int
}

// Admin is the [admin] table: status, strategy swap, reload, drain and /metrics, over
// gRPC and HTTP on one listener.
type Admin struct {
	// Listen is the address (listen, default 127.0.0.1:7390); "" disables the admin API.
	Listen string
	// Token, when set, is the bearer token every admin call must carry (token, or
	// token_file to read it from a file). /metrics and /healthz need none.
	Token string
	TLS   TLS
	// TokenFile is the file the token was read from (token_file), "" otherwise.
	TokenFile string
	// GeneratedTokenFile is where the daemon writes the token it generates when none is
	// configured (generated_token_file; default: DefaultTokenPath of the bound address).
	// The file is created readable by the user only, in a directory only the user may
	// write (a world-writable one such as /tmp is refused); the CLI reads it.
	GeneratedTokenFile string
	// Insecure allows a non-loopback listener without both TLS and a token (insecure,
	// default false); the daemon then warns at every start.
	Insecure bool
	// Pprof serves /debug/pprof (behind the token) when true (pprof, default false).
	Pprof bool
	// MetricsPerTopic labels the per-send series (producerd_send_attempts_total,
	// producerd_send_retries_total) with their topic (metrics_per_topic, default false:
	// topic=""), so that series grow with groups x brokers x results, not with topics.
	MetricsPerTopic bool
}

// Readiness is the [readiness] table: when /readyz and grpc.health say SERVING.
type Readiness struct {
	// Topics are probed for a writable route (topics, default: none, and then each
	// group's create_topic_key, TBW102). The daemon is ready once a NameServer answered
	// and one of them (or a route the daemon already uses) has a writable queue.
	Topics []string
}

// Limits is the [limits] table: what one client may cost the daemon before its request
// is refused. Zero values are filled with the defaults at parse time.
type Limits struct {
	// MaxRequestSize bounds one HTTP request body (max_request_size; default 2 × the
	// largest max_message_size + 64KiB, so a base64, JSON-escaped body of
	// max_message_size fits).
	MaxRequestSize int64
	// MaxGRPCMessageSize bounds one gRPC message received by the ingress listeners
	// (max_grpc_message_size; default the largest max_message_size + an eighth + 64KiB:
	// gRPC bodies are binary, the margin is the protobuf framing of a batch). gRPC
	// buffers up to this much per call being received before the daemon can charge it.
	MaxGRPCMessageSize int64
	// ReadHeaderTimeout bounds reading an HTTP request's headers (read_header_timeout,
	// default 10s); ReadTimeout the whole request including its body (read_timeout,
	// default 60s); IdleTimeout a keep-alive connection between requests (idle_timeout,
	// default 120s). They apply to the ingress HTTP and the admin listener; on the
	// gRPC ingress listeners read_header_timeout bounds the HTTP/2 handshake and
	// idle_timeout closes a connection without a call for that long.
	ReadHeaderTimeout time.Duration
	ReadTimeout       time.Duration
	IdleTimeout       time.Duration
	// KeepaliveTime is how long a gRPC ingress connection may be silent before the
	// daemon pings it (keepalive_time, default 60s); KeepaliveTimeout how long the
	// daemon then waits for the answer before it closes the connection
	// (keepalive_timeout, default 20s).
	KeepaliveTime    time.Duration
	KeepaliveTimeout time.Duration
	// MaxConnections bounds the open connections of each listener (max_connections,
	// default 1024); past it new connections wait in the kernel's backlog.
	MaxConnections int
	// MaxTopics bounds the topics the daemon tracks (routes, metric series) per
	// producer group (max_topics, default 1000); a message to a new topic past it is
	// refused. TopicIdle forgets a topic not sent to for that long (topic_idle,
	// default 10m).
	MaxTopics int
	TopicIdle time.Duration
	// MaxStreamInflight bounds the messages one SendStream holds in flight (acks not
	// yet written included), so that one client that never reads cannot hold the whole
	// daemon bound (max_stream_inflight; default 0 = a quarter of
	// daemon.max_inflight_messages).
	MaxStreamInflight int
	// StreamAckTimeout ends a SendStream whose client reads no ack for that long
	// (stream_ack_timeout, default 30s): the daemon stops taking its messages and the
	// acks not written are lost (their messages may or may not be stored).
	StreamAckTimeout time.Duration
}

// Client is the [client] table: the RocketMQ client instance.
type Client struct {
	NameServers    []string
	InstanceName   string
	UnitName       string
	ClientIP       string
	RouteRefresh   time.Duration
	Heartbeat      time.Duration
	APITimeout     time.Duration
	ConnectTimeout time.Duration
	IdleTimeout    time.Duration
	MaxFrameSize   int64
	// Serialize is json (default) or rocketmq: the request header encoding.
	Serialize string
	// TLS to the brokers and NameServers.
	TLS        bool
	TLSCA      string
	ServerName string
	// InsecureSkipVerify turns certificate verification off (tls_insecure_skip_verify,
	// default false): anyone on the network path can then read and alter messages.
	// The daemon logs a warning at every start (Config.Warnings).
	InsecureSkipVerify bool
	// ACL signs every request (access_key with exactly one of secret_key, secret_key_file
	// and secret_key_env; optional security_token or security_token_env). Nil: unsigned.
	// Its String and log forms never show the secret (acl.go).
	ACL *remoting.Credentials
}

// Strategy is one [strategy.NAME] table.
type Strategy struct {
	Name string
	// Plugin is as written: "builtin:NAME" or a path.
	Plugin string
	// Builtin is the built-in's name, "" for an external plugin.
	Builtin string
	// Path is the external plugin's absolute path.
	Path string
	// Settings is the settings table as JSON ("{}" when absent).
	Settings []byte
	// Implicit marks the entries added for built-ins without a table.
	Implicit bool
	// SHA256 pins the plugin binary or WebAssembly module (sha256, 64 hex digits):
	// checked at every start and restart of the plugin; a mismatch refuses it and the
	// strategy decides in-process. External plugins only.
	SHA256 string
	// AllowInsecurePath runs a plugin binary that someone other than its owner could
	// replace (allow_insecure_path, default false: such a binary is refused). External
	// plugins only; the daemon warns at every start.
	AllowInsecurePath bool
	// Env names the daemon's environment variables the plugin process receives (env,
	// default none): plugins get no other part of the daemon's environment.
	Env []string

	// file, keyPath and lineOf place settings problems found after Load
	// (SettingsError): the settings table's key path and the file's line of a path
	// (of its nearest ancestor when the file does not set it).
	file    string
	keyPath string
	lineOf  func(path string) int
}

// Producer is one [[producer]] table; zero durations and sizes mean core's defaults.
type Producer struct {
	Group string
	// Strategy names a Config.Strategies entry (strategy). Default: the only
	// [strategy.NAME] table when there is exactly one, else the round-robin built-in.
	Strategy                         string
	SendTimeout                      time.Duration
	AttemptTimeout                   time.Duration
	Retries                          int
	AsyncRetries                     int
	NoRetries                        bool
	MaxMessageSize                   int64
	CompressThreshold                int64
	Compress                         bool
	CompressLevel                    int
	CreateTopicKey                   string
	AutoCreateTopic                  bool
	DefaultTopicQueueNums            int
	MaxAsyncInflight                 int
	RetryAnotherBrokerWhenNotStoreOK bool

	// AttemptTimeout is -1 for attempt_timeout = "off" (no liveness check). NoRetries and
	// NoAsyncRetries record an explicit 0 of retries and async_retries: 0 means 0, an
	// absent key means core's default.
	NoAsyncRetries bool
	// MaxQueuesPerBroker, MaxBrokersPerRoute and MaxQueuesPerRoute are the route sanity
	// bounds max_queues_per_broker, max_brokers_per_route and max_queues_per_route (queues
	// of one route in all); 0 means core's defaults (1024, 256, 8192).
	MaxQueuesPerBroker int
	MaxBrokersPerRoute int
	MaxQueuesPerRoute  int
	// Ordering of keyed messages: strict (default: never moved off the key's queue) or
	// relaxed (retries may fail over) (ordering).
	Ordering string
	// Hash maps sharding keys to queues: java (default, SelectMessageQueueByHash) or fnv
	// (rocketmq-client-go's hash selector) (hash).
	Hash string
	// MaxDelayLevel is the brokers' delay level count (max_delay_level, default 18).
	MaxDelayLevel int
	// Namespace is Java's ClientConfig.namespace for this group: topics ns%topic, group
	// ns%group, property INSTANCE_ID (namespace; default none).
	Namespace string
	// MessageTrace writes a Java-compatible trace record of every stored message to
	// MessageTraceTopic, batched and asynchronously, like DefaultMQProducer with
	// enableMsgTrace (message_trace, default false; message_trace_topic, default
	// RMQ_SYS_TRACE_TOPIC).
	MessageTrace      bool
	MessageTraceTopic string
}

// Tracing is the [tracing] table: OpenTelemetry spans of the ingress sends and their
// attempts, exported over OTLP/gRPC, and the W3C trace context written into each
// message's properties (traceparent, tracestate). Off by default.
type Tracing struct {
	// Enabled turns tracing on (enabled, default false).
	Enabled bool
	// Endpoint is the OTLP/gRPC collector's host:port (endpoint; default: the
	// OTEL_EXPORTER_OTLP_ENDPOINT variable, else localhost:4317).
	Endpoint string
	// Insecure sends to the collector without TLS (insecure, default false).
	Insecure bool
	// SampleRatio is the share of traces started here that are sampled, 0..1
	// (sample_ratio, default 1); a caller's sampled flag is always followed.
	SampleRatio float64
}

// Load reads and parses the file at path, with the environment's overrides
// (PRODUCERD_SECTION_KEY, see ParseEnv).
func Load(path string) (*Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalid, err)
	}
	return ParseEnv(path, data, filepath.Dir(path), os.Environ())
}

// Parse decodes data, read from the file called name; relative plugin and TLS paths are
// resolved against dir. Every problem is an *Error, joined into one error. The
// environment is not read (see ParseEnv).
func Parse(name string, data []byte, dir string) (*Config, error) {
	return ParseEnv(name, data, dir, nil)
}

// ParseEnv is Parse with the overrides of environ ("NAME=value" entries, as
// os.Environ returns): see EnvOverrides for the names. A problem with an overridden
// value names the variable instead of a line of the file.
func ParseEnv(name string, data []byte, dir string, environ []string) (*Config, error) {
	d, root, err := tomlx.Parse(name, data)
	if err != nil {
		return nil, redactSecret(err, data)
	}
	overrides, err := applyEnv(name, root.Map(), environ)
	if err != nil {
		return nil, err
	}
	c := &Config{File: name}
	defer func() { c.Sources = sources(d, overrides) }()
	c.decodeDaemon(root.Sub("daemon"), d)
	c.decodeIngress(root.Sub("ingress"), d, dir)
	c.decodeAdmin(root.Sub("admin"), d, dir)
	c.decodeClient(root.Sub("client"), d, dir)
	c.decodeStrategies(root.Sub("strategy"), d, dir)
	c.decodeProducers(root, d)
	c.decodeLimits(root.Sub("limits"))
	if c.Daemon.MemoryLimit == 0 { // not set: what the limits let the daemon hold
		c.Daemon.MemoryLimit = DefaultMemoryLimit(c.Daemon.MaxInflightBytes, c.Limits.MaxTopics)
	}
	c.decodeReadiness(root.Sub("readiness"), d)
	c.decodeTracing(root.Sub("tracing"))
	c.checkListeners(d)
	root.Done()
	if err := d.Err(); err != nil {
		return nil, envErrors(redactSecretErrors(err, root.Map()), overrides)
	}
	return c, nil
}

func (c *Config) decodeDaemon(t *tomlx.Table, d *tomlx.Decoder) {
	c.Daemon = Daemon{LogLevel: "info", LogFormat: "text", ShutdownTimeout: DefaultShutdownTimeout,
		MaxInflightMessages: DefaultMaxInflightMessages, MaxInflightBytes: DefaultMaxInflightBytes,
		GCPercent: DefaultGCPercent, Procs: ProcsAuto, Sysmon: SysmonRuntime}
	if t == nil {
		return
	}
	t.OneOf("log_level", &c.Daemon.LogLevel, "trace", "debug", "info", "warn", "error", "off")
	t.OneOf("log_format", &c.Daemon.LogFormat, "text", "json")
	t.Duration("shutdown_timeout", &c.Daemon.ShutdownTimeout, 0, tomlx.NoMax)
	t.Int("max_inflight_messages", &c.Daemon.MaxInflightMessages, 1, 1<<24)
	t.Size("max_inflight_bytes", &c.Daemon.MaxInflightBytes, 1<<10, 1<<40)
	if v, ok := t.Get("gc_percent"); ok && plain(v) == "off" {
		c.Daemon.GCPercent = GCOff
	} else {
		t.Int("gc_percent", &c.Daemon.GCPercent, 1, 1<<20)
	}
	if v, ok := t.Get("memory_limit"); ok && plain(v) == "off" {
		c.Daemon.MemoryLimit = NoMemoryLimit
	} else {
		t.Size("memory_limit", &c.Daemon.MemoryLimit, 16<<20, 1<<50)
	}
	if v, ok := t.Get("procs"); ok && plain(v) != "auto" {
		t.Int("procs", &c.Daemon.Procs, 1, 1<<16)
	} else {
		auto := "auto"
		t.Note("procs", &auto)
	}
	t.OneOf("sysmon", &c.Daemon.Sysmon, SysmonSteady, SysmonRuntime)
	t.Done()
}

func checkAddr(t *tomlx.Table, k, addr string) {
	if addr == "" {
		return
	}
	if _, _, err := net.SplitHostPort(addr); err != nil {
		t.Errorf(k, "invalid listen address %q: want host:port", addr)
	}
}

// tlsFiles reads tls_cert and tls_key and checks that they load.
func tlsFiles(t *tomlx.Table, dir string) TLS {
	var out TLS
	t.Str("tls_cert", &out.Cert)
	t.Str("tls_key", &out.Key)
	if (out.Cert == "") != (out.Key == "") {
		t.Errorf("tls_cert", "tls_cert and tls_key must be set together")
		return TLS{}
	}
	if out.Cert == "" {
		return out
	}
	out.Cert, out.Key = resolve(dir, out.Cert), resolve(dir, out.Key)
	if _, err := tls.LoadX509KeyPair(out.Cert, out.Key); err != nil {
		t.Errorf("tls_cert", "cannot load the TLS key pair: %v", err)
	}
	return out
}

func resolve(dir, p string) string {
	if p == "" || filepath.IsAbs(p) {
		return p
	}
	return filepath.Join(dir, p)
}

func (c *Config) decodeIngress(t *tomlx.Table, d *tomlx.Decoder, dir string) {
	c.Ingress = Ingress{GRPC: DefaultIngressGRPC, HTTP: DefaultIngressHTTP, UnixMode: 0o600}
	if t == nil {
		return
	}
	t.Str("grpc", &c.Ingress.GRPC)
	t.Str("http", &c.Ingress.HTTP)
	if t.Str("unix", &c.Ingress.Unix) {
		c.Ingress.Unix = resolve(dir, c.Ingress.Unix)
	}
	t.Int("unix_mode", &c.Ingress.UnixMode, 0, 0o777)
	checkAddr(t, "grpc", c.Ingress.GRPC)
	checkAddr(t, "http", c.Ingress.HTTP)
	t.Bool("insecure", &c.Ingress.Insecure)
	if c.Ingress.GRPC == "" && c.Ingress.HTTP == "" && c.Ingress.Unix == "" {
		t.Errorf("grpc", "grpc and http are both empty: the daemon would accept no messages")
	}
	c.Ingress.TLS = tlsFiles(t, dir)
	t.Str("rocketmq_grpc_listen", &c.Ingress.RocketMQGRPC)
	t.Str("rocketmq_grpc_group", &c.Ingress.RocketMQGRPCGroup)
	checkAddr(t, "rocketmq_grpc_listen", c.Ingress.RocketMQGRPC)
	if at := t.Sub("rocketmq_grpc_auth"); at != nil {
		c.Ingress.RocketMQGRPCAuth = decodeACL(at, dir)
		if a := c.Ingress.RocketMQGRPCAuth; a != nil && a.SecurityToken != "" {
			at.Errorf("security_token", "is not checked by the v2 listener; remove it")
		}
		at.Done()
	}
	t.Done()
}

func (c *Config) decodeAdmin(t *tomlx.Table, d *tomlx.Decoder, dir string) {
	c.Admin = Admin{Listen: DefaultAdminListen}
	if t == nil {
		return
	}
	t.Str("listen", &c.Admin.Listen)
	checkAddr(t, "listen", c.Admin.Listen)
	secretStr(t, "token", &c.Admin.Token)
	t.Note("token", &c.Admin.Token)
	var file string
	if t.Str("token_file", &file) {
		if c.Admin.Token != "" {
			t.Errorf("token_file", "set token or token_file, not both")
		} else {
			c.Admin.TokenFile = resolve(dir, file)
			c.Admin.Token = readTokenFile(t, c.Admin.TokenFile, file)
		}
	}
	if t.Str("generated_token_file", &c.Admin.GeneratedTokenFile) {
		c.Admin.GeneratedTokenFile = resolve(dir, c.Admin.GeneratedTokenFile)
	}
	t.Bool("insecure", &c.Admin.Insecure)
	t.Bool("pprof", &c.Admin.Pprof)
	t.Bool("metrics_per_topic", &c.Admin.MetricsPerTopic)
	c.Admin.TLS = tlsFiles(t, dir)
	t.Done()
}

func (c *Config) decodeClient(t *tomlx.Table, d *tomlx.Decoder, dir string) {
	c.Client = Client{InstanceName: DefaultInstanceName, Serialize: "json"}
	if t == nil {
		d.ErrorAt(1, "client.name_servers", "required: the NameServer addresses, e.g. [\"127.0.0.1:9876\"]")
		return
	}
	decoded := t.Strings("name_servers", &c.Client.NameServers)
	if !t.Has("name_servers") {
		t.Errorf("name_servers", "required: the NameServer addresses, e.g. [\"127.0.0.1:9876\"]")
	}
	for i, a := range c.Client.NameServers {
		if _, port, err := net.SplitHostPort(a); err != nil {
			d.Errorf(fmt.Sprintf("%s[%d]", t.Key("name_servers"), i), "invalid NameServer address %q: want host:port", a)
		} else if !portInRange(port) {
			d.Errorf(fmt.Sprintf("%s[%d]", t.Key("name_servers"), i), "invalid port %q in NameServer address %q: want 1..65535", port, a)
		}
	}
	if decoded && len(c.Client.NameServers) == 0 {
		t.Errorf("name_servers", "at least one NameServer address is required")
	}
	t.Str("instance_name", &c.Client.InstanceName)
	t.Str("unit_name", &c.Client.UnitName)
	t.Str("client_ip", &c.Client.ClientIP)
	t.Duration("route_refresh", &c.Client.RouteRefresh, time.Millisecond, tomlx.NoMax)
	t.Duration("heartbeat", &c.Client.Heartbeat, time.Millisecond, tomlx.NoMax)
	t.Duration("api_timeout", &c.Client.APITimeout, time.Millisecond, tomlx.NoMax)
	t.Duration("connect_timeout", &c.Client.ConnectTimeout, time.Millisecond, tomlx.NoMax)
	t.Duration("idle_timeout", &c.Client.IdleTimeout, time.Millisecond, tomlx.NoMax)
	t.Size("max_frame_size", &c.Client.MaxFrameSize, 1<<10, 1<<31-1)
	t.OneOf("serialize", &c.Client.Serialize, "json", "rocketmq")
	t.Bool("tls", &c.Client.TLS)
	if t.Str("tls_ca", &c.Client.TLSCA) {
		c.Client.TLSCA = resolve(dir, c.Client.TLSCA)
		if _, err := os.Stat(c.Client.TLSCA); err != nil {
			t.Errorf("tls_ca", "cannot read the CA file: %v", errors.Unwrap(err))
		}
	}
	t.Str("tls_server_name", &c.Client.ServerName)
	t.Bool("tls_insecure_skip_verify", &c.Client.InsecureSkipVerify)
	c.Client.ACL = decodeACL(t, dir)
	c.checkClientTLS(t, d)
	t.Done()
}

func (c *Config) decodeStrategies(t *tomlx.Table, d *tomlx.Decoder, dir string) {
	c.Strategies = make(map[string]*Strategy)
	if t != nil {
		names := make([]string, 0, len(t.Map()))
		for name := range t.Map() {
			names = append(names, name)
		}
		slices.Sort(names)
		for _, name := range names {
			st := t.Sub(name)
			if st == nil {
				continue
			}
			if s := decodeStrategy(st, d, name, dir); s != nil {
				s.file = c.File
				c.Strategies[name] = s
				if s.AllowInsecurePath && s.Path != "" {
					c.warnAt(d, st.Key("allow_insecure_path"), "plugin %s runs even if someone other than its owner could replace it", s.Path)
				}
			}
		}
		t.Done()
	}
	for _, b := range builtin.All() {
		if _, ok := c.Strategies[b.Name]; !ok {
			c.Strategies[b.Name] = &Strategy{Name: b.Name, Plugin: BuiltinPrefix + b.Name, Builtin: b.Name, Settings: []byte("{}"), Implicit: true}
		}
	}
}

func decodeStrategy(t *tomlx.Table, d *tomlx.Decoder, name, dir string) *Strategy {
	s := &Strategy{Name: name, Settings: []byte("{}")}
	if !t.Str("plugin", &s.Plugin) {
		if !t.Has("plugin") {
			t.Errorf("plugin", "required: \"builtin:NAME\" (%s) or the path of a plugin binary", builtinNames())
		}
	}
	ok := true
	switch {
	case s.Plugin == "":
	case strings.HasPrefix(s.Plugin, BuiltinPrefix):
		s.Builtin = strings.TrimPrefix(s.Plugin, BuiltinPrefix)
		if _, found := builtin.Lookup(s.Builtin); !found {
			t.Errorf("plugin", "unknown built-in strategy %q (built-ins: %s)", s.Builtin, builtinNames())
			ok = false
		}
	default:
		s.Path = resolve(dir, s.Plugin)
		if abs, err := filepath.Abs(s.Path); err == nil {
			s.Path = abs
		}
		fi, err := os.Stat(s.Path)
		switch {
		case err != nil:
			t.Errorf("plugin", "plugin %q not found (a path relative to the config file, or \"builtin:NAME\")", s.Plugin)
			ok = false
		case fi.IsDir():
			t.Errorf("plugin", "plugin %q is a directory, not an executable", s.Plugin)
			ok = false
		case fi.Mode()&0o111 == 0 && !strings.HasSuffix(s.Path, ".wasm"): // a module is read, not executed
			t.Errorf("plugin", "plugin %q is not executable", s.Plugin)
			ok = false
		}
	}
	decodeStrategyTrust(t, s)
	s.keyPath, s.lineOf = t.Key("settings"), d.Line
	if st := t.Sub("settings"); st != nil {
		b, err := json.Marshal(st.Map())
		if err != nil {
			d.Errorf(st.Path(), "settings cannot be passed to the plugin as JSON: %v", err)
		} else {
			s.Settings = b
		}
		st.MarkRead()
		if s.Builtin != "" && ok {
			checkBuiltinSettings(st, d, s)
		}
	}
	t.Done()
	return s
}

// checkBuiltinSettings builds the built-in with its settings (its own parser) and
// reports each problem at its key.
func checkBuiltinSettings(st *tomlx.Table, d *tomlx.Decoder, s *Strategy) {
	err := builtin.Validate(s.Builtin, s.Settings)
	if err == nil {
		return
	}
	if !s.placeSettings(err, func(line int, key, problem string) { d.ErrorAt(line, key, "%s", problem) }) {
		d.Errorf(st.Path(), "%v", err)
	}
}

func builtinNames() string {
	var names []string
	for _, b := range builtin.All() {
		names = append(names, BuiltinPrefix+b.Name)
	}
	return strings.Join(names, ", ")
}

func (c *Config) decodeProducers(root *tomlx.Table, d *tomlx.Decoder) {
	ts := root.Tables("producer")
	if !root.Has("producer") {
		d.ErrorAt(1, "producer", "at least one [[producer]] group is required")
		return
	}
	firstLine := make(map[string]int)
	for _, t := range ts {
		p := Producer{Group: "", Compress: true, AutoCreateTopic: true, Ordering: "strict", Hash: "java"}
		if !t.Str("group", &p.Group) && !t.Has("group") {
			if len(ts) == 1 {
				p.Group = DefaultGroup
			} else {
				t.Errorf("group", "required when there is more than one [[producer]]")
			}
		}
		if p.Group != "" {
			if err := core.ValidateGroup(p.Group); err != nil {
				t.Errorf("group", "%s", problem(err))
			} else if line, dup := firstLine[p.Group]; dup {
				t.Errorf("group", "duplicate group %q (first defined at line %d)", p.Group, line)
			} else {
				firstLine[p.Group] = d.Line(t.Key("group"))
			}
		}
		if !t.Str("strategy", &p.Strategy) {
			p.Strategy = c.defaultStrategy()
		} else {
			if _, ok := c.Strategies[p.Strategy]; !ok {
				t.Errorf("strategy", "no strategy %q: define [strategy.%s] or use a built-in (%s)", p.Strategy, p.Strategy, strings.Join(strategyNames(c), ", "))
			}
		}
		t.Duration("send_timeout", &p.SendTimeout, time.Millisecond, tomlx.NoMax)
		if v, ok := t.Get("attempt_timeout"); ok && plain(v) == "off" {
			p.AttemptTimeout = -1 // no per-attempt liveness check (core: negative disables)
		} else {
			t.Duration("attempt_timeout", &p.AttemptTimeout, time.Millisecond, tomlx.NoMax)
		}
		// Zero means zero: "retries = 0" is one attempt and leaves async_retries alone.
		t.Int("retries", &p.Retries, 0, 16)
		p.NoRetries = t.Has("retries") && p.Retries == 0
		t.Int("async_retries", &p.AsyncRetries, 0, 16)
		p.NoAsyncRetries = t.Has("async_retries") && p.AsyncRetries == 0
		t.Int("max_queues_per_broker", &p.MaxQueuesPerBroker, 1, 1<<16)
		t.Int("max_brokers_per_route", &p.MaxBrokersPerRoute, 1, 1<<20)
		t.Int("max_queues_per_route", &p.MaxQueuesPerRoute, 1, 1<<20)
		t.Size("max_message_size", &p.MaxMessageSize, 1, 16<<20-64<<10)
		t.Bool("compress", &p.Compress)
		if t.Size("compress_threshold", &p.CompressThreshold, 0, 1<<30) && p.CompressThreshold == 0 {
			// 0 means every body. RocketMQ bodies are never empty, so core's threshold 1
			// says the same; core's own 0 means "its default" (4096).
			p.CompressThreshold = 1
		}
		t.Int("compress_level", &p.CompressLevel, 1, 9)
		if t.Str("create_topic_key", &p.CreateTopicKey) {
			if err := core.ValidateTopic(p.CreateTopicKey); err != nil {
				t.Errorf("create_topic_key", "%s", problem(err))
			}
		}
		t.Bool("auto_create_topic", &p.AutoCreateTopic)
		t.Int("default_topic_queue_nums", &p.DefaultTopicQueueNums, 1, 1024)
		t.Int("max_async_inflight", &p.MaxAsyncInflight, 1, 1<<24)
		t.Bool("retry_another_broker_when_not_store_ok", &p.RetryAnotherBrokerWhenNotStoreOK)
		t.OneOf("ordering", &p.Ordering, "strict", "relaxed")
		t.OneOf("hash", &p.Hash, "java", "fnv")
		t.Int("max_delay_level", &p.MaxDelayLevel, 1, 1000)
		if t.Str("namespace", &p.Namespace) {
			if err := core.ValidateNamespace(p.Namespace, p.Group); err != nil {
				t.Errorf("namespace", "%s", problem(err))
			}
		}
		t.Bool("message_trace", &p.MessageTrace)
		p.MessageTraceTopic = core.DefaultTraceTopic
		if t.Str("message_trace_topic", &p.MessageTraceTopic) {
			if err := core.ValidateTopic(p.MessageTraceTopic); err != nil {
				t.Errorf("message_trace_topic", "%s", problem(err))
			}
		}
		t.Done()
		c.Producers = append(c.Producers, p)
	}
}

// problem is the text of a core validation error without its package prefix.
func problem(err error) string {
	var ve *core.ValidationError
	if errors.As(err, &ve) {
		return ve.Msg
	}
	return err.Error()
}

// defaultStrategy is the strategy of a group that names none: the only [strategy]
// table when there is exactly one, else the round-robin built-in.
func (c *Config) defaultStrategy() string {
	var explicit []string
	for name, s := range c.Strategies {
		if !s.Implicit {
			explicit = append(explicit, name)
		}
	}
	if len(explicit) == 1 {
		return explicit[0]
	}
	return builtin.RoundRobin
}

func strategyNames(c *Config) []string {
	names := make([]string, 0, len(c.Strategies))
	for n := range c.Strategies {
		names = append(names, n)
	}
	slices.Sort(names)
	return names
}

// StrategyNames returns the names of every strategy, sorted.
func (c *Config) StrategyNames() []string { return strategyNames(c) }

// Producer returns the group called name, or the only group when name is "".
func (c *Config) Producer(name string) (*Producer, bool) {
	if name == "" && len(c.Producers) == 1 {
		return &c.Producers[0], true
	}
	for i := range c.Producers {
		if c.Producers[i].Group == name {
			return &c.Producers[i], true
		}
	}
	return nil, false
}

// readTokenFile reads an admin token file, refusing one that group or others may read.
func readTokenFile(t *tomlx.Table, path, asWritten string) string {
	return readSecretFile(t, "token_file", "token", path, asWritten)
}

// decodeLimits reads the [limits] table; absent keys get their defaults.
func (c *Config) decodeLimits(t *tomlx.Table) {
	var largest int64
	for _, p := range c.Producers {
		if p.MaxMessageSize == 0 {
			p.MaxMessageSize = core.DefaultMaxMessageSize
		}
		largest = max(largest, p.MaxMessageSize)
	}
	if largest == 0 {
		largest = core.DefaultMaxMessageSize
	}
	c.Limits = Limits{MaxRequestSize: 2*largest + 64<<10, MaxGRPCMessageSize: largest + largest/8 + 64<<10, ReadHeaderTimeout: DefaultReadHeaderTimeout,
		ReadTimeout: DefaultReadTimeout, IdleTimeout: DefaultIdleTimeout, MaxConnections: DefaultMaxConnections,
		KeepaliveTime: DefaultKeepaliveTime, KeepaliveTimeout: DefaultKeepaliveTimeout, MaxTopics: DefaultMaxTopics, TopicIdle: DefaultTopicIdle,
		StreamAckTimeout: DefaultStreamAckTimeout}
	if t == nil {
		return
	}
	if t.Size("max_request_size", &c.Limits.MaxRequestSize, 1<<10, 1<<30) && c.Limits.MaxRequestSize < largest {
		t.Errorf("max_request_size", "%d bytes is less than the largest max_message_size (%d): such messages could never be sent", c.Limits.MaxRequestSize, largest)
	}
	if t.Size("max_grpc_message_size", &c.Limits.MaxGRPCMessageSize, 1<<10, 1<<30) && c.Limits.MaxGRPCMessageSize < largest {
		t.Errorf("max_grpc_message_size", "%d bytes is less than the largest max_message_size (%d): such messages could never be sent", c.Limits.MaxGRPCMessageSize, largest)
	}
	t.Duration("read_header_timeout", &c.Limits.ReadHeaderTimeout, time.Millisecond, tomlx.NoMax)
	t.Duration("read_timeout", &c.Limits.ReadTimeout, time.Millisecond, tomlx.NoMax)
	t.Duration("idle_timeout", &c.Limits.IdleTimeout, time.Millisecond, tomlx.NoMax)
	t.Int("max_connections", &c.Limits.MaxConnections, 1, 1<<20)
	t.Duration("keepalive_time", &c.Limits.KeepaliveTime, time.Second, tomlx.NoMax)
	t.Duration("keepalive_timeout", &c.Limits.KeepaliveTimeout, time.Millisecond, tomlx.NoMax)
	t.Int("max_topics", &c.Limits.MaxTopics, 1, 1<<20)
	t.Duration("topic_idle", &c.Limits.TopicIdle, time.Second, tomlx.NoMax)
	t.Int("max_stream_inflight", &c.Limits.MaxStreamInflight, 1, 1<<24)
	t.Duration("stream_ack_timeout", &c.Limits.StreamAckTimeout, time.Millisecond, tomlx.NoMax)
	t.Done()
}

// checkListeners runs the checks `run` would otherwise only meet when binding: a port
// out of range, one address for two listeners, a non-loopback listener without TLS
// (and, for admin, a token) unless insecure = true.
func (c *Config) checkListeners(d *tomlx.Decoder) {
	type listener struct{ key, addr string }
	ls := []listener{{"ingress.grpc", c.Ingress.GRPC}, {"ingress.http", c.Ingress.HTTP},
		{"ingress.rocketmq_grpc_listen", c.Ingress.RocketMQGRPC}, {"admin.listen", c.Admin.Listen}}
	var bound []listener
	for _, l := range ls {
		if l.addr == "" {
			continue
		}
		_, port, err := net.SplitHostPort(l.addr)
		if err != nil {
			continue // reported by checkAddr
		}
		n, err := strconv.Atoi(port)
		if err != nil || n < 0 || n > 65535 {
			d.Errorf(l.key, "invalid port %q in %q: want 0..65535", port, l.addr)
			continue
		}
		for _, prev := range bound {
			if bindsOverlap(prev.addr, l.addr) {
				if prev.addr == l.addr {
					d.Errorf(l.key, "%s is also the address of %s: each listener needs its own", l.addr, prev.key)
				} else {
					d.Errorf(l.key, "%s overlaps %s = %s (same port, and one binds every address or both the same one): both cannot bind", l.addr, prev.key, prev.addr)
				}
				break
			}
		}
		bound = append(bound, l)
	}
	for _, l := range ls[:3] {
		if nonLoopback(l.addr) && !c.Ingress.TLS.Enabled() && !c.Ingress.Insecure {
			d.Errorf(l.key, "%s is not a loopback address and the ingress has no TLS: set tls_cert and tls_key, or insecure = true to accept plaintext from the network", l.addr)
		}
	}
	if nonLoopback(c.Admin.Listen) && (!c.Admin.TLS.Enabled() || c.Admin.Token == "") && !c.Admin.Insecure {
		d.Errorf("admin.listen", "%s is not a loopback address: the admin API then needs TLS and a token (tls_cert, tls_key, token or token_file), or insecure = true", c.Admin.Listen)
	}
}

// nonLoopback reports whether addr is a valid listen address on a non-loopback
// interface.
func nonLoopback(addr string) bool {
	if _, _, err := net.SplitHostPort(addr); err != nil {
		return false
	}
	return !IsLoopback(addr)
}

// IsLoopback reports whether a listen address binds only loopback interfaces
// ("localhost", 127.0.0.0/8, ::1). An empty or unspecified host is not loopback.
func IsLoopback(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// DefaultTokenPath is where the daemon writes the admin token it generates when none is
// configured, for the admin listener bound at addr (host:port), and where the CLI looks
// for it: $XDG_RUNTIME_DIR/producerd/admin-HOST_PORT.token, else the same under the
// user's cache directory (~/.cache).
func DefaultTokenPath(addr string) string {
	dir := os.Getenv("XDG_RUNTIME_DIR")
	if dir == "" {
		if d, err := os.UserCacheDir(); err == nil {
			dir = d
		} else {
			dir = os.TempDir()
		}
	}
	name := strings.NewReplacer(":", "_", "[", "", "]", "", "/", "_").Replace(addr)
	return filepath.Join(dir, "producerd", "admin-"+name+".token")
}

func (c *Config) decodeReadiness(t *tomlx.Table, d *tomlx.Decoder) {
	c.Readiness = Readiness{}
	if t == nil {
		return
	}
	t.Strings("topics", &c.Readiness.Topics)
	for i, topic := range c.Readiness.Topics {
		if err := core.ValidateTopic(topic); err != nil {
			d.Errorf(fmt.Sprintf("%s[%d]", t.Key("topics"), i), "%s", problem(err))
		}
	}
	t.Done()
}

func (c *Config) decodeTracing(t *tomlx.Table) {
	c.Tracing = Tracing{SampleRatio: 1}
	if t == nil {
		return
	}
	t.Bool("enabled", &c.Tracing.Enabled)
	t.Str("endpoint", &c.Tracing.Endpoint)
	checkAddr(t, "endpoint", c.Tracing.Endpoint)
	t.Bool("insecure", &c.Tracing.Insecure)
	t.Fraction("sample_ratio", &c.Tracing.SampleRatio)
	t.Done()
}
