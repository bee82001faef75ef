package sdk

import (
	"errors"

	"github.com/producerd/producerd/internal/strategywire"
)

// Errors a strategy returns.
var (
	// ErrInvalidSettings: a Constructor rejected its settings. Wrap it (a *SettingError
	// matches it already); across a process it arrives at the host as the same
	// sentinel with the strategy's message.
	ErrInvalidSettings = strategywire.ErrInvalidSettings
	// ErrNoQueues: Select was called with an empty queue list (the host never does).
	ErrNoQueues = errors.New("sdk: no queues")
)
