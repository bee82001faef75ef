// Package wasmguest builds a producerd strategy, the same sdk.Selector that runs
// in-process or as a plugin process, as a WebAssembly module that the daemon runs
// in-process and sandboxed (package host/wasm).
//
// A module is a Go main package built for WASI preview 1 as a reactor:
//
//	package main
//
//	import (
//		"github.com/producerd/producerd/plugins/examples/keyhash"
//		"github.com/producerd/producerd/plugins/sdk/wasmguest"
//	)
//
//	func init() { wasmguest.Register(keyhash.Build) }
//
//	func main() {}
//
// built with
//
//	GOOS=wasip1 GOARCH=wasm go build -buildmode=c-shared -o keyhash.wasm .
//
// (Go 1.24 or later: -buildmode=c-shared makes a reactor, whose exports can be called
// after its _initialize; a plain build makes a command that runs main and exits.)
//
// The package exports the functions of the producerd WebAssembly ABI (see
// docs/wasm-abi.md and package wasmabi) and translates them to the sdk interfaces:
// Select always, and Observe, Health, Seed and Describe when the strategy implements
// them. The strategy is built by the registered sdk.Constructor: from the settings of
// the host's configure call, or with empty settings on the first call when the host has
// none to send.
//
// # What differs from running in-process
//
//   - Time: a module has no clock of its own (the host grants only WASI's fake clocks).
//     Calls carry the host's time; Now returns it. A strategy that reads the time
//     (latency-fault's Options.Now) must use Now and be registered with UsesClock, so
//     that every decision carries the time.
//   - Randomness: WASI random_get is granted and backed by the host's crypto/rand, so
//     math/rand/v2 and random start positions work as usual.
//   - No files, network, environment, arguments or sleeping: a strategy that needs an
//     active probe cannot run as a module.
//   - One module instance runs one call at a time, but the host runs several instances
//     of the module, each with its own copy of the strategy's state; every instance
//     receives every outcome and every Seed, in the same order (see host/wasm).
//   - The Selection, its Queues and its MessageInfo are reused between calls, as the sdk
//     contract allows. Topic, broker names and LastBroker are stable strings a strategy
//     may keep; the MessageInfo strings (ShardingKey, Tags, Keys) point into the call's
//     input buffer and are valid only during Select: copy one (strings.Clone) to keep
//     it. This keeps a decision free of allocation, so the module's garbage collector,
//     which runs inside the call that triggers it, stays out of the decision path.
//   - A panic in the strategy is recovered and reported to the host as an error of that
//     call; the instance stays. A fatal Go runtime error (out of memory, a deadlock) or
//     a call that outlives the host's deadline kills the instance; the host replaces it.
//
// # TinyGo
//
// The exports use //go:wasmexport, which TinyGo also implements (-target=wasip1
// -buildmode=c-shared). TinyGo builds were not tried: TinyGo is not installable on this
// project's machines, and plugins/sdk currently links its gRPC transport (reflection
// heavy, 20 MB of WebAssembly with Go) into every build of a strategy.
package wasmguest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math"
	"time"
	"unsafe"

	"github.com/producerd/producerd/plugins/sdk"
	"github.com/producerd/producerd/plugins/sdk/wasmguest/wasmabi"
)

// std is the module's strategy. A WebAssembly instance runs one call at a time, so the
// guest needs no locking.
var std guest

// Register makes the strategy build makes the one this module serves. Call it once,
// from an init function of the main package; it panics when build is nil or Register
// was already called.
func Register(build sdk.Constructor, opts ...Option) {
	if build == nil {
		panic("wasmguest: Register(nil)")
	}
	if std.build != nil {
		panic("wasmguest: Register called twice")
	}
	std.register(build)
	for _, o := range opts {
		o(&std)
	}
}

// Option configures Register.
type Option func(*guest)

// UsesClock declares that the strategy reads the time (through Now): the host then
// passes its clock with every decision. Without it the host saves that clock read, and
// Now advances only with Observe, Health and Seed calls.
func UsesClock() Option {
	return func(g *guest) { g.flags |= wasmabi.FlagClock }
}

