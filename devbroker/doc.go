// Package devbroker is a TEST AND DEMO FIXTURE: an in-process, RocketMQ-compatible NameServer
// and a set of broker masters that speak the real remoting protocol (package remoting) on
// loopback TCP listeners, keep messages in memory, and inject faults on demand or on a
// timeline. It serves the quick start, the strategy simulator and fast tests. It is not a
// broker: nothing is persisted, there is no replication, no consumer offsets, no long polling,
// no transactions, no ACL, no delayed delivery, and it never replaces the real Apache RocketMQ
// in the integration suite.
//
// # What it speaks
//
// The NameServer answers GET_ROUTEINFO_BY_TOPIC (105) exactly like an Apache NameServer >=
// 4.9.4: standard JSON ({"0":"127.0.0.1:port"}) to a request with version >= 401 (V4_9_4) or
// ext field acceptStandardJsonOnly=true, and otherwise fastjson's default form with bare
// integer map keys ({0:"127.0.0.1:port"}); both alphabetical and without spaces. An unknown
// topic gets TOPIC_NOT_EXIST (17) with the real remark. GET_BROKER_CLUSTER_INFO (106) is
// answered in the bare-key form, as the real one always does. Brokers register in-process.
//
// Each broker answers SEND_MESSAGE (10, long header names), SEND_MESSAGE_V2 (310, single
// letters), SEND_BATCH_MESSAGE (320), SEND_REPLY_MESSAGE(_V2) (324/325, stored like sends),
// HEART_BEAT (34), UNREGISTER_CLIENT (35), UPDATE_AND_CREATE_TOPIC (17), VIEW_MESSAGE_BY_ID
// (33), PULL_MESSAGE (11, without long polling), GET_MAX_OFFSET (30) and GET_MIN_OFFSET (29);
// any other code gets REQUEST_CODE_NOT_SUPPORTED (3). A send to an unknown topic auto-creates
// it from the request's default topic (TBW102) when that topic's perm has INHERIT, with
// min(defaultTopicQueueNums, default topic's write queues) queues, and the NameServer routes
// it at once. A queueId >= the topic's queue count is INVALID_PARAMETER (29) as on 5.x; a
// negative queueId lets the broker pick one at random. Compressed bodies (sysFlag 0x1) are
// stored as sent with their sysFlag. Oneway requests (flag bit 1) get no response; requests
// without the flag are answered, even when the client drops the answer (rocketmq-client-go).
//
// Responses use the request's header encoding by default (as a 4.9 broker does on its
// normal path); Config.ResponseEncoding can force JSON or ROCKETMQ headers instead.
//
// # Storage
//
// Every broker keeps one in-memory commit log in the stored-message format brokers return
// from VIEW_MESSAGE_BY_ID and PULL_MESSAGE (magic code -626843481, one-byte topic length),
// with per-(topic, queue) offsets. The log is bounded by Config.MaxMessages and
// Config.MaxBytes: when a new message would exceed either, the oldest messages (across all
// topics) are dropped first; their queue offsets then fall below GET_MIN_OFFSET and viewing
// them by id fails like a message whose commit log file was deleted. Offset message ids are
// uppercase hex of store IP (4 bytes), port (4) and commit log offset (8). Messages survive
// Down/Up of their broker (like a restarted broker's disk store) and vanish with Close.
//
// # Faults
//
// Every broker carries a Fault (see its fields): added latency, injected error codes,
// connection resets, hangs (like SIGSTOP: connections stay open, nothing is read or
// answered) and down (like SIGKILL: listener and connections closed, connects refused, the
// broker leaves the routes), malformed send answers (Fault.Malform: no msgId, no queueId, a
// non-numeric queueOffset, no response flag) and slave-only routes (RouteSlaveOnly). Route
// data can also be made wrong on purpose: Broker.SetTopicPerm makes a topic read-only on
// one broker, Cluster.SetRoute makes the NameServer answer any body for a topic (absurd
// sizes, broken JSON). Set a fault at once with Broker.SetFault, or schedule changes with
// Config.Timeline relative to Start, applied by a goroutine the Cluster owns on Config.Clock,
// or step by step with Cluster.AdvanceTimeline when Config.ManualTimeline is set, so tests
// need no sleeps.
//
// # Lifetime
//
// Start listens and returns; Cluster.Close closes every listener and connection and waits for
// every goroutine the cluster started. All methods are safe for concurrent use. The fixture
// never panics on bad input: a frame it cannot decode, or one over Config.MaxFrameSize,
// closes that connection only.
package devbroker
