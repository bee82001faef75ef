package core

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/producerd/producerd/internal/strmap"
	"github.com/producerd/producerd/plugins/sdk"
	"github.com/producerd/producerd/plugins/sdk/pick"
	"github.com/producerd/producerd/remoting"
)

// Defaults of ClientConfig, as in the Java client (spec §5).
const (
	DefaultRouteRefresh = 30 * time.Second
	DefaultHeartbeat    = 30 * time.Second
	DefaultAPITimeout   = 3 * time.Second
	// DefaultInstanceName is replaced by "PID#nanos" so that each client gets its own
	// instance unless an instance name is set.
	DefaultInstanceName = "DEFAULT"
	innerProducerGroup  = "CLIENT_INNER_PRODUCER"
)

// ClientConfig configures a client instance: the connections, routes and scheduled work
// shared by every producer group with the same client id.
type ClientConfig struct {
	// NameServers are the NameServer addresses ("host:port"); required.
	NameServers []string
	// InstanceName is part of the client id. Producers with the same client id share one
	// client instance. Default "DEFAULT", which becomes "PID#nanos" (one instance per producer).
	InstanceName string
	// UnitName, when set, is appended to the client id.
	UnitName string
	// ClientIP is the first part of the client id; default: the host's address.
	ClientIP string
	// RouteRefresh is how often every known topic's route is fetched again; default 30s.
	RouteRefresh time.Duration
	// Heartbeat is how often masters receive a heartbeat naming the producer groups; default 30s.
	Heartbeat time.Duration
	// APITimeout bounds route queries, heartbeats and unregistration; default 3s.
	APITimeout time.Duration
	// MaxQueuesPerBroker and MaxBrokersPerRoute bound the route data a NameServer may
	// send (queues per broker, brokers per route): a route beyond them is refused with
	// ErrBadRoute before anything is allocated for it. Defaults 1024 and 256.
	MaxQueuesPerBroker int
	MaxBrokersPerRoute int
	// MaxQueuesPerRoute bounds the write (and read) queues of one route in all, summed
	// over its brokers; default 8192.
	MaxQueuesPerRoute int
	// Remoting configures the transport (dialer, TLS, header encoding, hooks).
	Remoting remoting.Config
	// Logger receives the client's logs; default: none.
	Logger hclog.Logger
}

func (c *ClientConfig) withDefaults() ClientConfig {
	out := *c
	if out.InstanceName == "" {
		out.InstanceName = DefaultInstanceName
	}
	if out.RouteRefresh == 0 {
		out.RouteRefresh = DefaultRouteRefresh
	}
	if out.Heartbeat == 0 {
		out.Heartbeat = DefaultHeartbeat
	}
	if out.APITimeout == 0 {
		out.APITimeout = DefaultAPITimeout
	}
	if out.MaxQueuesPerBroker == 0 {
		out.MaxQueuesPerBroker = DefaultMaxQueuesPerBroker
	}
	if out.MaxBrokersPerRoute == 0 {
		out.MaxBrokersPerRoute = DefaultMaxBrokersPerRoute
	}
	if out.MaxQueuesPerRoute == 0 {
		out.MaxQueuesPerRoute = DefaultMaxQueuesPerRoute
	}
	if out.ClientIP == "" {
		if ip := localIP(); ip != nil {
			out.ClientIP = ip.String()
		} else {
			out.ClientIP = "127.0.0.1"
		}
	}
	if out.Logger == nil {
		out.Logger = hclog.NewNullLogger()
	}
	if out.Remoting.Logger == nil {
		out.Remoting.Logger = out.Logger.Named("remoting")
	}
	return out
}

