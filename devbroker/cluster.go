package devbroker

import (
	"context"
	"errors"
	"fmt"
	"net"
	"slices"
	"sort"
	"strconv"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/producerd/producerd/remoting"
)

// Defaults of Config.
const (
	DefaultBroker               = "broker-a"
	DefaultClusterName          = "DefaultCluster"
	DefaultHost                 = "127.0.0.1"
	DefaultTopicQueueNums       = 8 // the broker's TBW102 queue count (broker config defaultTopicQueueNums)
	DefaultMaxMessages          = 100_000
	DefaultMaxBytes             = 256 << 20
	DefaultMaxMessageSize       = 4 << 20
	DefaultRegion               = "DefaultRegion"
	DefaultVersion        int32 = 479 // V5_3_3, stamped on every response
	// AutoCreateTopic is the default topic brokers offer for auto-creation.
	AutoCreateTopic = "TBW102"
)

// Encoding selects the header encoding of responses.
type Encoding int

const (
	// EncodingAsRequest answers in the request's header encoding (a 4.9 broker's normal path).
	EncodingAsRequest Encoding = iota
	// EncodingJSON always answers with JSON headers (5.x brokers with default settings).
	EncodingJSON
	// EncodingRocketMQ always answers with ROCKETMQ binary headers.
	EncodingRocketMQ
)

// Config configures a Cluster. The zero value starts one broker, "broker-a", with no topics.
type Config struct {
	// Brokers names the broker masters, one listener each; default {"broker-a"}.
	Brokers []string
	// ClusterName is the cluster every broker belongs to; default "DefaultCluster".
	ClusterName string
	// Host is the IP every listener binds; default "127.0.0.1". Routes carry Host:port.
	Host string
	// NameServerPort is the NameServer's port; default 0 (any free port). Brokers always
	// take free ports.
	NameServerPort int
	// Topics are created on every broker at start: name -> read and write queue count.
	Topics map[string]int
	// AutoCreate gives every broker the TBW102 topic (perm 7: read, write, inherit) with
	// DefaultTopicQueueNums queues, so sends to unknown topics create them (spec §3.5).
	AutoCreate bool
	// DefaultTopicQueueNums is TBW102's queue count; default 8, as on a real broker.
	DefaultTopicQueueNums int
	// MaxMessages and MaxBytes bound each broker's store (stored-message encoding bytes);
	// the oldest messages are dropped first. Defaults 100000 and 256 MiB.
	MaxMessages int
	MaxBytes    int64
	// MaxMessageSize is the largest body (as sent, possibly compressed) and batch a broker
	// accepts; larger ones get MESSAGE_ILLEGAL (13). Default 4 MiB.
	MaxMessageSize int
	// MaxFrameSize is the largest frame read, counting the length prefix; a longer one
	// closes the connection. Default remoting.MaxFrameSize (16 MiB).
	MaxFrameSize int
	// ResponseEncoding selects the responses' header encoding; default EncodingAsRequest.
	ResponseEncoding Encoding
	// Version is the MQVersion ordinal stamped on responses; default 479 (V5_3_3).
	Version int32
	// Region is the MSG_REGION of send answers; default "DefaultRegion".
	Region string
	// Timeline schedules fault changes relative to Start.
	Timeline Timeline
	// ManualTimeline disables the timeline goroutine: the test drives the timeline with
	// Cluster.AdvanceTimeline.
	ManualTimeline bool
	// Clock drives the timeline goroutine; default the real clock.
	Clock Clock
	// Seed makes random choices (latency, injected errors, queues for queueId -1)
	// reproducible; 0 picks a random seed.
	Seed uint64
	// Logger receives the fixture's logs; default none.
	Logger hclog.Logger
}

func (c *Config) withDefaults() Config {
	out := *c
	if len(out.Brokers) == 0 {
		out.Brokers = []string{DefaultBroker}
	}
	out.Brokers = slices.Clone(out.Brokers)
	if out.ClusterName == "" {
		out.ClusterName = DefaultClusterName
	}
	if out.Host == "" {
		out.Host = DefaultHost
	}
	if out.DefaultTopicQueueNums == 0 {
		out.DefaultTopicQueueNums = DefaultTopicQueueNums
	}
	if out.MaxMessages == 0 {
		out.MaxMessages = DefaultMaxMessages
	}
	if out.MaxBytes == 0 {
		out.MaxBytes = DefaultMaxBytes
	}
	if out.MaxMessageSize == 0 {
		out.MaxMessageSize = DefaultMaxMessageSize
	}
	if out.MaxFrameSize == 0 {
		out.MaxFrameSize = remoting.MaxFrameSize
	}
	if out.Version == 0 {
		out.Version = DefaultVersion
	}
	if out.Region == "" {
		out.Region = DefaultRegion
	}
	if out.Clock == nil {
		out.Clock = realClock{}
	}
	if out.Logger == nil {
		out.Logger = hclog.NewNullLogger()
	}
	out.Timeline = slices.Clone(out.Timeline)
	for i := range out.Timeline {
		out.Timeline[i].Fault = out.Timeline[i].Fault.clone()
	}
	sort.SliceStable(out.Timeline, func(i, j int) bool { return out.Timeline[i].At < out.Timeline[j].At })
	return out
}

