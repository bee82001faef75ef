package sdktest

import (
	"context"
	"sync"
	"time"

	"github.com/producerd/producerd/plugins/sdk"
)

// Behavior is how a Fleet broker answers each attempt.
type Behavior struct {
	// Latency is the attempt's latency as reported in its Outcome (and the amount the
	// Fleet's Clock advances, when it has one). The default is 0.
	Latency time.Duration
	// Fail is the outcome kind of every attempt; OutcomeOK (the zero value) means the
	// broker stores the message. Failed kinds are reported with Isolation set, as the
	// Java client reports every exception.
	Fail sdk.OutcomeKind
}

// Attempt is one attempt of a Fleet send.
type Attempt struct {
	// Queue is the queue the attempt went to.
	Queue sdk.Queue
	// Fallback is true when the selector returned an error or an index outside the
	// queue list and the Fleet fell back to its own round-robin, as the host does.
	Fallback bool
	// Err is the selector's error, if it returned one.
	Err error
	// Outcome is what the Fleet reported to the selector.
	Outcome sdk.Outcome
}

// SendResult is the record of one Fleet send.
type SendResult struct {
	Attempts []Attempt
	// OK is true when an attempt stored the message.
	OK bool
}

// Last returns the final attempt. It panics when there was none.
func (r SendResult) Last() Attempt { return r.Attempts[len(r.Attempts)-1] }

// Stats sums the sends of a Fleet since it was built or last Reset.
type Stats struct {
	Sends, Succeeded, Failed int
	// Attempts counts attempts per broker; Failures counts the failed ones.
	Attempts, Failures map[string]int
	// Fallbacks counts decisions the selector did not make (error or bad index).
	Fallbacks int
}

// Fleet is an in-memory broker fleet for one topic. Send drives a selector through the
// Java client's sync send loop: select, "send" to the chosen broker (which answers as
// its Behavior says), report the Outcome to the selector at once, retry on failure with
// LastBroker set, up to 1+Retries attempts. There is no network and no waiting.
//
// A Fleet is safe for concurrent Sends; Set, SetQueues and Reset may run alongside.
type Fleet struct {
	// Retries is the number of retries after a failed attempt; NewFleet sets 2, the
	// Java default retryTimesWhenSendFailed.
	Retries int
	// Clock, when not nil, is advanced by each attempt's latency, so a strategy that reads
	// it sees time pass as sends happen.
	Clock *Clock

	mu       sync.Mutex
	route    *Route
	behavior map[string]Behavior
	stats    Stats
	rr       uint64
}

// NewFleet returns a Fleet for topic with brokers brokers (named by BrokerName) of
// perBroker queues each, every broker healthy with zero latency.
func NewFleet(topic string, brokers, perBroker int) *Fleet {
	f := &Fleet{Retries: 2, route: NewRoute(topic, Queues(brokers, perBroker)), behavior: make(map[string]Behavior)}
	f.Reset()
	return f
}

// Set gives broker a behaviour for the following attempts.
func (f *Fleet) Set(broker string, b Behavior) {
	f.mu.Lock()
	f.behavior[broker] = b
	f.mu.Unlock()
}

// SetQueues replaces the topic's queue list and bumps its RouteVersion.
func (f *Fleet) SetQueues(qs []sdk.Queue) {
	f.mu.Lock()
	f.route.Update(qs)
	f.mu.Unlock()
}

// Route returns a copy of the fleet's current route.
func (f *Fleet) Route() Route {
	f.mu.Lock()
	defer f.mu.Unlock()
	return *f.route
}

// Stats returns a copy of the counters.
func (f *Fleet) Stats() Stats {
	f.mu.Lock()
	defer f.mu.Unlock()
	s := f.stats
	s.Attempts, s.Failures = copyCounts(s.Attempts), copyCounts(s.Failures)
	return s
}

// Reset zeroes the counters.
func (f *Fleet) Reset() {
	f.mu.Lock()
	f.stats = Stats{Attempts: make(map[string]int), Failures: make(map[string]int)}
	f.mu.Unlock()
}

func copyCounts(m map[string]int) map[string]int {
	c := make(map[string]int, len(m))
	for k, v := range m {
		c[k] = v
	}
	return c
}

// Send sends one message through sel. msg is passed in Selection.Message only when sel
// declares NeedsMessage, as the host does.
func (f *Fleet) Send(ctx context.Context, sel sdk.Selector, msg *sdk.MessageInfo) SendResult {
	if !Describe(sel).NeedsMessage {
		msg = nil
	}
	var res SendResult
	last := ""
	for attempt := 0; attempt <= f.Retries; attempt++ {
		f.mu.Lock()
		r := *f.route
		f.mu.Unlock()
		if len(r.Queues) == 0 {
			break
		}
		s := r.Retry(last, attempt)
		s.Message = msg
		var a Attempt
		i, err := sel.Select(ctx, s)
		if err != nil || i < 0 || i >= len(r.Queues) {
			a.Fallback, a.Err = true, err
			f.mu.Lock()
			f.rr++
			i = int(f.rr % uint64(len(r.Queues)))
			f.mu.Unlock()
		}
		a.Queue = r.Queues[i]
		f.mu.Lock()
		b := f.behavior[a.Queue.Broker]
		f.mu.Unlock()
		a.Outcome = sdk.Outcome{Topic: r.Topic, Broker: a.Queue.Broker, Queue: a.Queue.ID, Latency: b.Latency, Kind: b.Fail}
		if b.Fail.Failed() {
			a.Outcome.Isolation = true
		}
		if f.Clock != nil {
			f.Clock.Advance(b.Latency)
		}
		Observe(ctx, sel, a.Outcome)
		res.Attempts = append(res.Attempts, a)
		f.record(a)
		if !b.Fail.Failed() {
			res.OK = true
			break
		}
		last = a.Queue.Broker
	}
	f.mu.Lock()
	f.stats.Sends++
	if res.OK {
		f.stats.Succeeded++
	} else {
		f.stats.Failed++
	}
	f.mu.Unlock()
	return res
}

func (f *Fleet) record(a Attempt) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.stats.Attempts[a.Queue.Broker]++
	if a.Outcome.Kind.Failed() {
		f.stats.Failures[a.Queue.Broker]++
	}
	if a.Fallback {
		f.stats.Fallbacks++
	}
}

// Run sends n messages without keys (an empty MessageInfo) through sel, one after
// another, and returns the counters accumulated so far.
func (f *Fleet) Run(ctx context.Context, sel sdk.Selector, n int) Stats {
	for range n {
		f.Send(ctx, sel, &sdk.MessageInfo{})
	}
	return f.Stats()
}
