package wasm

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"runtime"
	"time"

	"github.com/hashicorp/go-hclog"
)

// Defaults of Options.
const (
	// DefaultMemoryLimitPages is 512 pages of 64 KiB: 32 MiB per instance.
	DefaultMemoryLimitPages = 512
	// DefaultCallTimeout bounds one call into the guest. It is deliberately longer
	// than the host's decision timeout (host.DefaultDecisionTimeout, 10 ms): it exists to
	// stop a guest that is stuck, and an interrupted instance costs a replacement (tens
	// of milliseconds of CPU), while a healthy guest can take milliseconds now and then
	// (a Go module collects garbage inside the call that triggers it; a busy machine
	// deschedules the calling thread).
	DefaultCallTimeout = 100 * time.Millisecond
	// DefaultStartTimeout bounds starting one instance: the guest's initialisation,
	// Configure and Describe.
	DefaultStartTimeout = 10 * time.Second
	// MaxInstances bounds Options.Instances.
	MaxInstances = 256
	// MaxModuleSize bounds the size of a module file.
	MaxModuleSize = 256 << 20
)

// Options configures Load. The zero value is usable; zero fields take the defaults
// above. Load validates them and reports every problem at once.
type Options struct {
	// NoLocalApply makes every decision call the guest even when the module declares
	// LocalApply and reports health (by default the host then decides in-process with
	// package pick from the policy the module publishes). For comparisons and tests.
	NoLocalApply bool
	// CacheDir is a directory where compiled code is kept across processes (wazero's
	// compilation cache; created if missing). Empty: compiled code is cached in memory
	// only, shared by every Load of this process. Compiling a module takes about a
	// second per 2 MB of WebAssembly; loading it from the cache, milliseconds.
	CacheDir string
	// Instances is the number of module instances in the pool: concurrent decisions
	// up to this number run in parallel. Default the Ps the process started with
	// (GOMAXPROCS at start), or 1 for a module the host applies locally (LocalApply
	// without NoLocalApply: its decisions never enter the guest, and every instance
	// would apply every outcome); at most MaxInstances.
	Instances int
	// MemoryLimitPages caps each instance's linear memory, in 64 KiB pages; a guest that
	// grows past it fails the call (and the instance is replaced). A module whose
	// minimum memory is larger is refused. Default DefaultMemoryLimitPages (32 MiB); at
	// most 65536.
	MemoryLimitPages uint32
	// CallTimeout bounds each call into the guest (Select, Observe, Health, Seed). A
	// call still running after it is interrupted within about CallTimeout/2 more, its
	// instance is replaced, and the decision returns ErrTimeout (wrapping
	// strategywire.ErrDecisionTimeout). Default DefaultCallTimeout (100 ms).
	CallTimeout time.Duration
	// StartTimeout bounds starting each instance (the guest's initialisation,
	// Configure, Describe, and seeding a replacement). Default DefaultStartTimeout.
	StartTimeout time.Duration
	// Settings are passed to the module's Configure (JSON, as for every strategy).
	// Non-empty settings for a module that does not implement Configure are an error
	// (wrapping sdk.ErrInvalidSettings), as is a rejection by the module.
	Settings []byte
	// Logger receives instance failures and replacements and the guest's stderr lines
	// that came with them. Default: discard.
	Logger hclog.Logger
	// Name names the strategy in logs. Default: the module's Descriptor.Name.
	Name string
	// SHA256 optionally pins the module file (64 hex digits): Load refuses a file whose
	// SHA-256 differs (ErrChecksumMismatch). It is checked on the bytes Load compiles.
	SHA256 string
}

// defaultInstances is Options.Instances' default: the Ps the runtime starts with, read
// before anything changes them (the daemon's procs controller runs on one P while it is
// quiet; a module loaded then must still get an instance per P it may run on later).
var defaultInstances = runtime.GOMAXPROCS(0)

func (o Options) resolve() (Options, error) {
	var errs []error
	if o.Instances < 0 || o.Instances > MaxInstances {
		errs = append(errs, fmt.Errorf("option Instances = %d, must be in [0, %d]", o.Instances, MaxInstances))
	} else if o.Instances == 0 {
		o.Instances = defaultInstances
	}
	if o.MemoryLimitPages > 65536 {
		errs = append(errs, fmt.Errorf("option MemoryLimitPages = %d, must be at most 65536 (4 GiB)", o.MemoryLimitPages))
	} else if o.MemoryLimitPages == 0 {
		o.MemoryLimitPages = DefaultMemoryLimitPages
	}
	if o.CallTimeout < 0 {
		errs = append(errs, fmt.Errorf("option CallTimeout = %v, must not be negative", o.CallTimeout))
	} else if o.CallTimeout == 0 {
		o.CallTimeout = DefaultCallTimeout
	}
	if o.StartTimeout < 0 {
		errs = append(errs, fmt.Errorf("option StartTimeout = %v, must not be negative", o.StartTimeout))
	} else if o.StartTimeout == 0 {
		o.StartTimeout = DefaultStartTimeout
	}
	if o.SHA256 != "" {
		if b, err := hex.DecodeString(o.SHA256); err != nil || len(b) != sha256.Size {
			errs = append(errs, fmt.Errorf("option SHA256 %q is not 64 hex digits", o.SHA256))
		}
	}
	if o.Logger == nil {
		o.Logger = hclog.NewNullLogger()
	}
	if len(errs) > 0 {
		return o, fmt.Errorf("%w: %w", ErrInvalidOptions, errors.Join(errs...))
	}
	return o, nil
}
