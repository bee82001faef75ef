// Package simulate replays a fault scenario against queue-selection strategies and
// reports, per strategy, what a producer would have seen: success rate, retries, p50
// and p99 send latency, each broker's share of the attempts per second, and when the
// strategy isolated which broker. It backs `producerd simulate`.
//
// A scenario is a TOML file (see docs/simulator.md and examples/scenarios): the dev
// broker cluster (brokers, queues per broker), an open-loop load (rate, duration,
// message sizes, concurrency), the producer's timeouts and retries, fault windows
// (added latency, error codes, connection resets, hangs, down) and the strategies to
// compare (built-ins with settings or a plugin binary, in-process or as a plugin
// process). ParseFile decodes it strictly: every problem is a *config.Error naming
// file, line and key.
//
// Run gives every strategy the same conditions: a fresh devbroker.Cluster started with
// the scenario's seed, the real send path (core.Producer with the scenario's timeouts
// and retries, the strategy behind a host.Host exactly as the daemon runs it) and the
// same fault timeline, applied relative to the start of the load. Strategies run one
// after another, never at the same time, so they do not compete for the CPU.
//
// # Real time
//
// Runs are in real time: scenario time is wall time, and a 60 s scenario takes a little
// over 60 s per strategy. Accelerating would need every clock on the path to scale
// together: the dev broker's latency faults delay real sockets, the producer's send
// timeout and per-attempt cap are real deadlines on those sockets, and the strategy's
// isolation clock (latencyfault Options.Now) runs in the plugin process. Scaling only
// some of them would change the comparison the simulator exists to make, so it does
// not. Options.Duration (-duration) runs a prefix of a scenario instead.
//
// # What is measured
//
// Latency is the duration of core.Producer.Send, every attempt included; a failed send
// counts with the time it took to fail, so a strategy cannot look fast by failing.
// Broker shares count attempts (the strategy's decisions), bucketed by the second in
// which each attempt started. Isolations come from the strategy's broker health table
// (host.Status().Health, the latency-fault table), sampled every SampleInterval; a
// strategy without one (round-robin) isolates nothing.
//
// Every load loop is bounded: a scenario sends exactly rate × duration messages (at
// most MaxMessages), every send is bounded by the producer's send timeout, and Run
// stops when its context ends.
package simulate
