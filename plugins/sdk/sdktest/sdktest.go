// Package sdktest helps plugin authors test queue-selection strategies written against
// the producerd SDK (package sdk).
//
// It offers three things:
//
//   - builders for the inputs of a decision: Queues and QueuesOf build a publish queue
//     list sorted as the host sorts it, Route keeps a topic's queue list and its
//     RouteVersion and hands out Selections, OK and Failure build Outcomes;
//   - Fleet, a tiny in-memory broker fleet that drives a selector through sends with the
//     Java client's sync retry loop, with per-broker latency and failures, and Clock, a
//     manual clock to inject into strategies that read the time;
//   - Conformance, the suite every selector should pass before it ships.
//
// Nothing here sleeps. The only goroutines are Conformance's, which end with their
// checks, except one left inside a Select that never returns (which the Deadline check
// reports).
package sdktest

import (
	"context"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/producerd/producerd/plugins/sdk"
)

// BrokerName returns the name of the i-th broker (0-based) as the helpers of this
// package spell it: "broker-a" … "broker-z", then "broker-26", "broker-27", ….
func BrokerName(i int) string {
	if i >= 0 && i < 26 {
		return "broker-" + string(rune('a'+i))
	}
	return "broker-" + strconv.Itoa(i)
}

// Queues returns the publish queue list of brokers brokers with perBroker queues each,
// named by BrokerName, sorted by broker name then queue id as the host sorts it.
func Queues(brokers, perBroker int) []sdk.Queue {
	names := make([]string, brokers)
	for i := range names {
		names[i] = BrokerName(i)
	}
	return QueuesOf(perBroker, names...)
}

// QueuesOf returns perBroker queues (ids 0 … perBroker-1) for each named broker, in the
// order given. Pass the names sorted to get the host's order.
func QueuesOf(perBroker int, brokers ...string) []sdk.Queue {
	qs := make([]sdk.Queue, 0, perBroker*len(brokers))
	for _, b := range brokers {
		for id := range perBroker {
			qs = append(qs, sdk.Queue{Broker: b, ID: int32(id)})
		}
	}
	return qs
}

// Brokers returns the distinct broker names of qs in order of first appearance.
func Brokers(qs []sdk.Queue) []string {
	var out []string
	seen := make(map[string]bool)
	for _, q := range qs {
		if !seen[q.Broker] {
			seen[q.Broker] = true
			out = append(out, q.Broker)
		}
	}
	return out
}

// Route is one topic's publish queue list and its RouteVersion, as the host's route
// table keeps it. The zero value is not usable; build one with NewRoute. A Route is not
// safe for concurrent Update; the Selections it returns are independent values.
type Route struct {
	Topic   string
	Version uint64
	Queues  []sdk.Queue
}

// NewRoute returns a Route for topic with the given queues at version 1.
func NewRoute(topic string, queues []sdk.Queue) *Route {
	return &Route{Topic: topic, Version: 1, Queues: queues}
}

// Update replaces the queue list and increments Version, as a route refresh that
// changed the list does.
func (r *Route) Update(queues []sdk.Queue) {
	r.Queues = queues
	r.Version++
}

// First returns the Selection of a send's first attempt.
func (r *Route) First() *sdk.Selection {
	return &sdk.Selection{Topic: r.Topic, RouteVersion: r.Version, Queues: r.Queues, Remaining: 3 * time.Second}
}

// Retry returns the Selection of retry number attempt (1 for the first retry) after an
// attempt on lastBroker failed.
func (r *Route) Retry(lastBroker string, attempt int) *sdk.Selection {
	s := r.First()
	s.LastBroker = lastBroker
	s.Attempt = attempt
	return s
}

// OK returns a successful Outcome of an attempt on broker that took latency.
func OK(broker string, latency time.Duration) sdk.Outcome {
	return sdk.Outcome{Broker: broker, Latency: latency, Kind: sdk.OutcomeOK}
}

// Failure returns a failed Outcome of kind on broker with Isolation set, as the host
// reports a transport failure or a broker error (the Java client's
// updateFaultItem(broker, latency, true)).
func Failure(broker string, kind sdk.OutcomeKind, latency time.Duration) sdk.Outcome {
	return sdk.Outcome{Broker: broker, Latency: latency, Kind: kind, Isolation: true}
}

// Observe hands outcomes to sel when it implements sdk.Observer and reports whether it
// does.
func Observe(ctx context.Context, sel sdk.Selector, outcomes ...sdk.Outcome) bool {
	o, ok := sel.(sdk.Observer)
	if ok {
		o.Observe(ctx, outcomes)
	}
	return ok
}

// Describe returns sel's Descriptor, or the host's default (all fields zero) when sel
// does not implement sdk.Describer.
func Describe(sel sdk.Selector) sdk.Descriptor {
	if d, ok := sel.(sdk.Describer); ok {
		return d.Describe()
	}
	return sdk.Descriptor{}
}

// MustSelect calls sel.Select with a background context and fails the test unless it
// returns a nil error and an index into s.Queues. It returns the chosen queue.
func MustSelect(tb testing.TB, sel sdk.Selector, s *sdk.Selection) sdk.Queue {
	tb.Helper()
	i, err := callSelect(context.Background(), sel, s)
	if err != nil {
		tb.Fatalf("Select(%s): %v", describeSelection(s), err)
	}
	if i < 0 || i >= len(s.Queues) {
		tb.Fatalf("Select(%s) = %d, outside [0, %d)", describeSelection(s), i, len(s.Queues))
	}
	return s.Queues[i]
}

func describeSelection(s *sdk.Selection) string {
	return "topic " + strconv.Quote(s.Topic) + " v" + strconv.FormatUint(s.RouteVersion, 10) +
		" queues " + strconv.Itoa(len(s.Queues)) + " last " + strconv.Quote(s.LastBroker) +
		" attempt " + strconv.Itoa(s.Attempt)
}

// Clock is a manual clock for strategies with an injectable time source: pass
// clock.Now as their Now option and move time with Advance. It is safe for concurrent
// use. The zero value starts at the zero time; NewClock picks the start.
type Clock struct {
	mu  sync.Mutex
	now time.Time
}

// NewClock returns a Clock reading start.
func NewClock(start time.Time) *Clock { return &Clock{now: start} }

// Now returns the clock's current time.
func (c *Clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

// Advance moves the clock forward by d (backward when d is negative).
func (c *Clock) Advance(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}

// Set moves the clock to t.
func (c *Clock) Set(t time.Time) {
	c.mu.Lock()
	c.now = t
	c.mu.Unlock()
}
