package daemon

import "errors"

// Sentinel errors of the daemon.
var (
	// ErrUnknownGroup: the message names a producer group the daemon does not have (or
	// names none while it has several).
	ErrUnknownGroup = errors.New("daemon: unknown producer group")
	// ErrUnknownStrategy: a swap names a strategy the config does not define.
	ErrUnknownStrategy = errors.New("daemon: unknown strategy")
	// ErrUnauthenticated: an admin call without the configured bearer token.
	ErrUnauthenticated = errors.New("daemon: missing or wrong admin token")

	errBusy     = errors.New("daemon: too many messages in flight (max_inflight_messages / max_inflight_bytes); retry later")
	errDraining = errors.New("daemon: draining or shutting down; not accepting messages")
)

func errorsIs(err, target error) bool { return errors.Is(err, target) }
