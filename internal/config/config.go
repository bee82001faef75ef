// Package config reads producerd's TOML configuration (producer.toml).
//
// Decoding is strict: an unknown key, a value of the wrong type, a bad duration ("3s")
// or size ("4MiB"), a plugin that cannot be found and a duplicate producer group are
// each an *Error naming the file, the line and the key, and Parse joins every problem
// into one error. Parsing does no I/O beyond checking that plugin and TLS files exist;
// it starts nothing, so `producerd validate` is a dry run.
package config

import (
	"bytes"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/BurntSushi/toml"

	"github.com/producerd/producerd/core"
	"github.com/producerd/producerd/internal/builtin"
)

// ErrInvalid matches every configuration problem (errors.Is).
var ErrInvalid = errors.New("config: invalid configuration")

// Defaults of the configuration; each field's doc names the key and its default.
const (
	DefaultIngressGRPC         = "127.0.0.1:7380"
	DefaultIngressHTTP         = "127.0.0.1:7381"
	DefaultAdminListen         = "127.0.0.1:7390"
	DefaultShutdownTimeout     = 10 * time.Second
	DefaultMaxInflightMessages = 10000
	DefaultMaxInflightBytes    = 64 << 20
	DefaultInstanceName        = "producerd"
	DefaultGroup               = "producerd"
	// BuiltinPrefix marks a built-in strategy in plugin = "builtin:NAME".
	BuiltinPrefix = "builtin:"
)

// Config is a decoded, validated producer.toml.
type Config struct {
	// File is the path the config was read from.
	File    string
	Daemon  Daemon
	Ingress Ingress
	Admin   Admin
	Client  Client
	// Strategies are the configured strategies by name, plus one entry per built-in
	// under its own name unless a [strategy.NAME] table already uses that name.
	Strategies map[string]*Strategy
	// Producers are the [[producer]] groups, in file order; at least one.
	Producers []Producer
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
}

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
	// HTTP is the HTTP/JSON listen address (http, default 127.0.0.1:7381); "" disables it.
	HTTP string
	TLS  TLS
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
	// InsecureSkipVerify turns certificate verification off (tls_insecure_skip_verify).
	InsecureSkipVerify bool
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
}

// Load reads and parses the file at path.
func Load(path string) (*Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalid, err)
	}
	return Parse(path, data, filepath.Dir(path))
}

// Parse decodes data, read from the file called name; relative plugin and TLS paths are
// resolved against dir. Every problem is an *Error, joined into one error.
func Parse(name string, data []byte, dir string) (*Config, error) {
	var tree map[string]any
	if _, err := toml.NewDecoder(bytes.NewReader(data)).Decode(&tree); err != nil {
		var pe toml.ParseError
		if errors.As(err, &pe) {
			return nil, &Error{File: name, Line: pe.Position.Line, Key: pe.LastKey, Problem: "syntax error: " + pe.Message}
		}
		return nil, &Error{File: name, Problem: err.Error()}
	}
	d := &decoder{file: name, loc: newLocator(string(data))}
	c := &Config{File: name}
	root := d.root(tree)
	c.decodeDaemon(root.sub("daemon"), d)
	c.decodeIngress(root.sub("ingress"), d, dir)
	c.decodeAdmin(root.sub("admin"), d, dir)
	c.decodeClient(root.sub("client"), d, dir)
	c.decodeStrategies(root.sub("strategy"), d, dir)
	c.decodeProducers(root, d)
	root.done()
	if err := errJoin(d.errs); err != nil {
		return nil, err
	}
	return c, nil
}

func (c *Config) decodeDaemon(t *table, d *decoder) {
	c.Daemon = Daemon{LogLevel: "info", LogFormat: "text", ShutdownTimeout: DefaultShutdownTimeout,
		MaxInflightMessages: DefaultMaxInflightMessages, MaxInflightBytes: DefaultMaxInflightBytes}
	if t == nil {
		return
	}
	t.oneOf("log_level", &c.Daemon.LogLevel, "trace", "debug", "info", "warn", "error", "off")
	t.oneOf("log_format", &c.Daemon.LogFormat, "text", "json")
	t.duration("shutdown_timeout", &c.Daemon.ShutdownTimeout, 0)
	t.integer("max_inflight_messages", &c.Daemon.MaxInflightMessages, 1, 1<<24)
	t.size("max_inflight_bytes", &c.Daemon.MaxInflightBytes, 1<<10, 1<<40)
	t.done()
}