func (c *ClientConfig) validate() error {
	var errs []error
	if len(c.NameServers) == 0 {
		errs = append(errs, fmt.Errorf("%w: NameServers: %w", ErrInvalidConfig, ErrNoNameServer))
	}
	for name, d := range map[string]time.Duration{"RouteRefresh": c.RouteRefresh, "Heartbeat": c.Heartbeat, "APITimeout": c.APITimeout} {
		if d < 0 {
			errs = append(errs, fmt.Errorf("%w: %s is negative (%v)", ErrInvalidConfig, name, d))
		}
	}
	if c.MaxQueuesPerBroker < 0 || c.MaxBrokersPerRoute < 0 || c.MaxQueuesPerRoute < 0 {
		errs = append(errs, fmt.Errorf("%w: MaxQueuesPerBroker (%d), MaxBrokersPerRoute (%d) and MaxQueuesPerRoute (%d) must not be negative",
			ErrInvalidConfig, c.MaxQueuesPerBroker, c.MaxBrokersPerRoute, c.MaxQueuesPerRoute))
	}
	return errors.Join(errs...)
}

// clientID renders IP@instance[@unit] (spec §5).
func (c *ClientConfig) clientID() string {
	id := c.ClientIP + "@" + c.InstanceName
	if c.UnitName != "" {
		id += "@" + c.UnitName
	}
	return id
}

// Client is one client instance (the Java MQClientInstance): a remoting client, the route
// table, and the scheduled route refresh and heartbeat. It is shared by every Producer
// whose config yields the same client id; it starts with the first and stops when the
// last one closes. Safe for concurrent use.
type Client struct {
	rr  *pick.Picker // the fallback's round-robin, shared by the publish infos
	id  string
	cfg ClientConfig
	rc  *remoting.Client
	log hclog.Logger

	mu          sync.Mutex
	groups      map[string]*Producer
	brokerAddrs map[string]map[int64]string       // broker name -> id -> addr
	masters     atomic.Pointer[map[string]string] // broker name -> master addr: brokerAddrs' masters, for sends without c.mu
	routes      map[string]*TopicRoute            // last route per topic (incl. TBW102 fallbacks)
	routeNS     map[string]string                 // NameServer of each last route
	probes      map[string]*probeCall             // latest liveness probe per broker address
	// The last installed route's parts, shared by the next equal one (shareRoute).
	lastBrokers    []BrokerData
	lastQueueDatas []QueueData
	lastQueues     []sdk.Queue
	lastBody       atomic.Pointer[lastBody] // the last route body parsed
	checks         int                      // transaction check-backs being answered
	closed         bool

	topics   strmap.Map[*topicState] // topic -> state (not a sync.Map: see package strmap)
	routeSeq atomic.Uint64

	// hbMu serializes heartbeat rounds with unregistration, so that a round that saw a
	// group cannot reach a broker after that group's UNREGISTER_CLIENT.
	hbMu sync.Mutex
	stop chan struct{}
	wg   sync.WaitGroup
}

// topicState holds a topic's current publish info and serializes its route fetches.
type topicState struct {
	info atomic.Pointer[publishInfo]

	fetchMu sync.Mutex // one route fetch per topic in flight
	// forgotten is set (under c.mu) when forgetTopic dropped the topic: a refresh cycle
	// that listed it before skips it, and a fetch in flight then installs nothing.
	forgotten atomic.Bool
	// route and ns are the topic's entries in Client.routes and Client.routeNS (c.mu):
	// the refresh of an unchanged route compares them here, in the state it holds
	// anyway, instead of looking up two maps of every topic.
	route *TopicRoute
	ns    string
}

// publishInfo is an immutable snapshot of a topic's publish queues (Java TopicPublishInfo).
type publishInfo struct {
	topic   string
	version uint64
	queues  []sdk.Queue
	route   *TopicRoute
	ordered bool
	// fromDefault marks a route borrowed from TBW102 (auto-create pending).
	fromDefault bool
	rr          *pick.Picker // in-process round-robin (the client's), random start per topic
}

func (p *publishInfo) ok() bool { return p != nil && len(p.queues) > 0 }

