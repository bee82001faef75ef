package wasm

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"time"

	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/api"
	"github.com/tetratelabs/wazero/sys"

	"github.com/producerd/producerd/internal/strategywire"
	"github.com/producerd/producerd/plugins/sdk"
	"github.com/producerd/producerd/plugins/sdk/wasmguest/wasmabi"
)

// Limits of guest inputs and outputs.
const (
	// initialBuffer is the input buffer asked of a new instance.
	initialBuffer = 4096
	// maxOutput bounds an output the host reads from guest memory.
	maxOutput = 16 << 20
	// maxErrorText bounds the guest error text kept in an error.
	maxErrorText = 512
	// outputKept is how much of what a call writes to stdout and stderr is kept, and
	// outputLines how many of its lines an error quotes.
	outputKept  = 2048
	outputLines = 3
)

// instance is one instantiated module. Its calls are serialised by its slot's lock
// (or, while it starts, by its only user); deadline is the watchdog's handle.
type instance struct {
	slot int
	mod  api.Module
	mem  api.Memory
	// interrupt is the instrumented global: set to 1 by the watchdog, it makes the
	// running call trap at its next loop iteration. Only the watchdog writes it.
	interrupt api.MutableGlobal

	fnAlloc, fnDescribe, fnSelect, fnLastError          api.Function
	fnConfigure, fnObserve, fnHealth, fnSeed, fnInitial api.Function

	// state counts calls: odd while a call runs, even while idle, with interrupted set
	// once the watchdog interrupted the running call. The caller moves it v → v+1 at
	// the start and v+1 → v+2 at the end (by CAS); the watchdog moves a running v to
	// v|interrupted (by CAS); so exactly one of them owns the end of each call, and no
	// clock is read on the call path.
	state atomic.Uint64
	// timeout bounds the running call (CallTimeout, or StartTimeout while starting).
	timeout atomic.Int64
	// seen and seenAt are the watchdog's own: the running call it last saw, and when.
	seen   uint64
	seenAt int64
	calls  *atomic.Uint64 // the slot's counter

	// dead is the first error of a call that killed the instance; the owner then
	// discards it.
	dead error

	stack  [2]uint64
	buf    uint32 // the guest's input buffer (producerd_alloc)
	bufCap uint32
	enc    []byte                // scratch for encoding inputs
	routes map[string]routeState // what this instance holds, by topic
	out    *output
}

// routeState is what one instance holds for a topic: the route slot and the route
// version and length it was defined with.
type routeState struct {
	slot    uint32
	version uint64
	n       int
}

// interrupted marks an instance's state once the watchdog interrupted its call.
const interrupted = 1 << 63

// start instantiates the module, runs its initialisation and Configure under
// StartTimeout, and returns the running instance.
func (s *strategy) start(ctx context.Context, slot int) (*instance, error) {
	out := &output{}
	cfg := wazero.NewModuleConfig().
		WithName("").
		WithStartFunctions(). // _initialize is called below, under the watchdog
		WithStdout(out).
		WithStderr(out).
		WithRandSource(rand.Reader)
	// No WithFS, WithEnv, WithArgs, WithSysWalltime, WithSysNanotime or
	// WithSysNanosleep: the guest sees no files, no environment and wazero's fake
	// clocks; the time it may use comes in each call's input.
	mod, err := s.rt.InstantiateModule(ctx, s.compiled, cfg)
	if err != nil {
		return nil, fmt.Errorf("instantiate: %w", err)
	}
	in := &instance{
		slot:        slot,
		calls:       &s.slots[slot].calls,
		mod:         mod,
		mem:         mod.Memory(),
		fnAlloc:     mod.ExportedFunction(wasmabi.ExportAlloc),
		fnDescribe:  mod.ExportedFunction(wasmabi.ExportDescribe),
		fnSelect:    mod.ExportedFunction(wasmabi.ExportSelect),
		fnLastError: mod.ExportedFunction(wasmabi.ExportLastError),
		fnConfigure: mod.ExportedFunction(wasmabi.ExportConfigure),
		fnObserve:   mod.ExportedFunction(wasmabi.ExportObserve),
		fnHealth:    mod.ExportedFunction(wasmabi.ExportHealth),
		fnSeed:      mod.ExportedFunction(wasmabi.ExportSeed),
		fnInitial:   mod.ExportedFunction(wasmabi.ExportInitialize),
		routes:      make(map[string]routeState),
		out:         out,
	}
	g, _ := mod.ExportedGlobal(interruptExport).(api.MutableGlobal)
	if g == nil || in.mem == nil {
		_ = mod.Close(ctx)
		return nil, fmt.Errorf("%w: instrumented module lacks its memory or interrupt global", ErrABI)
	}
	in.interrupt = g
	s.watchInstance(in, true)
	if err := s.initInstance(in); err != nil {
		s.discard(in)
		return nil, err
	}
	return in, nil
}