func (c *Config) validate() error {
	var errs []error
	seen := make(map[string]bool)
	for _, b := range c.Brokers {
		if err := validateName(b, 127); err != "" {
			errs = append(errs, fmt.Errorf("broker name %q: %s", b, err))
		}
		if seen[b] {
			errs = append(errs, fmt.Errorf("broker %q listed twice", b))
		}
		seen[b] = true
	}
	if net.ParseIP(c.Host) == nil {
		errs = append(errs, fmt.Errorf("field Host: %q is not an IP address", c.Host))
	}
	if c.NameServerPort < 0 || c.NameServerPort > 65535 {
		errs = append(errs, fmt.Errorf("NameServerPort %d is out of range", c.NameServerPort))
	}
	for t, n := range c.Topics {
		if err := validateName(t, maxTopicLen); err != "" {
			errs = append(errs, fmt.Errorf("topic %q: %s", t, err))
		}
		if n < 1 || n > maxQueues {
			errs = append(errs, fmt.Errorf("topic %q: queue count %d must be in 1..%d", t, n, maxQueues))
		}
	}
	if c.DefaultTopicQueueNums < 1 || c.DefaultTopicQueueNums > maxQueues {
		errs = append(errs, fmt.Errorf("DefaultTopicQueueNums %d must be in 1..%d", c.DefaultTopicQueueNums, maxQueues))
	}
	if c.MaxMessages < 1 || c.MaxBytes < 1 || c.MaxMessageSize < 1 {
		errs = append(errs, fmt.Errorf("MaxMessages, MaxBytes and MaxMessageSize must be positive"))
	}
	if c.MaxFrameSize < 1<<10 {
		errs = append(errs, fmt.Errorf("MaxFrameSize %d is below 1 KiB", c.MaxFrameSize))
	}
	if c.ResponseEncoding < EncodingAsRequest || c.ResponseEncoding > EncodingRocketMQ {
		errs = append(errs, fmt.Errorf("unknown ResponseEncoding %d", c.ResponseEncoding))
	}
	if c.Version < 0 || c.Version > 32767 {
		errs = append(errs, fmt.Errorf("field Version: %d must fit an int16", c.Version))
	}
	for i, ev := range c.Timeline {
		if !seen[ev.Broker] {
			errs = append(errs, fmt.Errorf("timeline event %d: %w %q", i, ErrUnknownBroker, ev.Broker))
		}
		if ev.At < 0 {
			errs = append(errs, fmt.Errorf("timeline event %d: At %v is negative", i, ev.At))
		}
		if err := ev.Fault.validate(); err != nil {
			errs = append(errs, fmt.Errorf("timeline event %d: %w", i, err))
		}
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("%w: %w", ErrInvalidConfig, err)
	}
	return nil
}

const (
	maxTopicLen = 127
	maxQueues   = 1024
)

// validateName applies the topic charset rule ([%|a-zA-Z0-9_-], at most max characters);
// it returns "" or the problem.
func validateName(s string, max int) string {
	switch {
	case s == "":
		return "is blank"
	case len(s) > max:
		return "is longer than " + strconv.Itoa(max) + " characters"
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '%' || c == '|' || c == '-' || c == '_') {
			return "contains illegal characters, allowing only ^[%|a-zA-Z0-9_-]+$"
		}
	}
	return ""
}

// Cluster is a running NameServer with its brokers. Safe for concurrent use.
type Cluster struct {
	cfg   Config
	log   hclog.Logger
	rnd   *lockedRand
	ns    *nameServer
	list  []*Broker // in Config.Brokers order
	names map[string]*Broker
	start time.Time

	stop      chan struct{}
	wg        sync.WaitGroup
	closeOnce sync.Once

	tlMu   sync.Mutex
	tlNext int

	overrideMu sync.Mutex
	overrides  map[string][]byte // topic -> raw route body (SetRoute)
}

// Start validates cfg, listens for the NameServer and every broker on Host (port 0 unless
// configured), creates the configured topics and starts the timeline. ctx bounds only the
// start-up; the cluster runs until Close.
func Start(ctx context.Context, cfg Config) (*Cluster, error) {
	cfg = cfg.withDefaults()
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	c := &Cluster{
		cfg:   cfg,
		log:   cfg.Logger.Named("devbroker"),
		rnd:   newLockedRand(cfg.Seed),
		names: make(map[string]*Broker),
		stop:  make(chan struct{}),
	}
	c.ns = newNameServer(c)
	if err := c.ns.ep.listen(ctx, net.JoinHostPort(cfg.Host, strconv.Itoa(cfg.NameServerPort))); err != nil {
		c.Close()
		return nil, err
	}
	for _, name := range cfg.Brokers {
		b := newBroker(c, name)
		c.list = append(c.list, b)
		c.names[name] = b
		if err := b.ep.listen(ctx, net.JoinHostPort(cfg.Host, "0")); err != nil {
			c.Close()
			return nil, err
		}
	}
	for t, n := range cfg.Topics {
		for _, b := range c.list {
			b.putTopic(topicConfig{name: t, read: n, write: n, perm: permRead | permWrite})
		}
	}
	c.start = cfg.Clock.Now()
	if len(cfg.Timeline) > 0 && !cfg.ManualTimeline {
		c.wg.Add(1)
		go c.runTimeline()
	}
	c.log.Info("started", "namesrv", c.ns.ep.address(), "brokers", len(c.list))
	return c, nil
}