// selectRR is the Java default selection (spec §7.2): the next queue round-robin,
// avoiding lastBroker when another broker has a queue (package pick's walk with the zero
// policy; the counter moves once per decision).
func (p *publishInfo) selectRR(lastBroker string) int {
	return p.rr.Pick(&sdk.Selection{Topic: p.topic, RouteVersion: p.version, Queues: p.queues, LastBroker: lastBroker})
}

var registry = struct {
	sync.Mutex
	clients map[string]*Client
}{clients: make(map[string]*Client)}

// acquireClient returns the client instance for cfg's client id, creating it on first use,
// and registers the producer's group on it.
func acquireClient(cfg ClientConfig, p *Producer) (*Client, error) {
	cfg = cfg.withDefaults()
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	if cfg.InstanceName == DefaultInstanceName {
		cfg.InstanceName = strconv.Itoa(os.Getpid()) + "#" + strconv.FormatInt(time.Now().UnixNano(), 10)
	}
	id := cfg.clientID()
	registry.Lock()
	defer registry.Unlock()
	c := registry.clients[id]
	if c == nil {
		var err error
		if c, err = newClient(id, cfg); err != nil {
			return nil, err
		}
		registry.clients[id] = c
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, dup := c.groups[p.cfg.Group]; dup {
		return nil, fmt.Errorf("%w: group %q on client %s", ErrGroupExists, p.cfg.Group, id)
	}
	c.groups[p.cfg.Group] = p
	return c, nil
}

func newClient(id string, cfg ClientConfig) (*Client, error) {
	var c *Client
	// A new connection to a broker gets a heartbeat at once, as Java 5 sends one when a
	// channel opens, so the broker learns the producer groups now, not at the next round.
	rcfg := cfg.Remoting
	userOnConn := rcfg.Hooks.OnConn
	rcfg.Hooks.OnConn = func(e remoting.ConnEvent) {
		if userOnConn != nil {
			userOnConn(e)
		}
		if e.Open {
			c.heartbeatOnConnect(e.Addr)
		}
	}
	rcfg.OnServerRequest = func(addr string, req *remoting.Command) { c.onServerRequest(addr, req) }
	rc, err := remoting.NewClient(rcfg)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalidConfig, err)
	}
	rc.SetNameServers(cfg.NameServers)
	c = &Client{
		rr:          pick.New(pick.Options{}),
		id:          id,
		cfg:         cfg,
		rc:          rc,
		log:         cfg.Logger.With("client", id),
		groups:      make(map[string]*Producer),
		brokerAddrs: make(map[string]map[int64]string),
		routes:      make(map[string]*TopicRoute),
		routeNS:     make(map[string]string),
		probes:      make(map[string]*probeCall),
		stop:        make(chan struct{}),
	}
	c.wg.Add(2)
	r := &refresher[refreshEntry]{initial: 10 * time.Millisecond, period: cfg.RouteRefresh,
		workers: routeRefreshWorkers, batch: RouteRefreshBatch, topics: c.refreshEntries, fetch: c.refreshTopics, stop: c.stop}
	go func() { defer c.wg.Done(); r.run() }()
	go c.every(time.Second, cfg.Heartbeat, func() { c.cleanOfflineBrokers(); c.sendHeartbeats() })
	return c, nil
}

// ID returns the client id, e.g. "10.0.0.5@producerd".
func (c *Client) ID() string { return c.id }

// Remoting returns the transport, for admin requests and status.
func (c *Client) Remoting() *remoting.Client { return c.rc }

func (c *Client) every(initial, period time.Duration, f func()) {
	defer c.wg.Done()
	t := time.NewTimer(initial)
	defer t.Stop()
	for {
		select {
		case <-c.stop:
			return
		case <-t.C:
			f()
			t.Reset(period)
		}
	}
}

