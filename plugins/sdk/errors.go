package sdk

import "errors"

// Errors of the plugin protocol. Errors cannot cross a process as Go values: a plugin's
// error travels as a code and arrives at the host wrapped around one of these
// sentinels (with the plugin's message), so callers classify it with errors.Is.
var (
	// ErrSelectFailed: the plugin's Select returned an error.
	ErrSelectFailed = errors.New("sdk: plugin select failed")
	// ErrSelectPanic: the plugin's Select panicked (the plugin recovered and reported it).
	ErrSelectPanic = errors.New("sdk: plugin select panicked")
	// ErrRouteUnknown: the plugin no longer held the queue list a selection referred to;
	// the session sends it again with the next selection for that topic.
	ErrRouteUnknown = errors.New("sdk: plugin does not hold the route version")
	// ErrDecisionTimeout: no answer within the session's decision timeout.
	ErrDecisionTimeout = errors.New("sdk: plugin decision timed out")
	// ErrInvalidSettings: the strategy's constructor rejected its settings.
	ErrInvalidSettings = errors.New("sdk: plugin rejected its settings")
	// ErrUnsupportedVersion: host and plugin share no strategy protocol version.
	ErrUnsupportedVersion = errors.New("sdk: unsupported strategy protocol version")
	// ErrSessionClosed: the session ended (plugin exited, stream broken or Close).
	ErrSessionClosed = errors.New("sdk: plugin session closed")
	// ErrOverloaded: too many decisions are waiting for the plugin (see
	// SessionOptions.MaxPending); the decision was not sent.
	ErrOverloaded = errors.New("sdk: too many pending plugin decisions")
	// ErrRemote: the plugin reported a failure this SDK version does not classify.
	ErrRemote = errors.New("sdk: plugin error")
	// ErrNoQueues: Select was called with an empty queue list (the host never does).
	ErrNoQueues = errors.New("sdk: no queues")
)
