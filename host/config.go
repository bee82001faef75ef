package host

import (
	"encoding/hex"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/producerd/producerd/host/internal/pluginclient"
	"github.com/producerd/producerd/plugins/sdk"
)

// Builtin builds a built-in strategy from its settings (JSON, possibly empty). It is
// called in the daemon for the in-process instance and the fallback, and in the plugin
// process (see ServeBuiltin) when the strategy runs out of process. It must validate
// the settings and do no I/O.
type Builtin = sdk.Constructor

// Defaults of Config.
const (
	DefaultDecisionTimeout      = pluginclient.DefaultDecisionTimeout // 10 ms
	DefaultUrgentTimeout        = pluginclient.DefaultUrgentTimeout   // 10 ms
	DefaultStartTimeout         = 10 * time.Second
	DefaultRestartBackoff       = 100 * time.Millisecond
	DefaultMaxRestartBackoff    = 10 * time.Second
	DefaultCrashLoopLimit       = 5
	DefaultCrashLoopWindow      = time.Minute
	DefaultDrainTimeout         = 30 * time.Second
	DefaultProbation            = 10 * time.Second
	DefaultRollbackMinDecisions = 20
	DefaultRollbackFailureRatio = 0.5
	DefaultBreakerThreshold     = 5
	DefaultBreakerProbe         = 100 * time.Millisecond
	DefaultBreakerMaxProbe      = 10 * time.Second
	DefaultStallRestart         = 5 * time.Second
)

// Config configures a Host. Zero fields take the defaults above; New validates the
// rest and reports every problem at once. New does no I/O.
type Config struct {
	// Logger receives the host's log and, tagged with the strategy name, the plugins'
	// own log lines (go-plugin forwards their stderr). Default: a logger that discards.
	Logger hclog.Logger
	// Builtins are the strategies known by name. Default DefaultBuiltins()
	// (roundrobin, latencyfault).
	Builtins map[string]Builtin
	// WasmCacheDir, when set, keeps compiled WebAssembly strategies on disk so a restart
	// does not compile them again.
	WasmCacheDir string
	// DecisionTimeout is the default of Spec.DecisionTimeout. Default 10 ms.
	DecisionTimeout time.Duration
	// UrgentTimeout bounds how long Observe waits for a plugin to apply an urgent
	// outcome (a failure, or an OK slower than the strategy's UrgentLatency) and publish
	// its health, so that the next selection sees it. Default 10 ms.
	UrgentTimeout time.Duration
	// StartTimeout bounds starting one plugin process: handshake, Describe, Configure
	// and the health check. Default 10 s.
	StartTimeout time.Duration
	// RestartBackoff is the delay before the second restart in a row; it doubles up to
	// MaxRestartBackoff. The first restart after a crash is immediate. Defaults 100 ms
	// and 10 s.
	RestartBackoff, MaxRestartBackoff time.Duration
	// CrashLoopLimit failures (crashes, failed starts, unresponsive kills) within
	// CrashLoopWindow stop the restarts: the strategy then decides in-process until the
	// next Swap. Defaults 5 and 1 minute.
	CrashLoopLimit  int
	CrashLoopWindow time.Duration
	// DrainTimeout bounds how long Swap waits for sends still using the old generation
	// (Provider releases). Default 30 s.
	DrainTimeout time.Duration
	// Probation is how long after a Swap the new generation may be rolled back (see
	// Host.Swap for the rule); the old generation's plugin is kept running until then.
	// Default 10 s. Negative disables rollback.
	Probation time.Duration
	// RollbackMinDecisions and RollbackFailureRatio: during Probation, a generation
	// whose plugin failed more than RollbackFailureRatio of at least
	// RollbackMinDecisions decisions is rolled back. Defaults 20 and 0.5.
	RollbackMinDecisions int
	RollbackFailureRatio float64
	// BreakerThreshold consecutive failed decisions (timeouts, errors, traps,
	// out-of-range answers) of a plugin process or a WebAssembly strategy, spanning at
	// least BreakerProbe, open its circuit: decisions then fall back at once, the
	// opening is logged, counted (Status.BreakerOpens, Hooks.OnBreaker) and shown in
	// Status (ModeBreakerOpen, LastError says why). One decision per probe interval
	// tries the strategy again (half-open): a success closes the circuit, a failure
	// doubles the interval, from BreakerProbe up to BreakerMaxProbe. Defaults 5, 100 ms
	// and 10 s.
	BreakerThreshold int
	BreakerProbe     time.Duration
	BreakerMaxProbe  time.Duration
	// StallRestart: a plugin whose circuit stayed open this long is killed and
	// restarted (counted as a crash). Default 5 s.
	StallRestart time.Duration
	// Hooks are called on events, for metrics. Optional.
	Hooks Hooks
	// Pool runs the plugin processes: Hosts given the same Pool share one process per
	// plugin (see Pool). Default: a Pool of the Host's own.
	Pool *Pool
}