// release unregisters a producer group from the brokers and from the instance; the last
// group stops the instance.
func (c *Client) release(p *Producer) {
	// Forget the group first (spec §8.5), so no later heartbeat names it again.
	registry.Lock()
	c.mu.Lock()
	delete(c.groups, p.cfg.Group)
	last := len(c.groups) == 0
	if last {
		c.closed = true
		delete(registry.clients, c.id)
	}
	c.mu.Unlock()
	registry.Unlock()
	c.unregister(p.cfg.Group)
	if last {
		close(c.stop)
		c.wg.Wait()
		c.rc.Close()
	}
}

// cancelOnStop cancels ctx (through its cancel) when the client stops, for work the
// client owns that must not outlive it.
func (c *Client) cancelOnStop(ctx context.Context, cancel context.CancelFunc) {
	go func() {
		select {
		case <-c.stop:
			cancel()
		case <-ctx.Done():
		}
	}()
}

// forgetTopic drops a topic's cached route, so the scheduled refresh stops asking the
// NameServer for it; its next send fetches the route again. Its round-robin counter
// goes too.
func (c *Client) forgetTopic(name string) {
	ts, ok := c.topics.LoadAndDelete(name)
	c.rr.Forget(name)
	c.mu.Lock()
	if ok {
		// Under c.mu: a fetch or send still holding the state installs nothing after
		// this (install checks the mark under c.mu).
		ts.forgotten.Store(true)
	}
	delete(c.routes, name) // else kept for ever, and walked by every offline-broker sweep
	delete(c.routeNS, name)
	c.mu.Unlock()
}

// topic returns name's state, made on first use. name becomes the map key as it is: a
// caller that slices topic names out of a large buffer should pass a copy.
func (c *Client) topic(name string) *topicState {
	if ts, ok := c.topics.Load(name); ok {
		return ts
	}
	ts, _ := c.topics.LoadOrStore(name, &topicState{})
	return ts
}

// publishInfo returns a usable publish info for topic, fetching the route on first use. Only
// when the NameServer answers TOPIC_NOT_EXIST does it fall back to the default topic's route
// (TBW102 auto-create, spec §3.5), as Java does; a route without a writable queue is an
// error, never a reason to auto-create the topic elsewhere.
func (c *Client) publishInfo(ctx context.Context, topic, defaultTopic string, defaultQueueNums int) (*publishInfo, error) {
	ts := c.topic(topic)
	if pi := ts.info.Load(); pi.ok() {
		return pi, nil
	}
	ts.fetchMu.Lock()
	defer ts.fetchMu.Unlock()
	if pi := ts.info.Load(); pi.ok() { // fetched while we waited
		return pi, nil
	}
	pi, err := c.updateRoute(ctx, topic, ts)
	switch {
	case pi.ok():
		return pi, nil
	case err == nil:
		return nil, &RouteError{Topic: topic, Kind: ErrNoWritableQueue, NameServer: c.lastRouteNS(topic), Detail: c.route(topic).unwritable()}
	case !isTopicNotExist(err):
		return nil, err
	case defaultTopic == "":
		return nil, &RouteError{Topic: topic, Kind: ErrTopicNotExist, NameServer: nsOf(err), Detail: "auto-create is off", Cause: err}
	}
	fr, ns, derr := c.fetchRoute(ctx, defaultTopic)
	if derr != nil {
		if isTopicNotExist(derr) {
			return nil, &RouteError{Topic: topic, Kind: ErrTopicNotExist, NameServer: ns,
				Detail: "and the default topic " + defaultTopic + " for auto-create does not exist either", Cause: errors.Join(err, derr)}
		}
		return nil, derr
	}
	pi = c.install(topic, ts, c.prepareRoute(fr.route.withDefaultQueueNums(defaultQueueNums)), true, ns)
	if !pi.ok() {
		return nil, &RouteError{Topic: topic, Kind: ErrNoWritableQueue, NameServer: ns,
			Detail: "the default topic " + defaultTopic + " has no writable queue: " + fr.route.unwritable(), Cause: err}
	}
	return pi, nil
}