func (s *strategy) initInstance(in *instance) error {
	if in.fnInitial != nil {
		if err := s.call(in, in.fnInitial, s.opts.StartTimeout); err != nil {
			return fmt.Errorf("_initialize: %w", err)
		}
	}
	if err := s.call(in, in.mod.ExportedFunction(wasmabi.ExportABIVersion), s.opts.StartTimeout); err != nil {
		return fmt.Errorf("%s: %w", wasmabi.ExportABIVersion, err)
	}
	if v := int32(uint32(in.stack[0])); v != wasmabi.Version {
		return fmt.Errorf("%w: the module speaks ABI version %d, the host %d (rebuild it against this producerd's plugins/sdk/wasmguest)", ErrABI, v, wasmabi.Version)
	}
	if err := s.grow(in, initialBuffer, s.opts.StartTimeout); err != nil {
		return err
	}
	// Settings go to Configure whenever there are any; a module that takes none
	// accepts only settings that say nothing ("", {}, null).
	empty := emptySettings(s.opts.Settings)
	if len(s.opts.Settings) == 0 || in.fnConfigure == nil && empty {
		return nil
	}
	if in.fnConfigure == nil {
		return fmt.Errorf("%w: the module takes no settings", sdk.ErrInvalidSettings)
	}
	code, err := s.callInput(in, in.fnConfigure, s.opts.Settings, s.opts.StartTimeout)
	switch {
	case err != nil:
		return fmt.Errorf("configure: %w", err)
	case code == wasmabi.CodeUnsupported && empty:
		return nil
	case code == wasmabi.CodeUnsupported:
		return fmt.Errorf("%w: the module takes no settings", sdk.ErrInvalidSettings)
	case code < 0:
		return wasmabi.SettingsError(s.guestText(in, code))
	}
	return nil
}

// discard closes an instance that is no longer used.
func (s *strategy) discard(in *instance) {
	s.watchInstance(in, false)
	_ = in.mod.Close(context.Background())
}

// call runs fn with in.stack as parameters and results, bounded by timeout. An error
// means the instance is dead (interrupted, trapped or exited) and must be discarded;
// it wraps ErrTimeout or ErrTrap.
func (s *strategy) call(in *instance, fn api.Function, timeout time.Duration) error {
	in.calls.Add(1)
	in.out.b = in.out.b[:0]
	if in.timeout.Load() != int64(timeout) {
		in.timeout.Store(int64(timeout))
	}
	v := in.state.Add(1) // odd: running
	err := fn.CallWithStack(s.ctx, in.stack[:])
	if !in.state.CompareAndSwap(v, v+1) {
		// The watchdog set the interrupt: even if the call returned just in time,
		// the flag is set and the instance must go.
		err = fmt.Errorf("%w (%w): no answer within %v", ErrTimeout, strategywire.ErrDecisionTimeout, timeout)
	} else if err != nil {
		var exit *sys.ExitError
		if errors.As(err, &exit) {
			err = fmt.Errorf("%w: the guest exited with code %d%s", ErrTrap, exit.ExitCode(), in.out.suffix())
		} else {
			err = fmt.Errorf("%w: %s%s", ErrTrap, firstLine(err.Error()), in.out.suffix())
		}
	}
	if err != nil {
		in.kill(err)
	}
	return err
}

// kill marks the instance dead with err (unless it already is) and returns err.
func (in *instance) kill(err error) error {
	if in.dead == nil {
		in.dead = err
	}
	return err
}

// grow makes the guest's input buffer hold at least n bytes.
func (s *strategy) grow(in *instance, n int, timeout time.Duration) error {
	if n <= int(in.bufCap) && in.buf != 0 {
		return nil
	}
	if n > maxOutput {
		return fmt.Errorf("%w: input of %d bytes is too large", ErrGuest, n)
	}
	size := max(n, initialBuffer)
	in.stack[0] = uint64(size)
	if err := s.call(in, in.fnAlloc, timeout); err != nil {
		return fmt.Errorf("%s: %w", wasmabi.ExportAlloc, err)
	}
	ptr := uint32(in.stack[0])
	if _, ok := in.mem.Read(ptr, uint32(size)); !ok || ptr == 0 {
		return in.kill(fmt.Errorf("%w: %s(%d) returned %#x, outside memory", ErrABI, wasmabi.ExportAlloc, size, ptr))
	}
	in.buf, in.bufCap = ptr, uint32(size)
	return nil
}

