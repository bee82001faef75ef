package devbroker

import "errors"

// Sentinel errors of the fixture's API (never sent on the wire).
var (
	// ErrInvalidConfig wraps every problem Start finds in a Config.
	ErrInvalidConfig = errors.New("devbroker: invalid config")
	// ErrInvalidFault wraps every problem SetFault finds in a Fault.
	ErrInvalidFault = errors.New("devbroker: invalid fault")
	// ErrClosed is returned by calls on a closed Cluster.
	ErrClosed = errors.New("devbroker: cluster closed")
	// ErrUnknownBroker means a timeline event or call names a broker the cluster lacks.
	ErrUnknownBroker = errors.New("devbroker: unknown broker")
)
