//go:build !wasip1

package pluginclient

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/producerd/producerd/internal/strategywire"
	"github.com/producerd/producerd/internal/strategywire/strategypb"
	"github.com/producerd/producerd/plugins/sdk"
)

// Remote is the host side of a connection to one strategy plugin process. Get one by
// dispensing strategywire.PluginName from a go-plugin client configured with
// strategywire.Handshake and PluginSet(), or with NewRemote. A Remote is safe for
// concurrent use.
//
// The host calls Describe (with the settings), then Configure only when the plugin
// negotiated protocol version 1, then Open, once per plugin process.
type Remote struct {
	rpc strategypb.StrategyClient
}

// Info is what a plugin declared in Describe.
type Info struct {
	// ProtocolVersion is the negotiated strategy protocol version.
	ProtocolVersion int
	Descriptor      sdk.Descriptor
	Features        strategywire.Features
	// PID is the plugin's process id as the plugin reports it.
	PID int
}

// Describe negotiates the protocol version, has the plugin build its strategy from
// settings (JSON) and returns the plugin's declarations. An incompatible plugin yields
// an error wrapping strategywire.ErrUnsupportedVersion, rejected settings one wrapping
// sdk.ErrInvalidSettings. A version-1 plugin ignores settings: call Configure.
func (r *Remote) Describe(ctx context.Context, settings []byte) (Info, error) {
	resp, err := r.rpc.Describe(ctx, &strategypb.DescribeRequest{MinVersion: strategywire.MinProtocolVersion, MaxVersion: strategywire.ProtocolVersion, Settings: settings})
	if err != nil {
		return Info{}, fmt.Errorf("pluginclient: describe: %w", err)
	}
	if err := settingsErrOf(resp.GetCode(), resp.GetMessage(), resp.GetSettingProblems()); err != nil {
		return Info{}, err
	}
	v := int(resp.GetVersion())
	if v < strategywire.MinProtocolVersion || v > strategywire.ProtocolVersion {
		return Info{}, fmt.Errorf("%w: plugin chose version %d", strategywire.ErrUnsupportedVersion, v)
	}
	return Info{
		ProtocolVersion: v,
		Descriptor:      descriptorFromPB(resp.GetDeclared()),
		Features:        featuresFromPB(resp.GetFeatures()),
		PID:             int(resp.GetPid()),
	}, nil
}

// Configure passes settings (JSON) to a version-1 plugin. A rejection yields an error
// wrapping sdk.ErrInvalidSettings with the plugin's message.
func (r *Remote) Configure(ctx context.Context, settings []byte) error {
	resp, err := r.rpc.Configure(ctx, &strategypb.ConfigureRequest{Settings: settings})
	if err != nil {
		return fmt.Errorf("pluginclient: configure: %w", err)
	}
	return settingsErrOf(resp.GetCode(), resp.GetMessage(), resp.GetSettingProblems())
}

// settingsErrOf is strategywire.ErrOf, except that the setting problems a plugin lists
// with a settings rejection come back as *sdk.SettingError values (joined, wrapped in
// sdk.ErrInvalidSettings), so that the daemon can place each at its key's line.
func settingsErrOf(code strategypb.Code, msg string, problems []*strategypb.SettingProblem) error {
	if code != strategypb.Code_CODE_INVALID_SETTINGS || len(problems) == 0 {
		return strategywire.ErrOf(code, msg)
	}
	errs := make([]error, len(problems))
	for i, p := range problems {
		errs[i] = &sdk.SettingError{Key: p.GetKey(), Err: errors.New(p.GetMessage())}
	}
	return fmt.Errorf("%w: %w", sdk.ErrInvalidSettings, errors.Join(errs...))
}