// nsOf is the NameServer of a route error, or "".
func nsOf(err error) string {
	var re *RouteError
	if errors.As(err, &re) {
		return re.NameServer
	}
	var rme *remoting.Error
	if errors.As(err, &rme) {
		return rme.Addr
	}
	return ""
}

// route returns the last route installed for topic.
func (c *Client) route(topic string) *TopicRoute {
	c.mu.Lock()
	defer c.mu.Unlock()
	if r := c.routes[topic]; r != nil {
		return r
	}
	return &TopicRoute{}
}

// lastRouteNS returns the NameServer that sent topic's last route.
func (c *Client) lastRouteNS(topic string) string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.routeNS[topic]
}

// updateRoute fetches topic's route and installs it; on any failure the cached info stays.
func (c *Client) updateRoute(ctx context.Context, topic string, ts *topicState) (*publishInfo, error) {
	fr, ns, err := c.fetchRoute(ctx, topic)
	if err != nil {
		return ts.info.Load(), err
	}
	return c.install(topic, ts, fr, false, ns), nil
}

// preparedRoute is a route with its publish queue list, read-only from the moment it is
// prepared: topics with the same route body share one.
type preparedRoute struct {
	route   *TopicRoute
	queues  []sdk.Queue
	ordered bool
}

// lastBody is the last route body parsed, with what it was parsed into.
type lastBody struct {
	body []byte
	pr   *preparedRoute
}

// prepareRoute computes route's publish queues and shares its parts with the last route
// prepared when equal (shareRoute). route must not have been seen by anyone else yet.
func (c *Client) prepareRoute(route *TopicRoute) *preparedRoute {
	queues, ordered := route.publishQueues()
	c.mu.Lock()
	c.shareRoute(route, &queues)
	c.mu.Unlock()
	return &preparedRoute{route: route, queues: queues, ordered: ordered}
}

// fetchRoute asks a NameServer for topic's route and checks it (routeAnswer).
func (c *Client) fetchRoute(ctx context.Context, topic string) (*preparedRoute, string, error) {
	// The deadline travels as a value: a derived context (a timer, and a child
	// registered with the caller's context under its lock) per fetch was a third of
	// the refresh's CPU at 100,000 topics.
	var req remoting.Command
	routeRequest(&req, make([]remoting.Field, 1), topic)
	resp, addr, err := c.rc.InvokeNameServerUntil(ctx, &req, time.Now().Add(c.cfg.APITimeout))
	pr, err := c.routeAnswer(topic, resp, addr, err)
	return pr, addr, err
}

// routeRequest makes cmd GET_ROUTEINFO_BY_TOPIC for topic, its header as one field (no
// ext map) in field, a slice of length 1 (a batch's requests share one array).
func routeRequest(cmd *remoting.Command, field []remoting.Field, topic string) {
	field[0] = remoting.Field{Key: "topic", Value: topic}
	*cmd = remoting.Command{Code: int32(remoting.GetRouteInfoByTopic), Fields: field[:1:1]}
}

