// Package strategywire holds what both sides of the strategy plugin protocol share:
// the go-plugin handshake, the protocol versions, the route-cache rules both sides
// apply in step, the error codes that cross the process and the generated protocol
// (subpackage strategypb). The plugin side is package sdk (Serve); the host side is
// host/internal/pluginclient. It imports neither, so both can import it; it is
// internal because no plugin author needs it. Under GOOS=wasip1 only its plain Go
// part builds (no go-plugin, gRPC or protobuf), so that a WebAssembly guest importing
// sdk links none of them.
package strategywire

import "time"

// Protocol constants shared by sdk.Serve (the plugin side) and the host's client.
const (
	// ProtocolVersion is the strategy protocol version this build speaks; host and
	// plugin agree on it in Describe. It changes when the session messages change
	// meaning. Version 2 adds BrokerHealth.weight (a version-1 peer sends none:
	// unweighted) and DescribeRequest.settings: the plugin builds its strategy from them
	// in Describe and gets no Configure.
	ProtocolVersion = 2
	// MinProtocolVersion is the oldest strategy protocol version this build still speaks.
	MinProtocolVersion = 1
	// PluginName is the name a strategy is served and dispensed under.
	PluginName = "strategy"
	// RouteVersionsKept is how many route versions of one topic a plugin session keeps
	// (the most recently defined ones). A selection that refers to an older one is
	// answered with ErrRouteUnknown and the host sends the queue list again.
	RouteVersionsKept = 4
	// RouteTopicsKept bounds the topics a plugin session keeps routes for; past it the
	// session forgets all routes and the host re-sends them as needed.
	RouteTopicsKept = 4096
	// EnvLogLevel names the environment variable that sets a plugin's log level (trace,
	// debug, info, warn, error); the default is info. The host passes it through to
	// the plugin's environment.
	EnvLogLevel = "PRODUCERD_PLUGIN_LOG_LEVEL"
)

// Features lists the optional interfaces of the sdk contract a strategy implements. A
// plugin declares them in Describe (a type assertion cannot cross a process); a
// WebAssembly module declares them in its describe flags.
type Features struct {
	Observer       bool
	HealthReporter bool
	HealthSeeder   bool
	// Configurable: the strategy takes settings (every Constructor-built one does).
	Configurable bool
	Describer    bool
}

// TopicRoutes keeps the RouteVersionsKept most recently defined versions of one
// topic's queue list, oldest first; defining a version again makes it the most recent.
// The plugin keeps one per topic with the queue lists (V = []sdk.Queue); the host
// keeps the same structure as a mirror (V = struct{}) and applies the same definitions
// in the same order, so it knows which versions the plugin holds. Not safe for
// concurrent use.
type TopicRoutes[V any] struct {
	n       int
	version [RouteVersionsKept]uint64
	value   [RouteVersionsKept]V
}

// Get returns what version v was defined with, if it is still kept.
func (t *TopicRoutes[V]) Get(v uint64) (V, bool) {
	for i := range t.n {
		if t.version[i] == v {
			return t.value[i], true
		}
	}
	var zero V
	return zero, false
}

// Put defines version v, evicting the oldest when RouteVersionsKept are kept.
func (t *TopicRoutes[V]) Put(v uint64, val V) {
	for i := range t.n {
		if t.version[i] == v {
			copy(t.version[i:t.n], t.version[i+1:t.n])
			copy(t.value[i:t.n], t.value[i+1:t.n])
			t.n--
			break
		}
	}
	if t.n == RouteVersionsKept {
		copy(t.version[:], t.version[1:])
		copy(t.value[:], t.value[1:])
		t.n--
	}
	t.version[t.n], t.value[t.n] = v, val
	t.n++
}

// HealthRow is the shape of sdk.BrokerHealth: the same fields in the same order. Both
// sides translate health tables (the plugin publishes them, the host seeds them), so
// the translation lives here, generic over that shape: a field added to
// sdk.BrokerHealth and not here stops the build instead of being dropped on the wire.
type HealthRow = struct {
	Broker    string
	Available bool
	Until     time.Time
	Latency   time.Duration
	Weight    uint32
}
