// Package wasm runs queue-selection strategies compiled to WebAssembly in the daemon's
// process, sandboxed by wazero: the same sdk contract as in-process and plugin-process
// strategies, at about a microsecond per decision instead of tens.
//
// Load reads a module (a WASI preview 1 reactor implementing the producerd ABI of
// docs/wasm-abi.md, for example a Go main package calling wasmguest.Register), refuses
// it if its imports or exports do not match the ABI, compiles it once (through a
// compilation cache, on disk with Options.CacheDir), starts a pool of instances and
// returns a Strategy: an sdk.Selector, sdk.Observer, sdk.Describer, sdk.HealthReporter,
// sdk.HealthSeeder and io.Closer, and reports the optional parts the module
// really implements (Features).
//
// # Pool and state
//
// One WebAssembly instance runs one call at a time, so a Strategy keeps
// Options.Instances instances (default GOMAXPROCS), each behind its own lock; a
// decision takes the first free one from a random start, so concurrent decisions run in
// parallel up to the pool size and never queue behind one instance. (sync.Pool would
// drop instances at every garbage collection, and a new Go instance costs tens of
// milliseconds and its strategy's state.)
//
// Each instance holds its own copy of the strategy's state. Observe and Seed are
// broadcast: every instance applies every outcome batch, and broadcasts are serialised,
// so all copies see the same outcomes in the same order and make the same judgements
// (latency-fault isolates a broker in every instance before Observe returns, so the
// very next decision avoids it, whichever instance takes it). One state-owning
// instance would serialise every decision of a stateful strategy. Observe costs one
// call per instance (outcomes are batched by the host anyway) and waits for each
// instance's running decision. Health reads one instance. Counters that are not shared
// (round-robin positions) are per instance: the spread stays even, the exact sequence
// interleaves. A replacement instance (below) starts from a sibling's health table
// through Seed, under the same serialisation, so it misses no outcome.
//
// # Local decisions
//
// A module that declares LocalApply is not called per decision: after each broadcast
// (and at Load) the host reads one instance's health table, the strategy's published
// policy (exclusions with expiry, weights; none for round-robin), and decides
// in-process with package pick, the same walk the strategy's own Select runs
// (Options.NoLocalApply turns this off). Only strategies that need each message, or
// do not publish a policy, pay a guest call per decision.
//
// # Failures
//
// Every call has a deadline (Options.CallTimeout, StartTimeout while an instance
// starts). The module is instrumented before compiling (see internal/wasmbin): every
// branch back to a loop counts down, and every 1024 of them exits to Go and checks an
// interrupt flag,
// which a watchdog goroutine sets for a call that outlived its deadline; the call then
// traps. wazero's WithCloseOnContextDone does the same job but starts a goroutine per
// call (measured 1.4 to 6.5 µs per call here), which alone would blow the budget of a
// decision; it stays off. The periodic exit to Go matters on its own: Go cannot preempt
// a goroutine running compiled WebAssembly, so without it a looping guest would stall
// every garbage collection in the daemon.
//
// A call that traps (an out-of-bounds access, an unreachable, a stack overflow), that
// makes a Go guest die (a runtime fatal error such as out of memory when it grows past
// Options.MemoryLimitPages, or an exit), or that is interrupted, kills its instance:
// the decision returns ErrTrap or ErrTimeout (the latter wraps strategywire.ErrDecisionTimeout)
// so the caller falls back, the failure is counted (Stats) and logged with the first
// lines the guest printed (at most once a second per kind), and a goroutine owned by
// the Strategy starts a replacement, retrying with backoff. Decisions meanwhile use the
// other instances; when none is live they return ErrNoInstance. An error code returned
// by the guest (its Select failed or panicked and it recovered) is ErrGuest: the
// decision falls back and the instance stays.
//
// # Sandbox
//
// A module may import only wasi_snapshot_preview1. It gets no files (no preopened
// directories), no environment, no arguments, no network, no sleeping, and wazero's
// fake clocks; stdout and stderr go to a small buffer used to explain failures. It gets
// real randomness (WASI random_get from crypto/rand), so strategies can randomise
// start positions. The time a strategy may use is passed in each call's input (the
// host's clock, which never goes backwards), and in every decision only when the
// module declares that it reads the time (wasmguest.UsesClock): a clock read costs
// 50 to 70 ns on this project's machines. Each instance's linear memory is capped by
// Options.MemoryLimitPages.
//
// # Cost
//
// A decision is one exported-function call (wazero's CallWithStack, no allocation):
// the Selection is encoded into the instance's input buffer, the queue list only when
// the instance has not seen (Topic, RouteVersion) yet, and the message only for
// strategies that declare NeedsMessage. Run go test -bench . ./host/wasm/ for the
// numbers; most of the time is the Go guest itself.
package wasm
