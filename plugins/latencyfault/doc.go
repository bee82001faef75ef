// Package latencyfault is producerd's latency-fault strategy: the Java client's
// MQFaultStrategy (spec §7.3 and §7.4) as an sdk.Selector that also implements
// sdk.Observer, sdk.Describer, sdk.HealthReporter, sdk.HealthSeeder and io.Closer, with
// two guardrails the Java client lacks: a cap on how many brokers may be isolated at
// once and an optional active probe that re-admits isolated brokers early.
//
// # Fault table
//
// Each outcome updates its broker's entry. The latency it counts as is
// Options.IsolationLatency when Outcome.Isolation is set (whatever the real latency),
// else Outcome.Latency (negative latencies count as 0). That latency L maps to an
// isolation duration through the tables: the duration of the highest i with
// LatencyMax[i] ≤ L, or 0 below LatencyMax[0]. The defaults (PresetRocketMQ4, Java
// 4.9):
//
//	latency    < 550 ms  550 ms  1000 ms  2000 ms  3000 ms  15000 ms
//	isolation       0     30 s     60 s    120 s    180 s     600 s
//
// with IsolationLatency 30 s, so an isolating outcome isolates for 600 s. The entry's
// end of isolation then becomes:
//
//   - Java 4.9 rule (Options.NeverShorten false, the default): now + duration,
//     overwriting the previous value, so a fast success makes an isolated broker
//     available at once;
//   - Java 5.x rule (NeverShorten true, PresetRocketMQ5): max(previous, now + duration)
//     when duration > 0, else unchanged, so an isolation only ever grows. PresetRocketMQ5
//     uses the 5.1.4+ tables {50, 100, 550, 1800, 3000, 5000, 15000} ms →
//     {0, 0, 2, 5, 6, 10, 30} s and IsolationLatency 10 s (10 s of isolation).
//
// A broker is available at instant t when t ≥ its end of isolation; brokers never seen
// are available. The Java 5.x "reachable" flag is not modelled: sdk.Outcome does not
// carry it, and the probe plays its part. Outcomes with an empty Broker are ignored.
// Outcomes are applied in the order given; the contract carries no timestamp, so an OK
// outcome delivered in a late batch after an urgent failure of the same broker
// overwrites that failure under the 4.9 rule.
//
// # Isolation cap
//
// Let known be the number of brokers in the table (every broker seen in a route, an
// outcome or a Seed) and limit = ⌊MaxIsolatedShare × known⌋, at least 1 (MaxIsolatedShare
// 1 means no cap; the default is 0.5). When an outcome would isolate a broker that is
// available and limit brokers are already isolated, the candidates are those isolated
// brokers and the new one; the candidate whose isolation ends first (ties: lower counted
// latency, then broker name) stays or becomes available, and the others are isolated.
// So the cap never isolates more than limit brokers, and the brokers it keeps isolated
// are the ones judged worst. An outcome that extends an existing isolation does not
// trigger the cap. Seed applies the same rule after loading rows. The cap is global,
// across topics.
//
// # Selection
//
// Each topic keeps a round-robin counter per route version, started at a random
// position (Options.Rand), as in package roundrobin. Select advances it once to a
// position p and then:
//
//  1. when no broker is isolated: returns p, or on a retry (LastBroker set) the first
//     queue from p onwards (wrapping) not on LastBroker, else p;
//  2. otherwise walks from p over every queue and returns the first whose broker is
//     available and is not LastBroker; failing that, the first available queue on
//     LastBroker;
//  3. when no broker of the route is available (Java's pickOneAtLeast, restricted to the
//     route's brokers and without LastBroker when another broker exists): ranks those
//     brokers by lower counted latency, then earlier end of isolation, then name; with
//     count brokers it takes rank w mod ⌊count/2⌋ for a rotating counter w (rank 0 when
//     count < 2), the "better half"; and returns that broker's queue number p mod (its
//     queue count), in route order. Unlike Java it never synthesises a queue outside the
//     route.
//
// Select never blocks and ignores ctx. It takes no lock and allocates nothing in steady
// state: route state sits in a sync.Map, and the set of isolated brokers in an immutable snapshot behind another, rebuilt by Observe, Seed,
// the cap and the probe whenever an isolation starts, ends early or changes. It reads
// the clock only while some broker is isolated. The route cache keeps at most 4096
// topics; past that it is cleared.
//
// # Describe, Health, Seed
//
// Describe returns Name "latencyfault" and UrgentLatency = the lowest LatencyMax whose
// duration is positive (550 ms with both presets), so the host delivers OK outcomes that
// slow at once; fast OK outcomes may be batched, which under the 4.9 rule only delays an
// early re-admission.
//
// Health returns one row per known broker, sorted by name: Available, Until (the end of
// isolation, zero when available) and the last observed Latency.
//
// Seed loads another generation's rows, replacing the entries of the brokers it names
// (rows with an empty Broker are skipped): an unavailable row with a non-zero Until
// stays isolated until then, clamped to now + the largest NotAvailable so that a switch
// to shorter tables does not inherit a longer isolation; an unavailable row with a zero
// Until is taken as available. A seeded isolation counts as IsolationLatency for
// ranking. The cap is then enforced.
//
// # Probe
//
// With Options.Probe set, New starts one goroutine that, every ProbeInterval (default
// 3 s), probes each broker isolated at the start of the round, in name order, one at a
// time, each call bounded by ProbeTimeout (default 200 ms). A nil error ends that
// broker's isolation at once (under both rules), unless an outcome changed its entry
// while the probe ran. A failed probe changes nothing. Close cancels the running probe,
// stops the goroutine and waits for it.
//
// # Concurrency
//
// Every method is safe for concurrent use. Observe, Seed, Health, the probe and the
// first Select of a new route version serialise on one mutex; steady-state Select does
// not take it.
package latencyfault
