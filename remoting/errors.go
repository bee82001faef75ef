package remoting

import (
	"errors"
	"fmt"
)

// Sentinel errors. Transport errors wrap one of them together with the address and the cause,
// so classify with errors.Is; a server's non-success answer is an *Error (errors.As).
//
// Whether a failed request may have reached the server:
//   - ErrConnect, ErrSend, ErrTooManyRequests, ErrFrameTooLarge, ErrBadFrame (on encoding):
//     it was not (completely) written, so the server cannot have processed it; a retry is safe.
//   - ErrTimeout, ErrConnClosed, ErrClosed (for a request already pending): it may have been
//     written and processed.
var (
	// ErrClosed is returned by every method of a closed Client, and fails the requests
	// pending when Close was called.
	ErrClosed = errors.New("remoting: client closed")
	// ErrTimeout means no response came before the request's deadline. Such errors also
	// wrap context.DeadlineExceeded.
	ErrTimeout = errors.New("remoting: request timed out")
	// ErrConnect means the connection could not be opened: dial error, TLS handshake
	// failure, ConnectTimeout, or the caller's ctx ending while it waited for the dial.
	ErrConnect = errors.New("remoting: connect failed")
	// ErrConnClosed means the connection broke (EOF, reset, protocol error, CloseConn, close
	// on timeout) after the request was written and before its response arrived.
	ErrConnClosed = errors.New("remoting: connection closed")
	// ErrSend means the request was not completely written: write error, the connection
	// closed while the frame was queued, or the write queue stayed full until the deadline.
	ErrSend = errors.New("remoting: send failed")
	// ErrTooManyRequests means no async or oneway permit became free before the deadline
	// (see Config.MaxAsyncInFlight).
	ErrTooManyRequests = errors.New("remoting: too many requests in flight")
	// ErrFrameTooLarge means a frame is longer than the maximum (Config.MaxFrameSize, or a
	// header beyond the 24-bit length field).
	ErrFrameTooLarge = errors.New("remoting: frame too large")
	// ErrBadFrame means a frame or header is malformed, or a command cannot be encoded.
	ErrBadFrame = errors.New("remoting: malformed frame")
	// ErrUnknownSerializeType means a frame's header word names a serialization other than
	// JSON (0) or ROCKETMQ (1); the error text names the byte, e.g. "0x05".
	ErrUnknownSerializeType = errors.New("remoting: unknown serialize type")
	// ErrNoNameServer means InvokeNameServer was called with an empty NameServer list.
	ErrNoNameServer = errors.New("remoting: no name server address")
)

// Error is a server's non-success answer, built by ResponseError.
type Error struct {
	// Addr is the server that answered.
	Addr string
	// Code is the response code (never Success).
	Code ResponseCode
	// Remark is the server's error text, possibly empty.
	Remark string
}

// Error returns e.g. "remoting: 127.0.0.1:10911 answered SYSTEM_BUSY (2): [REJECTREQUEST]...".
func (e *Error) Error() string {
	if e.Remark == "" {
		return fmt.Sprintf("remoting: %s answered %s (%d)", e.Addr, e.Code, int32(e.Code))
	}
	return fmt.Sprintf("remoting: %s answered %s (%d): %s", e.Addr, e.Code, int32(e.Code), e.Remark)
}

// ResponseError returns nil when resp.Code is Success, else an *Error carrying the code, the
// remark and addr. A nil resp yields an error wrapping ErrBadFrame.
func ResponseError(addr string, resp *Command) error {
	if resp == nil {
		return fmt.Errorf("%w: nil response from %s", ErrBadFrame, addr)
	}
	if ResponseCode(resp.Code) == Success {
		return nil
	}
	return &Error{Addr: addr, Code: ResponseCode(resp.Code), Remark: resp.Remark}
}
