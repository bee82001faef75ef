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
	// ErrNoRoute means neither the topic nor the TBW102 default topic has a usable route.
	ErrNoRoute = errors.New("core: no route for topic")
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
