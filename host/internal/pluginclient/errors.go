package pluginclient

import "errors"

// Errors of a Session, besides the ones a plugin's answer carries (see
// internal/strategywire: ErrDecisionTimeout, ErrSelectFailed, ...).
var (
	// ErrSessionClosed: the session ended (plugin exited, stream broken or Close).
	ErrSessionClosed = errors.New("pluginclient: plugin session closed")
	// ErrOverloaded: too many decisions are waiting for the plugin (see
	// SessionOptions.MaxPending); the decision was not sent.
	ErrOverloaded = errors.New("pluginclient: too many pending plugin decisions")
)
