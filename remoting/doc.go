// Package remoting is a client for the Apache RocketMQ remoting protocol (the TCP protocol
// of NameServers and Brokers, 4.9.x and 5.x): the frame codec and a multiplexing client.
// It imports no other producerd package.
//
// # Codec
//
// A frame is int32 totalLen (not counting itself), an int32 header word (serialization type
// in the top byte, header length in the low 24 bits), the header and the body. Requests are
// encoded in the configured header encoding (JSON by default, or the binary ROCKETMQ one);
// every frame received is decoded in whichever encoding it arrives, since 5.x servers and
// 4.9 error paths answer in their own default. Frame lengths are checked against the
// maximum (16 MiB by default) before any allocation. AppendFrame, DecodeFrame and
// ReadCommand expose the codec for tests and tools.
//
// # Connections and concurrency
//
// A Client keeps one connection per server address, dialled lazily by the first request and
// shared by every later one; requests are multiplexed by an opaque id taken from an atomic
// counter. Concurrent first requests to an address share a single dial; dials lock per
// address, so a slow address never blocks another. Each connection owns three goroutines:
//
//   - a writer: senders append encoded frames to a shared buffer under a mutex and the writer
//     sends everything accumulated with one Write, so frames from many goroutines share a
//     syscall (TCP_NODELAY is on). When 1 MiB waits unsent, senders wait within their deadline.
//   - a reader: it decodes frames through a 32 KiB buffer, completes the matching pending
//     request, drops responses nobody waits for (late answers to timed-out requests), ignores
//     oneway requests from the server and answers its other requests with
//     REQUEST_CODE_NOT_SUPPORTED (flag 1, same opaque, in the request's encoding).
//   - a callback runner: InvokeAsync callbacks run there, in completion order, never on the
//     reader, so a slow callback does not stall reading (it still delays the connection's
//     other callbacks, so callbacks must be short).
//
// When a connection breaks (EOF, reset, write error, protocol error such as an unknown
// serialization type, CloseConn) every request still pending on it fails at once: with
// ErrSend if its frame was not completely written (the server cannot have processed it),
// else with ErrConnClosed. The next request re-dials. Connections with no traffic either way
// and nothing pending for IdleTimeout (default 120s) are closed.
//
// Close fails every pending request with ErrClosed, runs the remaining callbacks and waits
// until every goroutine the client started has exited.
//
// # Timeouts
//
// A request's deadline is the earlier of its ctx's deadline and the one the caller passes
// (InvokeSyncUntil, InvokeAsyncUntil, InvokeNameServerUntil), or DefaultTimeout (3s) from
// the call when there is neither. A timed-out request is removed from the pending map at once (sync: by the
// caller; async: by a per-request timer) and fails with ErrTimeout.
//
// Java closes the connection on every sync timeout; on a multiplexed connection that fails
// every other request in flight. This client closes it only when the peer looks hung:
// nothing at all was read from the connection during the whole wait, and the wait lasted at
// least 100ms. A slow but live server keeps its connection; a stopped one (SIGSTOP, dead
// host) loses it, its other requests fail at once, and the next request re-dials, so work
// resumes as soon as the server does. Config.CloseOnTimeout=false disables the rule.
//
// # In-flight bounds
//
// InvokeAsync holds one of MaxAsyncInFlight permits (default 65535) from the call until its
// callback has been dispatched; InvokeOneway holds one of MaxOnewayInFlight (default 65535)
// until its frame is written. Like Java, a caller waits for a free permit until its ctx's
// deadline (or DefaultTimeout), then gets ErrTooManyRequests; the request was then not
// sent. InvokeSync takes no permit: it is bounded by its callers' goroutines.
//
// # NameServers
//
// SetNameServers stores a shuffled copy of the list when the set changed. InvokeNameServer
// keeps using one chosen NameServer while it works, rotates to the next one on a connect
// failure (at most one try per listed address per call), and after a timeout or broken
// connection makes the next call move on.
//
// # Defaults
//
// ConnectTimeout 3s, IdleTimeout 120s, DefaultTimeout 3s, JSON request headers, language GO,
// version 409 (V4_9_8, so NameServers answer standard route JSON), 65535 async and 65535
// oneway permits, 16 MiB frames, close-on-silent-timeout on, plain TCP unless Config.TLS is
// set (certificates verified unless InsecureSkipVerify).
package remoting
