package strategywire

import (
	"context"
	"errors"
	"fmt"

	"github.com/producerd/producerd/internal/strategywire/strategypb"
)

// Errors that cross the process. A Go error cannot cross as a value: the plugin side
// turns it into a code (CodeOf), the host side back into an error wrapping one of these
// sentinels with the plugin's message (ErrOf), so callers classify it with errors.Is.
var (
	// ErrSelectFailed: the plugin's Select returned an error.
	ErrSelectFailed = errors.New("strategywire: plugin select failed")
	// ErrSelectPanic: the plugin's Select panicked (the plugin recovered and reported it).
	ErrSelectPanic = errors.New("strategywire: plugin select panicked")
	// ErrRouteUnknown: the plugin no longer held the queue list a selection referred to;
	// the host sends it again with the next selection for that topic.
	ErrRouteUnknown = errors.New("strategywire: plugin does not hold the route version")
	// ErrDecisionTimeout: no answer within the decision timeout.
	ErrDecisionTimeout = errors.New("strategywire: plugin decision timed out")
	// ErrInvalidSettings: the strategy's constructor rejected its settings. Package sdk
	// exports it as sdk.ErrInvalidSettings, the sentinel plugin authors wrap.
	ErrInvalidSettings = errors.New("sdk: invalid strategy settings")
	// ErrUnsupportedVersion: host and plugin share no strategy protocol version.
	ErrUnsupportedVersion = errors.New("strategywire: unsupported strategy protocol version")
	// ErrRemote: the plugin reported a failure this build does not classify.
	ErrRemote = errors.New("strategywire: plugin error")
)

// CodeOf maps a plugin-side error to the code that crosses the process boundary.
func CodeOf(err error) strategypb.Code {
	switch {
	case err == nil:
		return strategypb.Code_CODE_OK
	case errors.Is(err, context.DeadlineExceeded):
		return strategypb.Code_CODE_DEADLINE_EXCEEDED
	case errors.Is(err, context.Canceled):
		return strategypb.Code_CODE_CANCELED
	case errors.Is(err, ErrInvalidSettings):
		return strategypb.Code_CODE_INVALID_SETTINGS
	case errors.Is(err, ErrSelectPanic):
		return strategypb.Code_CODE_PANIC
	case errors.Is(err, ErrRouteUnknown):
		return strategypb.Code_CODE_ROUTE_UNKNOWN
	case errors.Is(err, ErrUnsupportedVersion):
		return strategypb.Code_CODE_UNSUPPORTED_VERSION
	}
	return strategypb.Code_CODE_SELECT_FAILED
}

// ErrOf maps a code and message received from a plugin back to a Go error wrapping a
// sentinel of this package (or context.Canceled); CODE_OK gives nil.
func ErrOf(code strategypb.Code, msg string) error {
	var base error
	switch code {
	case strategypb.Code_CODE_OK:
		return nil
	case strategypb.Code_CODE_SELECT_FAILED:
		base = ErrSelectFailed
	case strategypb.Code_CODE_PANIC:
		base = ErrSelectPanic
	case strategypb.Code_CODE_ROUTE_UNKNOWN:
		base = ErrRouteUnknown
	case strategypb.Code_CODE_DEADLINE_EXCEEDED:
		base = ErrDecisionTimeout
	case strategypb.Code_CODE_INVALID_SETTINGS:
		base = ErrInvalidSettings
	case strategypb.Code_CODE_UNSUPPORTED_VERSION:
		base = ErrUnsupportedVersion
	case strategypb.Code_CODE_CANCELED:
		base = context.Canceled
	default:
		base = fmt.Errorf("%w (code %d)", ErrRemote, code)
	}
	if msg == "" {
		return base
	}
	return fmt.Errorf("%w: %s", base, msg)
}