// Now returns the host's clock as of the call being served: a wall-clock reading that
// never goes backwards while the host runs. Before the first call it returns the Unix
// epoch. Pass it where a strategy takes a clock (for example latencyfault.Options.Now),
// and register the strategy with UsesClock.
func Now() time.Time { return time.Unix(0, std.now) }

// Limits of the guest's caches.
const (
	// maxNames bounds the interned broker and topic names of outcomes.
	maxNames = 4096
	// recentNames is how many names guest.name compares before its map.
	recentNames = 8
	// allocGranule rounds input buffer sizes up.
	allocGranule = 4096
)

type guest struct {
	build    sdk.Constructor
	buildErr error // why building with empty settings failed
	sel      sdk.Selector
	obs      sdk.Observer
	hr       sdk.HealthReporter
	hs       sdk.HealthSeeder

	flags uint32 // FlagObserver ... FlagConfigurable, FlagClock

	in      []byte // the buffer producerd_alloc hands out
	out     []byte // the output of describe and health
	lastErr []byte
	now     int64

	routes []*route // by route slot (see wasmabi.AppendSelect)
	names  map[string]string
	// recent are the last names interned, most recent first: outcomes name a few
	// topics and brokers over and over, and comparing bytes with a handful of them is
	// several times cheaper than a map lookup in a Go module.
	recent [recentNames]string

	parsed    wasmabi.Select
	selection sdk.Selection
	msg       sdk.MessageInfo
	observed  wasmabi.Observe
	// published is the health table the strategy last reported changed to the host
	// (see policyChanged).
	published []sdk.BrokerHealth
}

// route is one topic's queue list at one route version.
type route struct {
	topic   string
	version uint64
	queues  []sdk.Queue
	brokers []string // distinct, in order
}

func (g *guest) register(build sdk.Constructor) {
	g.build = build
	g.names = make(map[string]string)
}

// install makes sel the strategy and derives the flags from what it implements.
func (g *guest) install(sel sdk.Selector) {
	g.sel = sel
	g.obs, _ = sel.(sdk.Observer)
	g.hr, _ = sel.(sdk.HealthReporter)
	g.hs, _ = sel.(sdk.HealthSeeder)
	clock := g.flags & wasmabi.FlagClock
	g.flags = wasmabi.Flags(sdk.Descriptor{}, g.obs != nil, g.hr != nil, g.hs != nil, true) | clock
}

// ready builds the strategy with empty settings unless configure built it; it reports
// whether there is one.
func (g *guest) ready() bool {
	if g.sel != nil {
		return true
	}
	if g.build == nil || g.buildErr != nil {
		return false
	}
	sel, err := g.build(nil)
	if err == nil && sel == nil {
		err = errors.New("the constructor returned no strategy")
	}
	if err != nil {
		g.buildErr = err
		return false
	}
	g.install(sel)
	return true
}

// notReady is the failure of a call made without a strategy.
func (g *guest) notReady() int32 {
	if g.buildErr != nil {
		return g.fail(wasmabi.CodeInvalidSettings, "building the strategy with empty settings: %v", g.buildErr)
	}
	return g.fail(wasmabi.CodeUnsupported, "no strategy registered (call wasmguest.Register from init)")
}

// fail records msg for producerd_last_error and returns code.
func (g *guest) fail(code int32, format string, args ...any) int32 {
	g.lastErr = fmt.Appendf(g.lastErr[:0], format, args...)
	return code
}

// recovered turns a panic of the strategy into CodePanic.
func (g *guest) recovered(code *int32, call string) {
	if p := recover(); p != nil {
		*code = g.fail(wasmabi.CodePanic, "%s panicked: %v", call, p)
	}
}

