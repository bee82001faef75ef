package latencyfault

import "errors"

var (
	// ErrInvalidOptions is wrapped by New's error when Options fail validation; the
	// error joins every problem found.
	ErrInvalidOptions = errors.New("latencyfault: invalid options")
	// ErrUnknownPreset is returned by Preset for a name it does not know.
	ErrUnknownPreset = errors.New("latencyfault: unknown preset")
	// ErrNoQueues is returned by Select when Selection.Queues is empty. The host never
	// makes such a call (see sdk.Selector); the error only keeps a misuse from panicking.
	ErrNoQueues = errors.New("latencyfault: no queues")
)