// SetRoute makes the NameServer answer body, verbatim, to route queries for topic (nil
// removes the override): absurd or broken route data for tests.
func (c *Cluster) SetRoute(topic string, body []byte) {
	c.overrideMu.Lock()
	defer c.overrideMu.Unlock()
	if c.overrides == nil {
		c.overrides = make(map[string][]byte)
	}
	if body == nil {
		delete(c.overrides, topic)
		return
	}
	c.overrides[topic] = slices.Clone(body)
}

func (c *Cluster) routeOverride(topic string) ([]byte, bool) {
	c.overrideMu.Lock()
	defer c.overrideMu.Unlock()
	b, ok := c.overrides[topic]
	return b, ok
}

// NameServerAddr returns the NameServer's "host:port".
func (c *Cluster) NameServerAddr() string { return c.ns.ep.address() }

// Broker returns the named broker, or nil.
func (c *Cluster) Broker(name string) *Broker { return c.names[name] }

// Brokers returns every broker in Config.Brokers order.
func (c *Cluster) Brokers() []*Broker { return slices.Clone(c.list) }

// CreateTopic creates (or updates) topic with queues read and write queues on every broker,
// as UPDATE_AND_CREATE_TOPIC would; the NameServer routes it at once.
func (c *Cluster) CreateTopic(topic string, queues int) error {
	if err := validateName(topic, maxTopicLen); err != "" {
		return fmt.Errorf("devbroker: topic %q %s", topic, err)
	}
	if queues < 1 || queues > maxQueues {
		return fmt.Errorf("devbroker: queue count %d must be in 1..%d", queues, maxQueues)
	}
	for _, b := range c.list {
		b.putTopic(topicConfig{name: topic, read: queues, write: queues, perm: permRead | permWrite})
	}
	return nil
}

// Close stops the timeline, closes every listener and connection, and waits for every
// goroutine the cluster started. Stored messages are discarded. It is idempotent.
func (c *Cluster) Close() error {
	c.closeOnce.Do(func() {
		close(c.stop)
		c.ns.ep.stop()
		for _, b := range c.list {
			b.ep.stop()
		}
		c.wg.Wait()
		c.log.Info("closed")
	})
	return nil
}

func (c *Cluster) closed() bool {
	select {
	case <-c.stop:
		return true
	default:
		return false
	}
}

// AdvanceTimeline applies, in order, every not yet applied timeline event with At <=
// elapsed, and returns them. Tests set Config.ManualTimeline and call it instead of
// waiting; with the timeline goroutine running it simply applies due events early.
func (c *Cluster) AdvanceTimeline(elapsed time.Duration) []Event {
	c.tlMu.Lock()
	defer c.tlMu.Unlock()
	var applied []Event
	for c.tlNext < len(c.cfg.Timeline) && c.cfg.Timeline[c.tlNext].At <= elapsed {
		ev := c.cfg.Timeline[c.tlNext]
		c.tlNext++
		if c.closed() {
			break
		}
		b := c.names[ev.Broker]
		if err := b.SetFault(ev.Fault); err != nil {
			c.log.Error("timeline event failed", "at", ev.At, "broker", ev.Broker, "error", err)
		} else {
			c.log.Info("timeline event applied", "at", ev.At, "broker", ev.Broker)
		}
		applied = append(applied, ev)
	}
	return applied
}

// runTimeline applies events as the clock reaches them.
func (c *Cluster) runTimeline() {
	defer c.wg.Done()
	for {
		c.tlMu.Lock()
		if c.tlNext >= len(c.cfg.Timeline) {
			c.tlMu.Unlock()
			return
		}
		at := c.cfg.Timeline[c.tlNext].At
		c.tlMu.Unlock()
		if wait := c.start.Add(at).Sub(c.cfg.Clock.Now()); wait > 0 {
			select {
			case <-c.cfg.Clock.After(wait):
			case <-c.stop:
				return
			}
			continue
		}
		c.AdvanceTimeline(c.cfg.Clock.Now().Sub(c.start))
	}
}

// routeBrokers returns the brokers the NameServer currently lists, sorted by name.
func (c *Cluster) routeBrokers() []*Broker {
	var out []*Broker
	for _, b := range c.list {
		if b.routed() {
			out = append(out, b)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].name < out[j].name })
	return out
}