// alloc returns the input buffer with room for size bytes.
func (g *guest) alloc(size uint32) []byte {
	if uint64(cap(g.in)) < uint64(size) || cap(g.in) == 0 {
		n := (uint64(size) + allocGranule) / allocGranule * allocGranule
		g.in = make([]byte, n)
	}
	return g.in[:size]
}

// input returns the first n bytes of the input buffer, checking that the host passed
// the buffer producerd_alloc returned.
func (g *guest) input(ptr uintptr, n uint32) ([]byte, bool) {
	if cap(g.in) == 0 || uint64(n) > uint64(cap(g.in)) || ptr != bufAddr(g.in) {
		return nil, false
	}
	return g.in[:n], true
}

func (g *guest) describe() []byte {
	if !g.ready() {
		return nil
	}
	var d sdk.Descriptor
	if ds, ok := g.sel.(sdk.Describer); ok {
		d = ds.Describe()
	}
	g.out = wasmabi.AppendDescribe(g.out[:0], d, g.flags)
	return g.out
}

// configure builds the strategy from the host's settings; the host calls it before any
// other call when it has settings.
func (g *guest) configure(in []byte) (code int32) {
	if g.build == nil {
		return g.notReady()
	}
	defer g.recovered(&code, "the constructor")
	sel, err := g.build(bytes.Clone(in))
	if err == nil && sel == nil {
		err = errors.New("the constructor returned no strategy")
	}
	if err != nil {
		g.lastErr = wasmabi.AppendSettingsError(g.lastErr[:0], err)
		return wasmabi.CodeInvalidSettings
	}
	g.buildErr = nil
	g.published = nil
	g.install(sel)
	return 0
}

func (g *guest) selectQueue(in []byte) (code int32) {
	if !g.ready() {
		return g.notReady()
	}
	p := &g.parsed
	if err := wasmabi.ParseSelect(in, p); err != nil {
		return g.selectFailed(wasmabi.CodeBadInput, err, 0)
	}
	if p.Now != 0 {
		g.now = p.Now
	}
	var r *route
	if int(p.Slot) < len(g.routes) {
		r = g.routes[p.Slot]
	}
	switch {
	case p.HasQueues():
		r = g.newRoute(p)
	case r == nil || r.version != p.RouteVersion:
		return g.selectFailed(wasmabi.CodeRouteUnknown, nil, 0)
	}
	// Field by field rather than a composite literal: a struct copy with pointers is a
	// runtime call in a Go module, on every decision.
	s := &g.selection
	s.Topic, s.RouteVersion, s.Queues = r.topic, r.version, r.queues
	s.LastBroker = ""
	if len(p.LastBroker) > 0 {
		s.LastBroker = r.intern(p.LastBroker, g)
	}
	s.Attempt, s.Remaining, s.Message = int(p.Attempt), p.Remaining, nil
	if p.Message(&g.msg, true) {
		s.Message = &g.msg
	}
	defer g.recovered(&code, "Select")
	i, err := g.sel.Select(context.Background(), s)
	switch {
	case err != nil:
		return g.selectFailed(wasmabi.CodeFailed, err, 0)
	case i < 0:
		return g.selectFailed(wasmabi.CodeFailed, nil, i)
	case i > math.MaxInt32:
		return math.MaxInt32 // out of range: the host reports it
	}
	return int32(i)
}

// selectFailed records why a select failed and returns code. It is a separate
// function so that selectQueue's frame holds no formatting arguments: a Go module
// zeroes and spills them on every decision.
//
//go:noinline
func (g *guest) selectFailed(code int32, err error, index int) int32 {
	switch {
	case code == wasmabi.CodeBadInput:
		return g.fail(code, "select: %v", err)
	case code == wasmabi.CodeRouteUnknown:
		p := &g.parsed
		return g.fail(code, "no queue list in route slot %d at version %d", p.Slot, p.RouteVersion)
	case err != nil:
		return g.fail(code, "%v", err)
	}
	return g.fail(code, "Select returned index %d without an error", index)
}

