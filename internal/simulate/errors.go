package simulate

import "errors"

// Sentinel errors of package simulate.
var (
	// ErrStrategyStart is returned by Run when a strategy cannot be started as the
	// scenario asks (for example its plugin process fails to start): a simulation that
	// silently fell back to another strategy would report the wrong thing.
	ErrStrategyStart = errors.New("simulate: strategy did not start")
	// ErrNoStrategy is returned by Run when the strategy filter matches no strategy of
	// the scenario.
	ErrNoStrategy = errors.New("simulate: no strategy to run")
)