// routeAnswer turns a NameServer's answer to routeRequest(topic) (resp from addr, or
// the request's error err) into a checked route, held against the sanity bounds.
// Errors are *RouteError, except a NameServer's answer other than TOPIC_NOT_EXIST, which
// is returned as the *remoting.Error it is.
func (c *Client) routeAnswer(topic string, resp *remoting.Command, addr string, err error) (*preparedRoute, error) {
	if err != nil {
		if addr == "" {
			addr = strings.Join(c.rc.NameServers(), ";")
		}
		if errors.Is(err, context.Canceled) {
			return nil, err
		}
		return nil, &RouteError{Topic: topic, Kind: ErrNameServerUnreachable, NameServer: addr, Cause: err}
	}
	if err := remoting.ResponseError(addr, resp); err != nil {
		return nil, err
	}
	if len(resp.Body) == 0 {
		return nil, &RouteError{Topic: topic, Kind: ErrBadRoute, NameServer: addr, Detail: "empty route body"}
	}
	// A route body names no topic: the refresh of topics on the same brokers gets the
	// same bytes again and again, parsed and checked once (the body of a frame is never
	// written again once read, so it can be kept).
	if lb := c.lastBody.Load(); lb != nil && bytes.Equal(lb.body, resp.Body) {
		return lb.pr, nil
	}
	route, err := ParseTopicRoute(resp.Body)
	if err != nil {
		return nil, &RouteError{Topic: topic, Kind: ErrBadRoute, NameServer: addr, Cause: err}
	}
	if why := route.check(c.cfg.MaxQueuesPerBroker, c.cfg.MaxBrokersPerRoute, c.cfg.MaxQueuesPerRoute); why != "" {
		return nil, &RouteError{Topic: topic, Kind: ErrBadRoute, NameServer: addr, Detail: why}
	}
	pr := c.prepareRoute(route)
	c.lastBody.Store(&lastBody{body: resp.Body, pr: pr})
	return pr, nil
}

// install records a fetched route and publishes a new publish info when the queue set
// changed; the route version changes exactly then.
func (c *Client) install(topic string, ts *topicState, pr *preparedRoute, fromDefault bool, ns string) *publishInfo {
	route, queues, ordered := pr.route, pr.queues, pr.ordered
	changed := false
	c.mu.Lock()
	// A refresh mostly brings the shared route of the last one (prepareRoute): the maps
	// of every topic are left alone then.
	if (ts.route != route || ts.ns != ns) && !ts.forgotten.Load() {
		c.routes[topic], c.routeNS[topic] = route, ns
		ts.route, ts.ns = route, ns
	}
	for _, bd := range route.BrokerDatas {
		// Every topic's refresh names the same brokers: replace a broker's table only
		// when it changed, not with a new map per route.
		if maps.Equal(c.brokerAddrs[bd.BrokerName], bd.BrokerAddrs) {
			continue
		}
		c.brokerAddrs[bd.BrokerName] = maps.Clone(bd.BrokerAddrs)
		changed = true
	}
	if changed {
		c.publishMasters()
	}
	c.mu.Unlock()

	old := ts.info.Load()
	if old != nil && old.fromDefault == fromDefault && slices.Equal(old.queues, queues) && old.ordered == ordered {
		return old
	}
	pi := &publishInfo{
		topic: topic, version: c.routeSeq.Add(1), queues: queues, route: route,
		ordered: ordered, fromDefault: fromDefault, rr: c.rr,
	}
	ts.info.Store(pi)
	c.log.Debug("route changed", "topic", topic, "version", pi.version, "queues", len(queues), "fromDefault", fromDefault)
	return pi
}

// shareRoute makes route and queues share the broker list, queue data and publish queue
// list of the last route installed when they are equal (all of them are read-only once
// installed): topics on the same brokers then cost their name and counters, not a
// copy of the cluster each (two maps per broker). c.mu is held.
func (c *Client) shareRoute(route *TopicRoute, queues *[]sdk.Queue) {
	if sameBrokers(c.lastBrokers, route.BrokerDatas) {
		route.BrokerDatas = c.lastBrokers
	} else {
		c.lastBrokers = route.BrokerDatas
	}
	if len(route.QueueDatas) > 0 && slices.Equal(c.lastQueueDatas, route.QueueDatas) {
		route.QueueDatas = c.lastQueueDatas
	} else {
		c.lastQueueDatas = route.QueueDatas
	}
	if len(*queues) > 0 && slices.Equal(c.lastQueues, *queues) {
		*queues = c.lastQueues
	} else {
		c.lastQueues = *queues
	}
}