func (g *guest) newRoute(p *wasmabi.Select) *route {
	r := &route{topic: string(p.Topic), version: p.RouteVersion, queues: p.Queues(nil)}
	for i, q := range r.queues {
		if i == 0 || q.Broker != r.queues[i-1].Broker {
			r.brokers = append(r.brokers, q.Broker)
		}
	}
	for int(p.Slot) >= len(g.routes) {
		g.routes = append(g.routes, nil)
	}
	g.routes[p.Slot] = r
	return r
}

// intern returns b as a string, sharing the route's broker name when it is one.
func (r *route) intern(b []byte, g *guest) string {
	if len(b) == 0 {
		return ""
	}
	for _, name := range r.brokers {
		if name == string(b) {
			return name
		}
	}
	return g.name(b)
}

// name interns an outcome's topic or broker name.
func (g *guest) name(b []byte) string {
	for i, s := range g.recent {
		if len(s) == len(b) && s == string(b) {
			if i > 0 {
				copy(g.recent[1:i+1], g.recent[:i])
				g.recent[0] = s
			}
			return s
		}
	}
	s, ok := g.names[string(b)]
	if !ok {
		if len(g.names) >= maxNames {
			clear(g.names)
		}
		s = string(b)
		g.names[s] = s
	}
	copy(g.recent[1:], g.recent[:recentNames-1])
	g.recent[0] = s
	return s
}

func (g *guest) observe(in []byte) (code int32) {
	if !g.ready() {
		return g.notReady()
	}
	if g.obs == nil {
		return g.fail(wasmabi.CodeUnsupported, "the strategy does not observe outcomes")
	}
	o := &g.observed
	if err := o.Decode(in, g.name); err != nil {
		return g.fail(wasmabi.CodeBadInput, "observe: %v", err)
	}
	g.now = o.Now
	defer clear(o.Outcomes) // keep no names alive through the reused array
	defer g.recovered(&code, "Observe")
	g.obs.Observe(context.Background(), o.Outcomes)
	if o.Flags&wasmabi.ObservePolicy != 0 && g.hr != nil && g.policyChanged() {
		return wasmabi.ObservePolicyChanged
	}
	return 0
}

// policyChanged reports whether the strategy's health table differs, as a policy,
// from the one it last reported changed: the host reads the table only then (most
// batches of ordinary outcomes change nothing but latencies).
func (g *guest) policyChanged() bool {
	rows := g.hr.Health()
	if wasmabi.SamePolicy(rows, g.published) {
		return false
	}
	g.published = rows
	return true
}

func (g *guest) health(in []byte) (out []byte, code int32) {
	if !g.ready() {
		return nil, g.notReady()
	}
	if g.hr == nil {
		return nil, g.fail(wasmabi.CodeUnsupported, "the strategy reports no health")
	}
	now, err := wasmabi.DecodeNow(in)
	if err != nil {
		return nil, g.fail(wasmabi.CodeBadInput, "health: %v", err)
	}
	g.now = now
	defer g.recovered(&code, "Health")
	g.out = wasmabi.AppendHealth(g.out[:0], g.hr.Health())
	return g.out, 0
}

func (g *guest) seed(in []byte) (code int32) {
	if !g.ready() {
		return g.notReady()
	}
	if g.hs == nil {
		return g.fail(wasmabi.CodeUnsupported, "the strategy takes no seed")
	}
	now, rows, err := wasmabi.DecodeSeed(in)
	if err != nil {
		return g.fail(wasmabi.CodeBadInput, "seed: %v", err)
	}
	g.now = now
	g.published = nil // the host reads the seeded table itself
	defer g.recovered(&code, "Seed")
	g.hs.Seed(rows)
	return 0
}

// bufAddr returns the address of b's first element: in a WebAssembly module, its
// offset in linear memory. Go's collector does not move heap objects, so it stays valid
// while b is referenced.
func bufAddr(b []byte) uintptr {
	if cap(b) == 0 {
		return 0
	}
	return uintptr(unsafe.Pointer(unsafe.SliceData(b)))
}
