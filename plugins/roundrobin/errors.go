package roundrobin

import "errors"

// ErrNoQueues is returned by Select when Selection.Queues is empty. The host never
// makes such a call (see sdk.Selector); the error only keeps a misuse from panicking.
var ErrNoQueues = errors.New("roundrobin: no queues")
