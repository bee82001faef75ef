package remoting

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"math"
	"net"
	"time"

	"github.com/hashicorp/go-hclog"
)

// Defaults applied by NewClient to zero Config fields.
const (
	// DefaultConnectTimeout is Config.ConnectTimeout's default (Java's 3000 ms).
	DefaultConnectTimeout = 3 * time.Second
	// DefaultIdleTimeout is Config.IdleTimeout's default (Java's 120 s all-idle).
	DefaultIdleTimeout = 120 * time.Second
	// DefaultRequestTimeout is Config.DefaultTimeout's default.
	DefaultRequestTimeout = 3 * time.Second
	// DefaultVersion is Config.Version's default: V4_9_8, >= 401 so that NameServers
	// answer standard route JSON.
	DefaultVersion = 409
	// DefaultMaxAsyncInFlight is Config.MaxAsyncInFlight's default (Java's semaphore).
	DefaultMaxAsyncInFlight = 65535
	// DefaultMaxOnewayInFlight is Config.MaxOnewayInFlight's default (Java's semaphore).
	DefaultMaxOnewayInFlight = 65535
)

// minFrameSize is the smallest accepted Config.MaxFrameSize.
const minFrameSize = 1 << 10

// Config configures a Client. The zero value is valid: every zero field takes its default.
type Config struct {
	// Dialer opens TCP connections; default (&net.Dialer{}).DialContext. It must honour ctx,
	// which carries ConnectTimeout and is cancelled by Close.
	Dialer func(ctx context.Context, network, addr string) (net.Conn, error)
	// ConnectTimeout bounds dialling plus the TLS handshake; default 3s.
	ConnectTimeout time.Duration
	// IdleTimeout closes a connection that carried no traffic either way and has no pending
	// request for this long; the next request re-dials. Default 120s.
	IdleTimeout time.Duration
	// DefaultTimeout is the request deadline when neither ctx nor the caller (the
	// Invoke...Until methods) gives one; default 3s.
	DefaultTimeout time.Duration
	// TLS, when set, wraps every connection in TLS with this configuration. Certificates are
	// verified unless the caller sets InsecureSkipVerify; an empty ServerName is taken from
	// the address's host. Nil means plain TCP.
	TLS *tls.Config
	// Serialize is the request header encoding; default JSON. Responses are decoded in
	// whichever encoding they arrive.
	Serialize SerializeType
	// Language is advertised in every request; default LanguageGo. The zero value is
	// LanguageJava and means "unset", so Java cannot be advertised (servers ignore it).
	Language LanguageCode
	// Version is the MQVersion ordinal sent with requests whose Command.Version is 0;
	// default 409 (V4_9_8). Must fit an int16 (the ROCKETMQ header field).
	Version int32
	// MaxAsyncInFlight bounds InvokeAsync requests awaiting completion; default 65535.
	// InvokeAsync waits for a permit until the request's deadline, then fails
	// with ErrTooManyRequests.
	MaxAsyncInFlight int
	// MaxOnewayInFlight bounds InvokeOneway requests not yet written; default 65535, same
	// waiting rule as MaxAsyncInFlight.
	MaxOnewayInFlight int
	// MaxFrameSize is the largest frame read or written, counting the 4-byte length prefix;
	// default MaxFrameSize (16 MiB). At least 1 KiB.
	MaxFrameSize int
	// CloseOnTimeout selects what a request timeout does to its connection. Nil or true
	// (default): close it only when nothing at all was read from it during the whole wait of
	// at least 100ms (the peer looks hung), which fails the connection's other requests at
	// once and makes the next request re-dial. False: never close on timeout.
	CloseOnTimeout *bool
	// Credentials, when set, sign every request (NameServer ones included) for RocketMQ's
	// ACL (acl.go). Nil: requests are not signed.
	Credentials *Credentials
	// Hooks observe requests and connections; nil hooks are skipped.
	Hooks Hooks
	// OnServerRequest, when set, receives every oneway request a server sends on a
	// connection (a broker's CHECK_TRANSACTION_STATE, code 39) with the connection's
	// address; nil: such requests are logged and dropped. It runs on the connection's
	// reader goroutine, so it must not block.
	OnServerRequest func(addr string, req *Command)
	// Logger receives connection-level logs (debug: open/close; warn: protocol violations).
	// Nil means no logs.
	Logger hclog.Logger
}

// Hooks observe the client without a metrics library. They are called synchronously, on the
// caller's goroutine (InvokeSync, and requests that fail before being queued) or on internal
// goroutines; they must be fast, must not block and must not call Close.
type Hooks struct {
	// OnRequest is called once after every request ends: response, timeout, failure, or, for
	// oneway requests, once the frame was written (or failed to be).
	OnRequest func(RequestEvent)
	// OnConn is called when a connection opens and when it closes.
	OnConn func(ConnEvent)
}

