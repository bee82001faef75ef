// Package sdk is the contract between producerd and its queue-selection strategies.
//
// A strategy decides two things for a RocketMQ producer: which queue gets a message
// (Selector) and what the outcome of a send means for that broker (Observer). The same
// Go value can run in-process, as an out-of-process plugin (go-plugin over gRPC, see
// Serve) or as a WebAssembly module; the types here carry no transport detail.
//
// The contract is small on purpose:
//
//   - Selector is the only required interface.
//   - Observer, Describer and HealthReporter are optional extensions discovered by type
//     assertion in-process and declared at the handshake across a process.
//
// Selectors are called concurrently from many sends; implementations must be safe for
// concurrent use and must not retain the Selection or its Queues after returning.
package sdk

import (
	"context"
	"time"
)

// Queue is one writable message queue of a topic, as published by the route.
type Queue struct {
	// Broker is the broker name (not its address), e.g. "broker-a".
	Broker string
	// ID is the queue id within that broker, 0-based.
	ID int32
}

// MessageInfo is the part of a message a selector may look at. It is filled only for
// strategies whose Descriptor sets NeedsMessage; the body itself never crosses.
type MessageInfo struct {
	Keys        []string
	Tags        string
	ShardingKey string
	// Size is the body size in bytes before compression.
	Size int
}

// Selection is the input of one queue decision.
type Selection struct {
	// Topic is the topic being sent to.
	Topic string
	// RouteVersion changes whenever Queues changes for this topic; a strategy may cache
	// derived state keyed by (Topic, RouteVersion).
	RouteVersion uint64
	// Queues is the ordered publish queue list (sorted by broker name, then queue id).
	// It is shared and read-only.
	Queues []Queue
	// LastBroker is the broker of the previous failed attempt of this send, or "" on
	// the first attempt.
	LastBroker string
	// Attempt is 0 for the first attempt of a send, 1 for the first retry, and so on.
	Attempt int
	// Remaining is what is left of the send's timeout budget. Select's ctx is the
	// caller's and may have no deadline: a strategy that waits (for another process,
	// say) bounds its decision by Remaining.
	Remaining time.Duration
	// Message is nil unless the strategy's Descriptor sets NeedsMessage.
	Message *MessageInfo
}

// Selector picks a queue. It returns an index into Selection.Queues. An index outside
// [0, len(Queues)) or an error makes the caller fall back to its in-process round-robin
// for this decision and count the failure. When Queues is empty the caller never calls
// Select.
type Selector interface {
	Select(ctx context.Context, s *Selection) (int, error)
}

// OutcomeKind classifies how one send attempt ended.
type OutcomeKind uint8

// Outcome kinds. The zero value is OutcomeOK.
const (
	// OutcomeOK: the broker answered SUCCESS.
	OutcomeOK OutcomeKind = iota
	// OutcomeStoredNotOK: the message was stored but flush or replication did not
	// complete in time (codes 10, 11, 12).
	OutcomeStoredNotOK
	// OutcomeBrokerError: the broker answered with another code (see Outcome.Code).
	OutcomeBrokerError
	// OutcomeTimeout: no answer within the attempt's deadline.
	OutcomeTimeout
	// OutcomeConnectFailure: the connection could not be established.
	OutcomeConnectFailure
	// OutcomeOther: any other failure (write error, connection reset, broker unknown).
	OutcomeOther
)

var outcomeNames = [...]string{"ok", "stored-not-ok", "broker-error", "timeout", "connect-failure", "other"}

// String returns the kind's lowercase name, e.g. "connect-failure".
func (k OutcomeKind) String() string {
	if int(k) < len(outcomeNames) {
		return outcomeNames[k]
	}
	return "unknown"
}

// Failed reports whether the kind means the message was not stored.
func (k OutcomeKind) Failed() bool {
	return k != OutcomeOK && k != OutcomeStoredNotOK
}

// Outcome is the result of one send attempt, reported after the attempt ends.
type Outcome struct {
	Topic  string
	Broker string
	Queue  int32
	// Latency is the wall time of the attempt, including connection setup.
	Latency time.Duration
	Kind    OutcomeKind
	// Code is the broker response code for OutcomeBrokerError and OutcomeStoredNotOK.
	Code int
	// Isolation is true when the caller judges that the broker should be avoided
	// (a transport failure or a broker error), as the Java client's updateFaultItem does.
	Isolation bool
}

// Observer receives outcomes. It is optional: a selector that does not implement it
// never sees outcomes. Observe may be called with several outcomes at once; it must not
// block for long.
type Observer interface {
	Observe(ctx context.Context, outcomes []Outcome)
}

// Descriptor declares what a strategy needs from its host.
type Descriptor struct {
	// Name is a short identifier, e.g. "roundrobin".
	Name string
	// NeedsMessage asks for Selection.Message to be filled.
	NeedsMessage bool
	// UrgentLatency: an OK outcome slower than this is delivered at once rather than
	// batched, because it may change the strategy's decisions (latency-fault sets it to
	// its lowest isolating latency). Failed outcomes are always urgent. Zero means only
	// failures are urgent. Batched outcomes reach a plugin process within 20 ms (or 256
	// outcomes), a WebAssembly module within 2 ms (or 64).
	UrgentLatency time.Duration
	// LocalApply declares that Select is fully determined by the strategy's published
	// broker health (HealthReporter): round-robin from a random start over the queues of
	// brokers reported Available, avoiding LastBroker on a retry when another available
	// broker exists, and the least-bad broker when none is available. A host may then
	// apply the decision in its own process from the published table instead of calling
	// Select across a process boundary; the decisions stay the strategy's own.
	LocalApply bool
}

// Describer is implemented by strategies that declare a Descriptor. A strategy without
// it is treated as Descriptor{NeedsMessage: false}.
type Describer interface {
	Describe() Descriptor
}

// BrokerHealth is one row of a strategy's view of a broker.
type BrokerHealth struct {
	Broker string
	// Available is false while the broker is isolated.
	Available bool
	// Until is when the isolation ends (zero when Available).
	Until time.Time
	// Latency is the last observed latency. For an unavailable broker it is also the
	// cost that ranks it when every broker is unavailable (lower first).
	Latency time.Duration
	// Weight is the relative share of each of the broker's queues in the host's
	// in-process decisions (see package pick); zero means unweighted. When any row sets
	// a weight, brokers without one are standbys.
	Weight uint32
}

// HealthReporter is implemented by strategies that keep per-broker state, so that the
// daemon can show it and a hot swap can hand it to the next generation.
type HealthReporter interface {
	Health() []BrokerHealth
}

// HealthSeeder is implemented by strategies that can start from another strategy's
// broker health (hot swap hands the old generation's table to the new one).
type HealthSeeder interface {
	Seed(rows []BrokerHealth)
}
