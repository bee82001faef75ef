//go:build !wasip1

package strategywire

import (
	"context"
	"errors"
	"fmt"

	"github.com/producerd/producerd/internal/strategywire/strategypb"
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