// Hooks are callbacks for metrics. They are called synchronously, OnFallback on the
// decision path: keep them cheap and non-blocking. Nil hooks are skipped.
type Hooks struct {
	// OnFallback: one decision of strategy was not made by its plugin.
	OnFallback func(strategy string, reason FallbackReason)
	// OnCrash: the plugin of strategy failed (exited, broke its session, failed to
	// start, or was killed as unresponsive).
	OnCrash func(strategy string, err error)
	// OnRestart: the plugin of strategy is running again with process id pid.
	OnRestart func(strategy string, pid int)
	// OnCrashLoop: restarts of strategy stopped.
	OnCrashLoop func(strategy string, err error)
	// OnSwap: generation gen of strategy to replaced strategy from.
	OnSwap func(from, to string, gen uint64)
	// OnRollback: strategy from was rolled back to strategy to.
	OnRollback func(from, to string, reason error)
	// OnBreaker: the circuit of strategy opened (err is the failure that opened it) or
	// closed again (err nil).
	OnBreaker func(strategy string, open bool, err error)
}

func (c Config) withDefaults() Config {
	if c.Logger == nil {
		c.Logger = hclog.NewNullLogger()
	}
	if c.Builtins == nil {
		c.Builtins = DefaultBuiltins()
	}
	def := func(d *time.Duration, v time.Duration) {
		if *d == 0 {
			*d = v
		}
	}
	def(&c.DecisionTimeout, DefaultDecisionTimeout)
	def(&c.UrgentTimeout, DefaultUrgentTimeout)
	def(&c.StartTimeout, DefaultStartTimeout)
	def(&c.RestartBackoff, DefaultRestartBackoff)
	def(&c.MaxRestartBackoff, DefaultMaxRestartBackoff)
	def(&c.CrashLoopWindow, DefaultCrashLoopWindow)
	def(&c.DrainTimeout, DefaultDrainTimeout)
	def(&c.Probation, DefaultProbation)
	def(&c.BreakerProbe, DefaultBreakerProbe)
	def(&c.BreakerMaxProbe, max(DefaultBreakerMaxProbe, c.BreakerProbe))
	def(&c.StallRestart, DefaultStallRestart)
	if c.CrashLoopLimit == 0 {
		c.CrashLoopLimit = DefaultCrashLoopLimit
	}
	if c.RollbackMinDecisions == 0 {
		c.RollbackMinDecisions = DefaultRollbackMinDecisions
	}
	if c.RollbackFailureRatio == 0 {
		c.RollbackFailureRatio = DefaultRollbackFailureRatio
	}
	if c.BreakerThreshold == 0 {
		c.BreakerThreshold = DefaultBreakerThreshold
	}
	return c
}

func (c Config) validate() error {
	var errs []error
	for name, d := range map[string]time.Duration{
		"DecisionTimeout": c.DecisionTimeout, "UrgentTimeout": c.UrgentTimeout, "StartTimeout": c.StartTimeout,
		"RestartBackoff": c.RestartBackoff, "MaxRestartBackoff": c.MaxRestartBackoff, "CrashLoopWindow": c.CrashLoopWindow,
		"DrainTimeout": c.DrainTimeout, "BreakerProbe": c.BreakerProbe, "BreakerMaxProbe": c.BreakerMaxProbe,
		"StallRestart": c.StallRestart,
	} {
		if d < 0 {
			errs = append(errs, fmt.Errorf("%s = %v, must not be negative", name, d))
		}
	}
	if c.MaxRestartBackoff < c.RestartBackoff {
		errs = append(errs, fmt.Errorf("MaxRestartBackoff %v is below RestartBackoff %v", c.MaxRestartBackoff, c.RestartBackoff))
	}
	if c.BreakerMaxProbe < c.BreakerProbe {
		errs = append(errs, fmt.Errorf("BreakerMaxProbe %v is below BreakerProbe %v", c.BreakerMaxProbe, c.BreakerProbe))
	}
	if c.CrashLoopLimit < 0 {
		errs = append(errs, fmt.Errorf("CrashLoopLimit = %d, must not be negative", c.CrashLoopLimit))
	}
	if c.RollbackMinDecisions < 0 {
		errs = append(errs, fmt.Errorf("RollbackMinDecisions = %d, must not be negative", c.RollbackMinDecisions))
	}
	if c.RollbackFailureRatio < 0 || c.RollbackFailureRatio > 1 {
		errs = append(errs, fmt.Errorf("RollbackFailureRatio = %v, must be in [0, 1]", c.RollbackFailureRatio))
	}
	if c.BreakerThreshold < 0 {
		errs = append(errs, fmt.Errorf("BreakerThreshold = %d, must not be negative", c.BreakerThreshold))
	}
	for name, b := range c.Builtins {
		if b == nil {
			errs = append(errs, fmt.Errorf("built-in %q has a nil constructor", name))
		}
		if isPath(name) || name == "" {
			errs = append(errs, fmt.Errorf("built-in name %q must not be empty or look like a path", name))
		}
	}
	if len(errs) > 0 {
		return fmt.Errorf("host: invalid config: %w", errors.Join(errs...))
	}
	return nil
}

