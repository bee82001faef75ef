package host

import "errors"

// Errors of package host. Plugin-side failures that crossed the process boundary wrap
// the sentinels of package sdk (sdk.ErrInvalidSettings, strategywire.ErrUnsupportedVersion, ...).
var (
	// ErrInvalidSpec: the Spec failed validation (the error joins every problem).
	ErrInvalidSpec = errors.New("host: invalid strategy spec")
	// ErrUnknownBuiltin: Spec.Plugin is neither a configured built-in nor a path.
	ErrUnknownBuiltin = errors.New("host: unknown built-in strategy")
	// ErrChecksumMismatch: the plugin executable does not match Spec.SHA256; the host
	// refuses to start it and never retries.
	ErrChecksumMismatch = errors.New("host: plugin executable does not match its SHA-256 pin")
	// ErrUntrustedPlugin: someone other than its owner could have replaced the plugin
	// executable (it, or a directory above it, is writable by a group or others, or
	// belongs to another user) and Spec.AllowInsecurePath is off; the host refuses to
	// start it and never retries.
	ErrUntrustedPlugin = errors.New("host: plugin executable could be replaced by another user")
	// ErrPluginDown: Start installed the strategy but its plugin process is not running;
	// decisions use the in-process fallback while the host keeps restarting it.
	ErrPluginDown = errors.New("host: strategy plugin is not running; deciding in-process")
	// ErrHealthCheck: a new plugin did not pass its health check (a sync round trip and,
	// for strategies the host does not apply locally, a probe decision).
	ErrHealthCheck = errors.New("host: plugin failed its health check")
	// ErrUnresponsive: the plugin kept failing its decisions for Config.StallRestart; it
	// is killed and restarted.
	ErrUnresponsive = errors.New("host: plugin unresponsive")
	// ErrPluginExited: the plugin process exited or its session broke.
	ErrPluginExited = errors.New("host: plugin exited")
	// ErrCrashLoop: the plugin failed Config.CrashLoopLimit times within
	// Config.CrashLoopWindow; the host stopped restarting it and decides in-process.
	ErrCrashLoop = errors.New("host: plugin crash loop; restarts stopped")
	// ErrAlreadyStarted: Start was called twice; use Swap.
	ErrAlreadyStarted = errors.New("host: already started")
	// ErrRolledBack: the strategy a swap installed failed its probation and the host
	// switched back to the previous one (SwapAndAwait).
	ErrRolledBack = errors.New("host: swapped strategy rolled back")
	// ErrClosed: the Host was closed.
	ErrClosed = errors.New("host: closed")
)