func checkAddr(t *table, k, addr string) {
	if addr == "" {
		return
	}
	if _, _, err := net.SplitHostPort(addr); err != nil {
		t.d.errorf(t.key(k), "invalid listen address %q: want host:port", addr)
	}
}

// tlsFiles reads tls_cert and tls_key and checks that they load.
func tlsFiles(t *table, dir string) TLS {
	var out TLS
	t.str("tls_cert", &out.Cert)
	t.str("tls_key", &out.Key)
	if (out.Cert == "") != (out.Key == "") {
		t.d.errorf(t.key("tls_cert"), "tls_cert and tls_key must be set together")
		return TLS{}
	}
	if out.Cert == "" {
		return out
	}
	out.Cert, out.Key = resolve(dir, out.Cert), resolve(dir, out.Key)
	if _, err := tls.LoadX509KeyPair(out.Cert, out.Key); err != nil {
		t.d.errorf(t.key("tls_cert"), "cannot load the TLS key pair: %v", err)
	}
	return out
}

func resolve(dir, p string) string {
	if p == "" || filepath.IsAbs(p) {
		return p
	}
	return filepath.Join(dir, p)
}

func (c *Config) decodeIngress(t *table, d *decoder, dir string) {
	c.Ingress = Ingress{GRPC: DefaultIngressGRPC, HTTP: DefaultIngressHTTP}
	if t == nil {
		return
	}
	t.str("grpc", &c.Ingress.GRPC)
	t.str("http", &c.Ingress.HTTP)
	checkAddr(t, "grpc", c.Ingress.GRPC)
	checkAddr(t, "http", c.Ingress.HTTP)
	if c.Ingress.GRPC == "" && c.Ingress.HTTP == "" {
		d.errorf(t.key("grpc"), "grpc and http are both empty: the daemon would accept no messages")
	}
	c.Ingress.TLS = tlsFiles(t, dir)
	t.done()
}

func (c *Config) decodeAdmin(t *table, d *decoder, dir string) {
	c.Admin = Admin{Listen: DefaultAdminListen}
	if t == nil {
		return
	}
	t.str("listen", &c.Admin.Listen)
	checkAddr(t, "listen", c.Admin.Listen)
	t.str("token", &c.Admin.Token)
	var file string
	if t.str("token_file", &file) {
		if c.Admin.Token != "" {
			d.errorf(t.key("token_file"), "set token or token_file, not both")
		} else if b, err := os.ReadFile(resolve(dir, file)); err != nil {
			d.errorf(t.key("token_file"), "cannot read the token file %q: %v", file, errors.Unwrap(err))
		} else if c.Admin.Token = strings.TrimSpace(string(b)); c.Admin.Token == "" {
			d.errorf(t.key("token_file"), "the token file %q is empty", file)
		}
	}
	c.Admin.TLS = tlsFiles(t, dir)
	t.done()
}