// Spec describes one strategy: which code, where it runs, and how it is configured.
type Spec struct {
	// Name is the strategy's name in the config (logs, status, metrics). Default: the
	// Plugin value.
	Name string
	// Plugin is a built-in name ("roundrobin", "latencyfault", or another key of
	// Config.Builtins), the path of a plugin executable (anything containing a path
	// separator), or the path of a WebAssembly module ending in ".wasm", which runs
	// sandboxed in this process through wazero (see host/wasm and docs/wasm-abi.md).
	Plugin string
	// InProcess runs a built-in in the daemon's process instead of as a plugin process
	// (built-ins run out of process by default). Not allowed with a path.
	InProcess bool
	// Command starts a built-in out of process; the plugin process must call
	// ServeBuiltin with the name. Default [SelfExecutable(), "plugin", Plugin]. Ignored
	// for paths.
	Command []string
	// SHA256 optionally pins the plugin executable or WebAssembly module (hex). It is
	// checked at every start and restart of the plugin process: a mismatch refuses it
	// (ErrChecksumMismatch) and the strategy decides in-process until the next Swap.
	SHA256 string
	// AllowInsecurePath runs a plugin executable or WebAssembly module given by path
	// even when someone other than its owner could replace it (see
	// ErrUntrustedPlugin); off by default, so a plugin that is writable by others, or
	// sits in a directory others can write, is refused at every start and restart (a
	// module: at Start and Swap).
	AllowInsecurePath bool
	// Env names the variables of the daemon's environment that the plugin process
	// gets. Nothing else is passed but go-plugin's handshake variables, the SDK's log
	// level (strategywire.EnvLogLevel) and TMPDIR: not the daemon's secrets.
	Env []string
	// Settings are passed to Configure (JSON); for built-ins also to the Builtin.
	Settings []byte
	// DecisionTimeout bounds each decision made by the plugin; a late answer falls back
	// to in-process round-robin. Default Config.DecisionTimeout.
	DecisionTimeout time.Duration
}

// wasm reports whether the strategy is a WebAssembly module (a path ending in .wasm).
func (s Spec) wasm() bool { return isPath(s.Plugin) && strings.HasSuffix(s.Plugin, ".wasm") }

func isPath(p string) bool {
	return strings.ContainsRune(p, '/') || strings.ContainsRune(p, filepath.Separator) || strings.HasPrefix(p, ".")
}

// resolve fills the defaults of s and validates it against the host's built-ins.
func (h *Host) resolve(s Spec) (Spec, error) {
	var errs []error
	if s.Plugin == "" {
		errs = append(errs, errors.New("the plugin name or path is empty"))
	}
	if s.Name == "" {
		s.Name = s.Plugin
	}
	path := isPath(s.Plugin)
	if !path && s.Plugin != "" {
		if _, ok := h.cfg.Builtins[s.Plugin]; !ok {
			errs = append(errs, fmt.Errorf("%w %q", ErrUnknownBuiltin, s.Plugin))
		}
	}
	if path && s.InProcess && !s.wasm() {
		errs = append(errs, fmt.Errorf("InProcess is only for built-ins, not the path %q", s.Plugin))
	}
	if s.SHA256 != "" {
		if b, err := hex.DecodeString(s.SHA256); err != nil || len(b) != 32 {
			errs = append(errs, fmt.Errorf("SHA256 %q is not 64 hex digits", s.SHA256))
		}
	}
	if err := checkEnvNames(s.Env); err != nil {
		errs = append(errs, err)
	}
	if s.DecisionTimeout < 0 {
		errs = append(errs, fmt.Errorf("DecisionTimeout = %v, must not be negative", s.DecisionTimeout))
	} else if s.DecisionTimeout == 0 {
		s.DecisionTimeout = h.cfg.DecisionTimeout
	}
	if !path && !s.InProcess && len(s.Command) == 0 {
		exe, err := SelfExecutable()
		if err != nil {
			errs = append(errs, fmt.Errorf("no Command and SelfExecutable failed: %w", err))
		}
		s.Command = []string{exe, "plugin", s.Plugin}
	}
	if len(errs) > 0 {
		return s, fmt.Errorf("%w %q: %w", ErrInvalidSpec, s.Name, errors.Join(errs...))
	}
	return s, nil
}

func (s Spec) builtin() bool { return !isPath(s.Plugin) }

// executable returns the path and arguments that start the plugin.
func (s Spec) executable() (string, []string) {
	if s.builtin() {
		return s.Command[0], s.Command[1:]
	}
	return s.Plugin, nil
}
