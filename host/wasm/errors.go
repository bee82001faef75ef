package wasm

import "errors"

// Errors of package wasm. Errors of one decision also wrap the sdk sentinel the host's
// fallback logic classifies (strategywire.ErrDecisionTimeout, strategywire.ErrSelectFailed,
// strategywire.ErrSelectPanic), so errors.Is works with either.
var (
	// ErrInvalidOptions: Options failed validation (the error joins every problem).
	ErrInvalidOptions = errors.New("wasm: invalid options")
	// ErrABI: the file is not a module of the producerd WebAssembly ABI (see
	// docs/wasm-abi.md): a missing or mistyped export, an import the host does not
	// provide, a WASI command instead of a reactor, or an unknown ABI version. Load
	// refuses it; the error lists every problem found.
	ErrABI = errors.New("wasm: module does not implement the producerd WebAssembly ABI")
	// ErrChecksumMismatch: the module file does not match Options.SHA256.
	ErrChecksumMismatch = errors.New("wasm: module does not match its SHA-256 pin")
	// ErrTimeout: a guest call outlived Options.CallTimeout (or StartTimeout) and was
	// interrupted; its instance was discarded and is being replaced. It wraps
	// strategywire.ErrDecisionTimeout.
	ErrTimeout = errors.New("wasm: guest call exceeded its deadline")
	// ErrTrap: the guest died during a call (a WebAssembly trap such as an
	// out-of-bounds access, a Go runtime fatal error such as out of memory, or an exit);
	// its instance was discarded and is being replaced.
	ErrTrap = errors.New("wasm: guest trapped")
	// ErrGuest: the guest answered with an error code (its strategy returned an error
	// or panicked, or it rejected the input); the instance stays.
	ErrGuest = errors.New("wasm: guest returned an error")
	// ErrNoInstance: every instance of the module is being replaced after failures.
	ErrNoInstance = errors.New("wasm: no live module instance")
	// ErrClosed: the Strategy was closed.
	ErrClosed = errors.New("wasm: strategy closed")
)
