package rmqv2

import "errors"

// Sentinel errors a Sender wraps so that the service answers with the code the SDKs retry.
var (
	// ErrTooManyRequests means producerd is over its in-flight bound; answered as
	// TOO_MANY_REQUESTS (42900), which the SDKs retry after their backoff.
	ErrTooManyRequests = errors.New("rmqv2: too many requests")
	// ErrUnavailable means producerd is draining or shutting down; answered as
	// INTERNAL_SERVER_ERROR (50001), which the SDKs retry.
	ErrUnavailable = errors.New("rmqv2: unavailable")
	// ErrUnknownTransaction means an EndTransaction names a transaction this producerd
	// does not hold; answered as INVALID_TRANSACTION_ID (40008).
	ErrUnknownTransaction = errors.New("rmqv2: unknown transaction")
)