// callInput writes data into the guest's input buffer and calls fn(ptr, len),
// returning its i32 result. An error means the instance must be discarded.
func (s *strategy) callInput(in *instance, fn api.Function, data []byte, timeout time.Duration) (int32, error) {
	if err := s.grow(in, len(data), timeout); err != nil {
		return 0, err
	}
	if !in.mem.Write(in.buf, data) {
		return 0, in.kill(fmt.Errorf("%w: the input buffer at %#x is outside memory", ErrABI, in.buf))
	}
	in.stack[0], in.stack[1] = uint64(in.buf), uint64(len(data))
	if err := s.call(in, fn, timeout); err != nil {
		return 0, err
	}
	return int32(uint32(in.stack[0])), nil
}

// callOutput calls fn (with the input already in place when n > 0) and returns the
// output its packed i64 result points to, copied out of guest memory.
func (s *strategy) callOutput(in *instance, fn api.Function, n int, timeout time.Duration) ([]byte, error) {
	in.stack[0], in.stack[1] = uint64(in.buf), uint64(n)
	if err := s.call(in, fn, timeout); err != nil {
		return nil, err
	}
	return s.output(in, in.stack[0])
}

func (s *strategy) output(in *instance, packed uint64) ([]byte, error) {
	if int64(packed) < 0 {
		return nil, fmt.Errorf("%w: %s", ErrGuest, s.guestText(in, int32(int64(packed))))
	}
	ptr, n := wasmabi.Unpack(packed)
	if n > maxOutput {
		return nil, fmt.Errorf("%w: output of %d bytes", ErrABI, n)
	}
	b, ok := in.mem.Read(ptr, n)
	if !ok {
		return nil, fmt.Errorf("%w: output at %#x+%d is outside memory", ErrABI, ptr, n)
	}
	return append([]byte(nil), b...), nil
}

// guestText describes a negative result code with the guest's producerd_last_error
// text. The extra call happens only on this error path.
func (s *strategy) guestText(in *instance, code int32) string {
	text := ""
	in.stack[0] = 0
	if s.call(in, in.fnLastError, s.opts.CallTimeout) == nil {
		ptr, n := wasmabi.Unpack(in.stack[0])
		if b, ok := in.mem.Read(ptr, min(n, maxErrorText)); ok {
			text = string(b)
		}
	}
	if text == "" {
		return fmt.Sprintf("code %d (%s)", code, wasmabi.CodeName(code))
	}
	return fmt.Sprintf("code %d (%s): %s", code, wasmabi.CodeName(code), text)
}

// selectError wraps a negative select result in the sdk sentinel the host classifies.
func selectError(code int32, text string) error {
	switch code {
	case wasmabi.CodePanic:
		return fmt.Errorf("%w (%w): %s", ErrGuest, strategywire.ErrSelectPanic, text)
	default:
		return fmt.Errorf("%w (%w): %s", ErrGuest, strategywire.ErrSelectFailed, text)
	}
}

func firstLine(s string) string {
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		return s[:i]
	}
	return s
}

// output keeps the beginning of what an instance writes to stdout and stderr during
// one call, to explain a failure (a Go guest prints "fatal error: out of memory" or
// its panic there before it dies). Writes happen only inside calls, which the slot
// lock serialises, so it needs no lock of its own.
type output struct{ b []byte }

func (o *output) Write(p []byte) (int, error) {
	if room := outputKept - len(o.b); room > 0 {
		o.b = append(o.b, p[:min(len(p), room)]...)
	}
	return len(p), nil
}

// suffix returns "; guest output: " and the first lines the failed call wrote, or "".
func (o *output) suffix() string {
	lines := strings.Split(strings.TrimSpace(string(o.b)), "\n")
	var kept []string
	for _, l := range lines {
		if l = strings.TrimSpace(l); l != "" {
			kept = append(kept, l)
		}
		if len(kept) == outputLines {
			break
		}
	}
	if len(kept) == 0 {
		return ""
	}
	return "; guest output: " + strings.Join(kept, " | ")
}