// RequestEvent describes one finished request.
type RequestEvent struct {
	// Addr is the server address.
	Addr string
	// Code is the request code.
	Code RequestCode
	// Oneway is true for InvokeOneway.
	Oneway bool
	// RequestBytes is the request frame size on the wire (0 when it was never encoded).
	RequestBytes int
	// ResponseBytes is the response frame size on the wire (0 without a response).
	ResponseBytes int
	// Latency is the time from the Invoke call to the end (oneway: to the write).
	Latency time.Duration
	// ResponseCode is the response's code when a response arrived.
	ResponseCode ResponseCode
	// Err is the transport error, nil when a response arrived (or a oneway was written).
	Err error
}

// ConnEvent describes a connection opening or closing.
type ConnEvent struct {
	// Addr is the server address.
	Addr string
	// Open is true when the connection opened, false when it closed.
	Open bool
	// Err is the close reason (EOF, reset, protocol error, idle, timeout); nil when closed by
	// Close or CloseConn, and on open.
	Err error
}

// ConnInfo is a snapshot of one open connection, from Client.Conns.
type ConnInfo struct {
	// Addr is the server address.
	Addr string
	// OpenedAt is when the connection was established.
	OpenedAt time.Time
	// Pending counts requests awaiting a response.
	Pending int
	// Queued is the number of bytes waiting to be written.
	Queued int
	// BytesIn and BytesOut count bytes read and written.
	BytesIn, BytesOut int64
	// TLS reports whether the connection uses TLS.
	TLS bool
}

// settings is a validated Config with defaults applied.
type settings struct {
	Config
	closeOnTimeout bool
}

func (cfg Config) validate() (settings, error) {
	var errs []error
	check := func(ok bool, format string, args ...any) {
		if !ok {
			errs = append(errs, fmt.Errorf(format, args...))
		}
	}
	check(cfg.ConnectTimeout >= 0, "ConnectTimeout must not be negative, got %v", cfg.ConnectTimeout)
	check(cfg.IdleTimeout >= 0, "IdleTimeout must not be negative, got %v", cfg.IdleTimeout)
	check(cfg.DefaultTimeout >= 0, "DefaultTimeout must not be negative, got %v", cfg.DefaultTimeout)
	check(cfg.Serialize == JSON || cfg.Serialize == RocketMQ, "Serialize must be JSON (0) or RocketMQ (1), got %d", cfg.Serialize)
	check(cfg.Language.known(), "Language must be a known LanguageCode (0..%d), got %d", len(languageNames)-1, cfg.Language)
	check(cfg.Version >= 0 && cfg.Version <= math.MaxInt16, "Version must be in 0..%d, got %d", math.MaxInt16, cfg.Version)
	check(cfg.MaxAsyncInFlight >= 0, "MaxAsyncInFlight must not be negative, got %d", cfg.MaxAsyncInFlight)
	check(cfg.MaxOnewayInFlight >= 0, "MaxOnewayInFlight must not be negative, got %d", cfg.MaxOnewayInFlight)
	check(cfg.MaxFrameSize == 0 || (cfg.MaxFrameSize >= minFrameSize && cfg.MaxFrameSize <= math.MaxInt32),
		"MaxFrameSize must be in %d..%d, got %d", minFrameSize, math.MaxInt32, cfg.MaxFrameSize)
	if err := errors.Join(errs...); err != nil {
		return settings{}, fmt.Errorf("remoting: invalid config: %w", err)
	}
	s := settings{Config: cfg, closeOnTimeout: cfg.CloseOnTimeout == nil || *cfg.CloseOnTimeout}
	if s.Dialer == nil {
		s.Dialer = (&net.Dialer{}).DialContext
	}
	if s.ConnectTimeout == 0 {
		s.ConnectTimeout = DefaultConnectTimeout
	}
	if s.IdleTimeout == 0 {
		s.IdleTimeout = DefaultIdleTimeout
	}
	if s.DefaultTimeout == 0 {
		s.DefaultTimeout = DefaultRequestTimeout
	}
	if s.Language == LanguageJava {
		s.Language = LanguageGo
	}
	if s.Version == 0 {
		s.Version = DefaultVersion
	}
	if s.MaxAsyncInFlight == 0 {
		s.MaxAsyncInFlight = DefaultMaxAsyncInFlight
	}
	if s.MaxOnewayInFlight == 0 {
		s.MaxOnewayInFlight = DefaultMaxOnewayInFlight
	}
	if s.MaxFrameSize == 0 {
		s.MaxFrameSize = MaxFrameSize
	}
	if s.Logger == nil {
		s.Logger = hclog.NewNullLogger()
	}
	return s, nil
}
