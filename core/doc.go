// Package core is producerd's RocketMQ producer: what Apache RocketMQ's Java
// DefaultMQProducer and MQClientInstance do, in Go, usable as a library.
//
// A Producer sends for one producer group. Producers whose ClientConfig yields the same
// client id (IP@InstanceName[@UnitName]) share one Client instance: its connections,
// route table, route refresh (every 30 s) and heartbeats (every 30 s). The default
// instance name "DEFAULT" becomes "PID#nanos", so set InstanceName to share.
//
// Sending:
//
//   - Send: synchronous, up to 1+Retries attempts within one SendTimeout budget (3 s); each
//     attempt but the last is capped at AttemptTimeout (default a third of the budget) so a
//     hung broker cannot eat the retries; transport failures and the broker codes in
//     RetryCodes ({1, 2, 14, 16, 17, 204, 205}) are retried on another broker.
//   - SendAsync / SendFuture: the same without waiting; transport failures are retried on a
//     freshly selected queue, broker codes are not.
//   - SendOneway: one attempt, no answer awaited.
//   - SendBatch: many messages of one topic in one SEND_BATCH_MESSAGE.
//   - SendToQueue: one attempt to a queue the caller chose.
//
// Messages are validated before any network I/O (ValidationError names the rule), get a
// UNIQ_KEY that stays the same on every retry, and bodies of 4 KiB or more are
// zlib-compressed. Unknown topics are auto-created through the broker's TBW102 default
// topic, as the Java client does.
//
// Queue selection and outcome accounting are delegated to a strategy (plugins/sdk); the
// default is round-robin from a random start that avoids the last failed broker.
//
// Errors: *ValidationError (errors.Is ErrInvalidMessage), ErrNoRoute, *SendError wrapping
// the last attempt's error (a *remoting.Error with the broker's code, remoting.ErrConnect,
// remoting.ErrTimeout) and ErrTimeout when the budget ran out.
//
// Everything here is safe for concurrent use.
package core