func (c *Config) decodeClient(t *table, d *decoder, dir string) {
	c.Client = Client{InstanceName: DefaultInstanceName, Serialize: "json"}
	if t == nil {
		d.errs = append(d.errs, &Error{File: d.file, Line: 1, Key: "client.name_servers", Problem: "required: the NameServer addresses, e.g. [\"127.0.0.1:9876\"]"})
		return
	}
	decoded := t.strings("name_servers", &c.Client.NameServers)
	if !t.has("name_servers") {
		d.errorf(t.key("name_servers"), "required: the NameServer addresses, e.g. [\"127.0.0.1:9876\"]")
	}
	for i, a := range c.Client.NameServers {
		if _, _, err := net.SplitHostPort(a); err != nil {
			d.errorf(fmt.Sprintf("%s[%d]", t.key("name_servers"), i), "invalid NameServer address %q: want host:port", a)
		}
	}
	if decoded && len(c.Client.NameServers) == 0 {
		d.errorf(t.key("name_servers"), "at least one NameServer address is required")
	}
	t.str("instance_name", &c.Client.InstanceName)
	t.str("unit_name", &c.Client.UnitName)
	t.str("client_ip", &c.Client.ClientIP)
	t.duration("route_refresh", &c.Client.RouteRefresh, time.Millisecond)
	t.duration("heartbeat", &c.Client.Heartbeat, time.Millisecond)
	t.duration("api_timeout", &c.Client.APITimeout, time.Millisecond)
	t.duration("connect_timeout", &c.Client.ConnectTimeout, time.Millisecond)
	t.duration("idle_timeout", &c.Client.IdleTimeout, time.Millisecond)
	t.size("max_frame_size", &c.Client.MaxFrameSize, 1<<10, 1<<31-1)
	t.oneOf("serialize", &c.Client.Serialize, "json", "rocketmq")
	t.boolean("tls", &c.Client.TLS)
	if t.str("tls_ca", &c.Client.TLSCA) {
		c.Client.TLSCA = resolve(dir, c.Client.TLSCA)
		if _, err := os.Stat(c.Client.TLSCA); err != nil {
			d.errorf(t.key("tls_ca"), "cannot read the CA file: %v", errors.Unwrap(err))
		}
	}
	t.str("tls_server_name", &c.Client.ServerName)
	t.boolean("tls_insecure_skip_verify", &c.Client.InsecureSkipVerify)
	t.done()
}

func (c *Config) decodeStrategies(t *table, d *decoder, dir string) {
	c.Strategies = make(map[string]*Strategy)
	if t != nil {
		names := make([]string, 0, len(t.m))
		for name := range t.m {
			names = append(names, name)
		}
		slices.Sort(names)
		for _, name := range names {
			st := t.sub(name)
			if st == nil {
				continue
			}
			if s := decodeStrategy(st, d, name, dir); s != nil {
				c.Strategies[name] = s
			}
		}
		t.done()
	}
	for _, b := range builtin.All() {
		if _, ok := c.Strategies[b.Name]; !ok {
			c.Strategies[b.Name] = &Strategy{Name: b.Name, Plugin: BuiltinPrefix + b.Name, Builtin: b.Name, Settings: []byte("{}"), Implicit: true}
		}
	}
}

func decodeStrategy(t *table, d *decoder, name, dir string) *Strategy {
	s := &Strategy{Name: name, Settings: []byte("{}")}
	if !t.str("plugin", &s.Plugin) {
		if !t.has("plugin") {
			d.errorf(t.key("plugin"), "required: \"builtin:NAME\" (%s) or the path of a plugin binary", builtinNames())
		}
	}
	ok := true
	switch {
	case s.Plugin == "":
	case strings.HasPrefix(s.Plugin, BuiltinPrefix):
		s.Builtin = strings.TrimPrefix(s.Plugin, BuiltinPrefix)
		if _, found := builtin.Lookup(s.Builtin); !found {
			d.errorf(t.key("plugin"), "unknown built-in strategy %q (built-ins: %s)", s.Builtin, builtinNames())
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
			d.errorf(t.key("plugin"), "plugin %q not found (a path relative to the config file, or \"builtin:NAME\")", s.Plugin)
			ok = false
		case fi.IsDir():
			d.errorf(t.key("plugin"), "plugin %q is a directory, not an executable", s.Plugin)
			ok = false
		case fi.Mode()&0o111 == 0:
			d.errorf(t.key("plugin"), "plugin %q is not executable", s.Plugin)
			ok = false
		}
	}
	if st := t.sub("settings"); st != nil {
		b, err := json.Marshal(st.m)
		if err != nil {
			d.errorf(st.path, "settings cannot be passed to the plugin as JSON: %v", err)
		} else {
			s.Settings = b
		}
		for k := range st.m {
			st.seen[k] = true
		}
		if s.Builtin != "" && ok {
			checkBuiltinSettings(st, d, s)
		}
	}
	t.done()
	return s
}