func sameBrokers(a, b []BrokerData) bool {
	if len(a) != len(b) || len(a) == 0 {
		return false
	}
	for i := range a {
		if a[i].Cluster != b[i].Cluster || a[i].BrokerName != b[i].BrokerName || !maps.Equal(a[i].BrokerAddrs, b[i].BrokerAddrs) {
			return false
		}
	}
	return true
}

// masterAddr returns a broker's master address from the broker table. It takes no
// lock: every attempt asks, while route refreshes and the offline-broker sweep (which
// walks every route) hold c.mu.
func (c *Client) masterAddr(broker string) string {
	if m := c.masters.Load(); m != nil {
		return (*m)[broker]
	}
	return ""
}

// publishMasters republishes the masters of brokerAddrs after it changed; c.mu is held.
func (c *Client) publishMasters() {
	m := make(map[string]string, len(c.brokerAddrs))
	for name, addrs := range c.brokerAddrs {
		if a := addrs[masterID]; a != "" {
			m[name] = a
		}
	}
	c.masters.Store(&m)
}

func isTopicNotExist(err error) bool {
	var re *remoting.Error
	return errors.As(err, &re) && re.Code == remoting.TopicNotExist
}

// cleanOfflineBrokers drops broker addresses no route mentions any more (spec §8.4).
func (c *Client) cleanOfflineBrokers() {
	c.mu.Lock()
	defer c.mu.Unlock()
	type brokerAddr struct{ name, addr string }
	live := make(map[brokerAddr]bool)
	for _, r := range c.routes {
		for _, bd := range r.BrokerDatas {
			for _, a := range bd.BrokerAddrs {
				live[brokerAddr{bd.BrokerName, a}] = true
			}
		}
	}
	changed := false
	for name, addrs := range c.brokerAddrs {
		for id, a := range addrs {
			if !live[brokerAddr{name, a}] {
				delete(addrs, id)
				changed = true
			}
		}
		if len(addrs) == 0 {
			delete(c.brokerAddrs, name)
		}
	}
	if changed {
		c.publishMasters()
	}
}

// heartbeatData is the producer HeartbeatData body (spec §8.3).
type heartbeatData struct {
	ClientID        string         `json:"clientID"`
	ConsumerDataSet []struct{}     `json:"consumerDataSet"`
	ProducerDataSet []producerData `json:"producerDataSet"`
}

type producerData struct {
	GroupName string `json:"groupName"`
}

// heartbeatBody renders the heartbeat naming every producer group of this client.
func (c *Client) heartbeatBody() []byte {
	c.mu.Lock()
	hb := heartbeatData{ClientID: c.id, ConsumerDataSet: []struct{}{},
		ProducerDataSet: []producerData{{GroupName: innerProducerGroup}}}
	for g := range c.groups {
		hb.ProducerDataSet = append(hb.ProducerDataSet, producerData{GroupName: g})
	}
	c.mu.Unlock()
	body, _ := json.Marshal(hb)
	return body
}

// heartbeatOnConnect sends one heartbeat to addr, off the dialling goroutine, when addr is
// a known broker (not a NameServer).
func (c *Client) heartbeatOnConnect(addr string) {
	c.mu.Lock()
	known := false
	for _, addrs := range c.brokerAddrs {
		for _, a := range addrs {
			known = known || a == addr
		}
	}
	if !known || c.closed {
		c.mu.Unlock()
		return
	}
	c.wg.Add(1)
	c.mu.Unlock()
	go func() {
		defer c.wg.Done()
		ctx, cancel := context.WithTimeout(context.Background(), c.cfg.APITimeout)
		defer cancel()
		c.cancelOnStop(ctx, cancel)
		resp, err := c.rc.InvokeSync(ctx, addr, remoting.NewRequest(remoting.HeartBeat, nil, c.heartbeatBody()))
		if err == nil {
			err = remoting.ResponseError(addr, resp)
		}
		if err != nil {
			c.log.Debug("heartbeat on connect failed", "broker", addr, "error", err)
		}
	}()
}