// Defaults of SessionOptions.
const (
	// DefaultDecisionTimeout bounds how long Session.Select waits for the plugin.
	DefaultDecisionTimeout = 10 * time.Millisecond
	// DefaultUrgentTimeout bounds how long Session.Observe waits for the plugin to
	// apply an urgent outcome and publish its health table.
	DefaultUrgentTimeout = 10 * time.Millisecond
	// DefaultSyncTimeout bounds Session.Seed.
	DefaultSyncTimeout = time.Second
	// DefaultFlushInterval is the longest an ordinary outcome waits before it is sent.
	DefaultFlushInterval = 20 * time.Millisecond
	// DefaultFlushOutcomes is the batch size that sends outcomes at once.
	DefaultFlushOutcomes = 256
	// DefaultMaxPending bounds the decisions waiting for the plugin.
	DefaultMaxPending = 8192
	// DefaultMaxPendingOutcomes bounds the outcomes waiting to be sent; past it new
	// outcomes are dropped and counted.
	DefaultMaxPendingOutcomes = 1 << 16
)

// SessionOptions tune a Session. Zero fields take the defaults above.
type SessionOptions struct {
	// DecisionTimeout bounds each Select. Default DefaultDecisionTimeout.
	DecisionTimeout time.Duration
	// UrgentTimeout bounds Observe's wait after an urgent outcome (a failed one, or an
	// OK one slower than the sdk.Descriptor's UrgentLatency). Default DefaultUrgentTimeout.
	UrgentTimeout time.Duration
	// SyncTimeout bounds Seed. Default DefaultSyncTimeout.
	SyncTimeout time.Duration
	// FlushInterval is the longest an ordinary outcome is held back to be batched.
	// Default DefaultFlushInterval.
	FlushInterval time.Duration
	// FlushOutcomes sends the outcome batch as soon as it holds this many. Default
	// DefaultFlushOutcomes.
	FlushOutcomes int
	// MaxPending bounds decisions in flight; past it Select fails fast with
	// ErrOverloaded. Default DefaultMaxPending.
	MaxPending int
	// MaxPendingOutcomes bounds outcomes waiting to be sent. Default
	// DefaultMaxPendingOutcomes.
	MaxPendingOutcomes int
	// OnHealth, when set, is called with every health table the plugin publishes, on
	// the session's receive goroutine, before any result or ack that follows it in the
	// stream is delivered. It must not block. The session does not reuse rows, so the
	// callee may keep it.
	OnHealth func(rows []sdk.BrokerHealth)
}

func (o SessionOptions) withDefaults() SessionOptions {
	if o.DecisionTimeout <= 0 {
		o.DecisionTimeout = DefaultDecisionTimeout
	}
	if o.UrgentTimeout <= 0 {
		o.UrgentTimeout = DefaultUrgentTimeout
	}
	if o.SyncTimeout <= 0 {
		o.SyncTimeout = DefaultSyncTimeout
	}
	if o.FlushInterval <= 0 {
		o.FlushInterval = DefaultFlushInterval
	}
	if o.FlushOutcomes <= 0 {
		o.FlushOutcomes = DefaultFlushOutcomes
	}
	if o.MaxPending <= 0 {
		o.MaxPending = DefaultMaxPending
	}
	if o.MaxPendingOutcomes <= 0 {
		o.MaxPendingOutcomes = DefaultMaxPendingOutcomes
	}
	return o
}

// Open starts the session stream. info is what Describe returned; it decides whether
// outcomes are sent at all (Info.Features.Observer) and which are urgent
// (sdk.Descriptor.UrgentLatency). The session lives until Close or until the stream breaks
// (see Session.Done); ctx only bounds the opening.
func (r *Remote) Open(ctx context.Context, info Info, opts SessionOptions) (*Session, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	sctx, cancel := context.WithCancel(context.Background())
	stream, err := r.rpc.Session(sctx)
	if err != nil {
		cancel()
		return nil, fmt.Errorf("pluginclient: open session: %w", err)
	}
	return newSession(stream, cancel, info, opts.withDefaults()), nil
}