func checkBuiltinSettings(st *table, d *decoder, s *Strategy) {
	b, _ := builtin.Lookup(s.Builtin)
	known := true
	keys := make([]string, 0, len(st.m))
	for k := range st.m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		if !slices.Contains(b.Settings, k) {
			known = false
			if len(b.Settings) == 0 {
				d.errorf(st.key(k), "unknown key: built-in %s takes no settings", s.Builtin)
			} else {
				d.errorf(st.key(k), "unknown key (built-in %s takes %s)", s.Builtin, strings.Join(b.Settings, ", "))
			}
		}
	}
	if !known {
		return
	}
	if err := builtin.Validate(s.Builtin, s.Settings); err != nil {
		var errs []error
		if j, ok := err.(interface{ Unwrap() []error }); ok {
			errs = j.Unwrap()
		} else {
			errs = []error{err}
		}
		for _, e := range errs {
			var se *builtin.SettingError
			if errors.As(e, &se) {
				path := st.path
				if se.Key != "" {
					path = st.key(se.Key)
				}
				d.errorf(path, "%v", se.Err)
			} else {
				d.errorf(st.path, "%v", e)
			}
		}
	}
}

func builtinNames() string {
	var names []string
	for _, b := range builtin.All() {
		names = append(names, BuiltinPrefix+b.Name)
	}
	return strings.Join(names, ", ")
}

func (c *Config) decodeProducers(root *table, d *decoder) {
	ts := root.tables("producer")
	if !root.has("producer") {
		d.errs = append(d.errs, &Error{File: d.file, Line: 1, Key: "producer", Problem: "at least one [[producer]] group is required"})
		return
	}
	firstLine := make(map[string]int)
	for _, t := range ts {
		p := Producer{Group: "", Compress: true, AutoCreateTopic: true}
		if !t.str("group", &p.Group) && !t.has("group") {
			if len(ts) == 1 {
				p.Group = DefaultGroup
			} else {
				d.errorf(t.key("group"), "required when there is more than one [[producer]]")
			}
		}
		if p.Group != "" {
			if err := core.ValidateGroup(p.Group); err != nil {
				d.errorf(t.key("group"), "%s", problem(err))
			} else if line, dup := firstLine[p.Group]; dup {
				d.errorf(t.key("group"), "duplicate group %q (first defined at line %d)", p.Group, line)
			} else {
				firstLine[p.Group] = d.loc.Line(t.key("group"))
			}
		}
		if !t.str("strategy", &p.Strategy) {
			p.Strategy = c.defaultStrategy()
		} else {
			if _, ok := c.Strategies[p.Strategy]; !ok {
				d.errorf(t.key("strategy"), "no strategy %q: define [strategy.%s] or use a built-in (%s)", p.Strategy, p.Strategy, strings.Join(strategyNames(c), ", "))
			}
		}
		t.duration("send_timeout", &p.SendTimeout, time.Millisecond)
		t.duration("attempt_timeout", &p.AttemptTimeout, 0)
		t.integer("retries", &p.Retries, 0, 16)
		p.NoRetries = t.has("retries") && p.Retries == 0
		t.integer("async_retries", &p.AsyncRetries, 0, 16)
		t.size("max_message_size", &p.MaxMessageSize, 1, 16<<20-64<<10)
		t.boolean("compress", &p.Compress)
		t.size("compress_threshold", &p.CompressThreshold, 0, 1<<30)
		t.integer("compress_level", &p.CompressLevel, 1, 9)
		if t.str("create_topic_key", &p.CreateTopicKey) {
			if err := core.ValidateTopic(p.CreateTopicKey); err != nil {
				d.errorf(t.key("create_topic_key"), "%s", problem(err))
			}
		}
		t.boolean("auto_create_topic", &p.AutoCreateTopic)
		t.integer("default_topic_queue_nums", &p.DefaultTopicQueueNums, 1, 1024)
		t.integer("max_async_inflight", &p.MaxAsyncInflight, 1, 1<<24)
		t.boolean("retry_another_broker_when_not_store_ok", &p.RetryAnotherBrokerWhenNotStoreOK)
		t.done()
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