// sendHeartbeats tells every master which producer groups this client holds.
func (c *Client) sendHeartbeats() {
	if !c.hbMu.TryLock() {
		return // the previous round (or an unregistration) is still running
	}
	defer c.hbMu.Unlock()
	body := c.heartbeatBody()
	c.mu.Lock()
	var masters []string
	for _, addrs := range c.brokerAddrs {
		if a := addrs[masterID]; a != "" {
			masters = append(masters, a)
		}
	}
	c.mu.Unlock()
	if len(masters) == 0 {
		return
	}
	c.eachBroker(masters, func(ctx context.Context, addr string) error {
		resp, err := c.rc.InvokeSync(ctx, addr, remoting.NewRequest(remoting.HeartBeat, nil, body))
		if err == nil {
			err = remoting.ResponseError(addr, resp)
		}
		if err != nil {
			c.log.Warn("heartbeat failed", "broker", addr, "error", err)
		}
		return err
	})
}

// eachBroker runs f for every address at once, each bounded by APITimeout, so one hung
// broker delays a heartbeat round or a shutdown by one timeout, not one per broker.
func (c *Client) eachBroker(addrs []string, f func(ctx context.Context, addr string) error) {
	var wg sync.WaitGroup
	for _, addr := range addrs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ctx, cancel := context.WithTimeout(context.Background(), c.cfg.APITimeout)
			defer cancel()
			f(ctx, addr)
		}()
	}
	wg.Wait()
}

// unregister sends UNREGISTER_CLIENT for group to every known broker address (spec §8.5).
func (c *Client) unregister(group string) {
	c.hbMu.Lock()
	defer c.hbMu.Unlock()
	c.mu.Lock()
	var addrs []string
	for _, m := range c.brokerAddrs {
		for _, a := range m {
			addrs = append(addrs, a)
		}
	}
	c.mu.Unlock()
	ext := map[string]string{"clientID": c.id, "producerGroup": group}
	c.eachBroker(addrs, func(ctx context.Context, addr string) error {
		resp, err := c.rc.InvokeSync(ctx, addr, remoting.NewRequest(remoting.UnregisterClient, ext, nil))
		if err == nil {
			err = remoting.ResponseError(addr, resp)
		}
		if err != nil {
			c.log.Warn("unregister failed", "broker", addr, "group", group, "error", err)
		}
		return err
	})
}

// RouteInfo describes a topic's cached route, for status pages.
type RouteInfo struct {
	Topic       string
	Version     uint64
	Queues      []sdk.Queue
	FromDefault bool
}

// Routes returns the cached publish routes, sorted by topic.
func (c *Client) Routes() []RouteInfo {
	var out []RouteInfo
	c.topics.Range(func(_ string, ts *topicState) bool {
		if pi := ts.info.Load(); pi != nil {
			// A copy: topics with equal routes share one queue list (shareRoute).
			out = append(out, RouteInfo{Topic: pi.topic, Version: pi.version, Queues: slices.Clone(pi.queues), FromDefault: pi.fromDefault})
		}
		return true
	})
	slices.SortFunc(out, func(a, b RouteInfo) int {
		if a.Topic < b.Topic {
			return -1
		}
		if a.Topic > b.Topic {
			return 1
		}
		return 0
	})
	return out
}

// Brokers returns the known broker masters, name -> address.
func (c *Client) Brokers() map[string]string {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make(map[string]string, len(c.brokerAddrs))
	for name, addrs := range c.brokerAddrs {
		if a := addrs[masterID]; a != "" {
			out[name] = a
		}
	}
	return out
}

// Groups returns the producer groups registered on this instance.
func (c *Client) Groups() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make([]string, 0, len(c.groups))
	for g := range c.groups {
		out = append(out, g)
	}
	slices.Sort(out)
	return out
}
