// Package host turns a strategy spec into something that satisfies the plugins/sdk
// contract, supervises it and swaps it while traffic flows.
//
// # Where a strategy runs
//
// A Spec names a built-in ("roundrobin", "latencyfault", or any Config.Builtins key) or
// the path of a plugin executable. Built-ins run out of process by default: the host
// re-executes Spec.Command (the daemon's own binary with "plugin NAME", which calls
// ServeBuiltin); with Spec.InProcess they run in the daemon. Plugins by path may be
// pinned by SHA-256. Every plugin process is started with go-plugin (AutoMTLS on, the
// strategywire.Handshake), its stderr log lines are re-logged through Config.Logger tagged with
// the strategy name, and it dies with the daemon: Pdeathsig=SIGKILL on Linux plus the
// plugin-side parent watchdog of sdk.Serve. Hosts given one Pool (Config.Pool) share
// one plugin process, and one loaded WebAssembly module, per distinct plugin (see Pool).
//
// # Cost of a decision across the process boundary
//
// One long-lived pluginclient.Session (a bidirectional gRPC stream) per strategy
// generation, on its possibly shared plugin process, carries everything; there is no
// unary call per decision.
//
//   - Strategies whose Descriptor sets LocalApply (round-robin, latency-fault, the
//     least-latency example, any strategy that publishes a policy) publish their broker
//     health table with weights; the host decides locally with package
//     plugins/sdk/pick, the one queue walk every strategy's own Select also uses
//     (round-robin from a random start per topic and route version, weights,
//     last-broker avoidance, exclusions that expire at their Until without a round
//     trip, least-bad when none is available). The host holds no strategy's algorithm.
//     A decision then costs what it costs in-process. Outcomes go to the plugin in batches without
//     waiting; an urgent one (a failure, or an OK slower than UrgentLatency) is sent at
//     once and Observe waits, at most Config.UrgentTimeout, for the plugin's updated
//     table, so the very next Select already avoids the failed broker.
//   - Strategies that need the message (NeedsMessage) or do not declare LocalApply are
//     asked per decision over the stream, pipelined: many requests in flight with ids,
//     batched into stream messages; the queue list crosses only when (topic,
//     RouteVersion) is new to the plugin.
//
// # Fallback and supervision
//
// Every decision returns an index. A plugin decision that misses Spec.DecisionTimeout
// (default 10 ms), errs, or returns an index outside the queue list falls back to an
// in-process round-robin and is counted (Status.FallbacksByReason, Hooks.OnFallback,
// an error log at most once a second per reason). After Config.BreakerThreshold
// consecutive failures spanning at least Config.BreakerProbe the plugin is not asked
// (one probe per BreakerProbe); if that lasts Config.StallRestart it is killed and
// restarted. While a plugin is down, every
// decision uses the in-process fallback of the same kind: the built-in itself (a
// latency-fault fallback is seeded with the plugin's last table and keeps learning from
// the host's outcomes), or round-robin for a plugin given by path. A crashed plugin is
// restarted at once, then with exponential backoff; after Config.CrashLoopLimit
// failures within Config.CrashLoopWindow the host stops restarting it and reports
// ModeCrashLoop. A SHA-256 mismatch is never retried (ModeFailed).
//
// # Hot swap
//
// Host.Strategy returns a stable value (it implements Provider); each generation
// is immutable behind an atomic pointer. Host.Swap builds and health-checks the new
// generation off to the side, seeds it with the old one's health, switches between two
// decisions, waits for the old generation to drain, and keeps it on standby during
// Config.Probation so that a new strategy that starts failing is rolled back (see
// Swap for the exact rule). SwapAndAwait returns once that probation ended: nil, or an
// error wrapping ErrRolledBack with the reason.
//
// Every new strategy, whatever its kind, answers one trial decision on a synthetic
// route before it goes live; Check runs the same build off to the side and closes it
// (producerd validate).
package host
