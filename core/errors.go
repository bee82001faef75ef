package core

import (
	"errors"
	"fmt"
	"strings"
	"time"
)

// Sentinel errors. Classify with errors.Is; broker answers are *remoting.Error (errors.As).
var (
	// ErrInvalidMessage wraps every *ValidationError of a message, batch or topic.
	ErrInvalidMessage = errors.New("core: invalid message")
	// ErrInvalidConfig wraps configuration problems found by a constructor.
	ErrInvalidConfig = errors.New("core: invalid config")
	// ErrNoRoute means the topic has no usable route; every *RouteError matches it, and
	// its Kind says why.
	ErrNoRoute = errors.New("core: no route for topic")
	// ErrTopicNotExist means the NameServer does not know the topic (TOPIC_NOT_EXIST) and
	// it cannot be auto-created (auto-create is off, or the TBW102 default topic is unknown
	// too). A client should not retry it as it is.
	ErrTopicNotExist = errors.New("core: topic does not exist")
	// ErrNoWritableQueue means the topic's route has no queue a producer may write: every
	// broker of it is read-only for the topic, has no master, or has no write queue. It
	// may change (a failover, an operator's perm change); TBW102 is not tried.
	ErrNoWritableQueue = errors.New("core: topic has no writable queue")
	// ErrNameServerUnreachable means no NameServer answered the route query; retryable.
	ErrNameServerUnreachable = errors.New("core: name server unreachable")
	// ErrBadRoute means the NameServer's route could not be used: unparsable, or beyond
	// the sanity bounds (ClientConfig.MaxQueuesPerBroker, MaxBrokersPerRoute).
	ErrBadRoute = errors.New("core: bad route data")
	// ErrBadResponse means a broker's answer to a send was malformed (a missing or
	// unparsable field); the message may have been stored.
	ErrBadResponse = errors.New("core: malformed broker response")
	// ErrNoNameServer means no NameServer address is configured.
	ErrNoNameServer = errors.New("core: no name server address")
	// ErrBrokerNotFound means a queue's broker has no master address in the route.
	ErrBrokerNotFound = errors.New("core: broker master not found")
	// ErrTimeout means the send's whole timeout budget was spent before it succeeded.
	ErrTimeout = errors.New("core: send timeout")
	// ErrClosed means the producer or client was closed.
	ErrClosed = errors.New("core: closed")
	// ErrGroupExists means a producer group was registered twice on one client instance.
	ErrGroupExists = errors.New("core: producer group already registered on this client instance")
	// ErrTooManyRequests means the async in-flight bound was reached.
	ErrTooManyRequests = errors.New("core: too many async sends in flight")
)

// ValidationError names the rule a message, topic or group broke. It matches
// ErrInvalidMessage with errors.Is.
type ValidationError struct {
	// Rule is a short stable identifier, e.g. "topic.charset" or "body.size".
	Rule string
	// Msg explains the problem with the offending value.
	Msg string
}

func (e *ValidationError) Error() string { return "core: invalid message: " + e.Rule + ": " + e.Msg }

// Is makes errors.Is(err, ErrInvalidMessage) true.
func (e *ValidationError) Is(target error) bool { return target == ErrInvalidMessage }

func invalid(rule, format string, args ...any) error {
	return &ValidationError{Rule: rule, Msg: fmt.Sprintf(format, args...)}
}

// SendError is returned when every attempt of a send failed. It unwraps to the last
// attempt's error, so errors.Is(err, remoting.ErrConnect) or errors.As(err, **remoting.Error)
// classify it, and to ErrTimeout when the budget ran out.
type SendError struct {
	Topic    string
	Attempts int
	// Brokers lists the broker of every attempt, in order.
	Brokers []string
	Elapsed time.Duration
	// Timeout is true when the budget was spent before another attempt could start.
	Timeout bool
	Last    error
}

func (e *SendError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "core: send to topic %s failed after %d attempt(s) in %v, brokers [%s]",
		e.Topic, e.Attempts, e.Elapsed.Round(time.Millisecond), strings.Join(e.Brokers, ","))
	if e.Timeout {
		b.WriteString(": timeout budget spent")
	}
	if e.Last != nil {
		b.WriteString(": ")
		b.WriteString(e.Last.Error())
	}
	return b.String()
}

// Unwrap returns the last attempt's error and, when the budget ran out, ErrTimeout.
func (e *SendError) Unwrap() []error {
	errs := make([]error, 0, 2)
	if e.Last != nil {
		errs = append(errs, e.Last)
	}
	if e.Timeout {
		errs = append(errs, ErrTimeout)
	}
	return errs
}

// RouteError explains why a topic has no usable route. It matches ErrNoRoute and its Kind
// with errors.Is, and unwraps to the cause (a *remoting.Error from the NameServer, a
// transport error) when there is one.
type RouteError struct {
	Topic string
	// NameServer is the NameServer that answered, or the configured list when none did.
	NameServer string
	// Kind is ErrTopicNotExist, ErrNoWritableQueue, ErrNameServerUnreachable or ErrBadRoute.
	Kind error
	// Detail says what is wrong, e.g. "broker-a perm=R; no master for broker-b".
	Detail string
	Cause  error
}

func (e *RouteError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%v: topic %s", e.Kind, e.Topic)
	if e.Detail != "" {
		b.WriteString(": ")
		b.WriteString(e.Detail)
	}
	if e.NameServer != "" {
		fmt.Fprintf(&b, " (name server %s)", e.NameServer)
	}
	if e.Cause != nil {
		b.WriteString(": ")
		b.WriteString(e.Cause.Error())
	}
	return b.String()
}

// Unwrap returns ErrNoRoute, the Kind and the cause.
func (e *RouteError) Unwrap() []error {
	errs := []error{ErrNoRoute, e.Kind}
	if e.Cause != nil {
		errs = append(errs, e.Cause)
	}
	return errs
}
