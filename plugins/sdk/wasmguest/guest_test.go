package wasmguest

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"
	"unsafe"

	"github.com/producerd/producerd/plugins/examples/keyhash"
	"github.com/producerd/producerd/plugins/sdk"
	"github.com/producerd/producerd/plugins/sdk/sdktest"
	"github.com/producerd/producerd/plugins/sdk/wasmguest/wasmabi"
)

// fake is a strategy implementing every interface; it records what it saw.
type fake struct {
	sel      sdk.Selection
	key      string
	outcomes []sdk.Outcome
	seeded   []sdk.BrokerHealth
	settings string
	panicOn  string
	errOn    string
	clock    func() time.Time
}

func (f *fake) Select(_ context.Context, s *sdk.Selection) (int, error) {
	switch s.Topic {
	case f.panicOn:
		panic("boom")
	case f.errOn:
		return -1, errors.New("no luck")
	}
	f.sel = *s
	if s.Message != nil {
		f.key = strings.Clone(s.Message.ShardingKey)
	}
	return len(s.Queues) - 1, nil
}
func (f *fake) Observe(_ context.Context, o []sdk.Outcome) { f.outcomes = append(f.outcomes, o...) }
func (f *fake) Health() []sdk.BrokerHealth {
	return []sdk.BrokerHealth{{Broker: "broker-a", Until: f.clock().Add(time.Minute)}}
}
func (f *fake) Seed(rows []sdk.BrokerHealth) { f.seeded = rows }
func (f *fake) Describe() sdk.Descriptor {
	return sdk.Descriptor{Name: "fake", NeedsMessage: true, UrgentLatency: time.Second}
}

// constructor builds sel; settings "bad" are rejected, others recorded on a *fake.
func constructor(sel sdk.Selector) sdk.Constructor {
	return func(b []byte) (sdk.Selector, error) {
		if string(b) == "bad" {
			return nil, errors.New("bad settings")
		}
		if f, ok := sel.(*fake); ok {
			f.settings = string(b)
		}
		return sel, nil
	}
}

func newGuest(t *testing.T, sel sdk.Selector, opts ...Option) *guest {
	t.Helper()
	g := &guest{}
	g.register(constructor(sel))
	for _, o := range opts {
		o(g)
	}
	return g
}

// call copies in into the guest's input buffer, as the host does, and checks that
// the input() guard accepts it.
func call(t *testing.T, g *guest, in []byte) []byte {
	t.Helper()
	buf := g.alloc(uint32(len(in)))
	copy(buf, in)
	b, ok := g.input(bufAddr(g.in), uint32(len(in)))
	if !ok {
		t.Fatal("input() refused the alloc buffer")
	}
	return b
}

func TestDescribe(t *testing.T) {
	g := newGuest(t, &fake{}, UsesClock())
	d, err := wasmabi.DecodeDescribe(g.describe())
	if err != nil {
		t.Fatal(err)
	}
	want := wasmabi.FlagNeedsMessage | wasmabi.FlagObserver | wasmabi.FlagHealthReporter |
		wasmabi.FlagHealthSeeder | wasmabi.FlagConfigurable | wasmabi.FlagClock
	if d.Flags != want || d.Descriptor != (&fake{}).Describe() {
		t.Fatalf("describe = %+v (flags %b, want %b)", d, d.Flags, want)
	}
	if (&guest{}).describe() != nil {
		t.Fatal("describe without Register must be empty")
	}
}

func TestSelect(t *testing.T) {
	f := &fake{panicOn: "panics", errOn: "fails"}
	g := newGuest(t, f)
	rt := sdktest.NewRoute("orders", sdktest.Queues(3, 2))
	sel := rt.Retry("broker-b", 1)
	sel.Message = &sdk.MessageInfo{ShardingKey: "key-1", Keys: []string{"key-1"}}

	// Unknown slot without the queue list: the host must resend it.
	if code := g.selectQueue(call(t, g, wasmabi.AppendSelect(nil, sel, 5e18, 3, false))); code != wasmabi.CodeRouteUnknown {
		t.Fatalf("unknown route: code %d", code)
	}
	if code := g.selectQueue(call(t, g, wasmabi.AppendSelect(nil, sel, 5e18, 3, true))); code != 5 {
		t.Fatalf("select with queues = %d, %s", code, g.lastErr)
	}
	if f.sel.Topic != "orders" || len(f.sel.Queues) != 6 || f.sel.LastBroker != "broker-b" || f.key != "key-1" || f.sel.Attempt != 1 {
		t.Fatalf("strategy saw %+v key %q", f.sel, f.key)
	}
	if g.now != 5e18 {
		t.Fatalf("now = %d", g.now)
	}
	// Known slot: no queue list needed; a new route version needs it again.
	if code := g.selectQueue(call(t, g, wasmabi.AppendSelect(nil, sel, 0, 3, false))); code != 5 {
		t.Fatalf("select by slot = %d, %s", code, g.lastErr)
	}
	if g.now != 5e18 {
		t.Fatalf("a select without the time moved the clock to %d", g.now)
	}
	rt.Update(sdktest.Queues(1, 1))
	if code := g.selectQueue(call(t, g, wasmabi.AppendSelect(nil, rt.First(), 0, 3, false))); code != wasmabi.CodeRouteUnknown {
		t.Fatalf("stale version: code %d", code)
	}

	for _, tc := range []struct {
		topic string
		code  int32
		text  string
	}{{"panics", wasmabi.CodePanic, "Select panicked: boom"}, {"fails", wasmabi.CodeFailed, "no luck"}} {
		in := wasmabi.AppendSelect(nil, sdktest.NewRoute(tc.topic, sdktest.Queues(1, 1)).First(), 0, 4, true)
		if code := g.selectQueue(call(t, g, in)); code != tc.code || !strings.Contains(string(g.lastErr), tc.text) {
			t.Fatalf("%s: code %d, error %q", tc.topic, code, g.lastErr)
		}
	}
	if code := g.selectQueue(call(t, g, []byte{1, 2, 3})); code != wasmabi.CodeBadInput {
		t.Fatalf("garbage: code %d", code)
	}
	if _, ok := g.input(bufAddr(g.in)+1, 1); ok {
		t.Fatal("input() accepted a pointer outside the alloc buffer")
	}
}

func TestObserveHealthSeedConfigure(t *testing.T) {
	f := &fake{}
	g := newGuest(t, f)
	f.clock = func() time.Time { return time.Unix(0, g.now) } // what Now does for std
	outcomes := []sdk.Outcome{sdktest.Failure("broker-a", sdk.OutcomeTimeout, time.Second), sdktest.OK("broker-a", time.Millisecond)}
	if code := g.observe(call(t, g, wasmabi.AppendObserve(nil, 1e18, outcomes))); code != 0 {
		t.Fatalf("observe: %d %s", code, g.lastErr)
	}
	if len(f.outcomes) != 2 || f.outcomes[0] != outcomes[0] || g.now != 1e18 {
		t.Fatalf("observed %+v now %d", f.outcomes, g.now)
	}
	if unsafeSame(f.outcomes[0].Broker, f.outcomes[1].Broker) == false {
		t.Error("broker names are not interned")
	}

	out, code := g.health(call(t, g, wasmabi.AppendNow(nil, 2e18)))
	rows, err := wasmabi.DecodeHealth(out)
	if code != 0 || err != nil || len(rows) != 1 || rows[0].Until.UnixNano() != 2e18+int64(time.Minute) {
		t.Fatalf("health: %d %v %+v", code, err, rows)
	}
	if code := g.seed(call(t, g, wasmabi.AppendSeed(nil, 3, rows))); code != 0 || len(f.seeded) != 1 {
		t.Fatalf("seed: %d %+v", code, f.seeded)
	}
	if code := g.configure(call(t, g, []byte(`{"a":1}`))); code != 0 || f.settings != `{"a":1}` {
		t.Fatalf("configure: %d %q", code, f.settings)
	}
	if code := g.configure(call(t, g, []byte("bad"))); code != wasmabi.CodeInvalidSettings || string(g.lastErr) != "bad settings" {
		t.Fatalf("bad configure: %d %q", code, g.lastErr)
	}
}

func TestUnsupported(t *testing.T) {
	g := newGuest(t, selectOnly{})
	in := call(t, g, wasmabi.AppendNow(nil, 1))
	if _, code := g.health(in); code != wasmabi.CodeUnsupported {
		t.Fatalf("health: %d", code)
	}
	for name, fn := range map[string]func([]byte) int32{"observe": g.observe, "seed": g.seed} {
		if code := fn(in); code != wasmabi.CodeUnsupported {
			t.Fatalf("%s: %d", name, code)
		}
	}
}

type selectOnly struct{}

func (selectOnly) Select(context.Context, *sdk.Selection) (int, error) { return 0, nil }

// unsafeSame reports whether two strings share their bytes.
func unsafeSame(a, b string) bool {
	return len(a) == len(b) && (len(a) == 0 || stringData(a) == stringData(b))
}

func stringData(s string) *byte { return unsafe.StringData(s) }

// TestNameInterning: an outcome's topic and broker become strings that do not point
// into the input buffer, the same string for the same name, whether it is among the
// recent names or has to come from the map (more distinct names than recentNames).
func TestNameInterning(t *testing.T) {
	g := &guest{}
	g.register(func([]byte) (sdk.Selector, error) { return &fake{}, nil })
	first := map[string]string{}
	buf := make([]byte, 0, 64)
	for round := range 3 {
		for k := range 2 * recentNames {
			name := "broker-" + strings.Repeat("x", k)
			buf = append(buf[:0], name...)
			s := g.name(buf)
			if s != name {
				t.Fatalf("name(%q) = %q", name, s)
			}
			if unsafe.StringData(s) == unsafe.SliceData(buf) {
				t.Fatalf("name(%q) points into its input", name)
			}
			if round == 0 {
				first[name] = s
			} else if unsafe.StringData(s) != unsafe.StringData(first[name]) {
				t.Fatalf("round %d: name(%q) is not the interned string", round, name)
			}
			buf[0] = 'X' // the caller reuses its buffer: the interned string must not change
			if s != name {
				t.Fatalf("name(%q) changed with its input to %q", name, s)
			}
		}
	}
}

// TestObservePolicyChanged: with ObservePolicy, observe answers ObservePolicyChanged
// exactly when the health table differs from the one it last reported (the host reads
// the table only then), and again after a seed, whose table the host reads itself.
func TestObservePolicyChanged(t *testing.T) {
	f := &fake{}
	g := newGuest(t, f)
	f.clock = func() time.Time { return time.Unix(0, g.now) } // the fake's Until moves with now
	var enc wasmabi.ObserveEncoder
	outcomes := []sdk.Outcome{sdktest.OK("broker-a", time.Millisecond)}
	observe := func(now int64, flags uint32) int32 {
		t.Helper()
		code := g.observe(call(t, g, enc.Append(nil, now, flags, outcomes)))
		if code < 0 {
			t.Fatalf("observe: %d %s", code, g.lastErr)
		}
		return code
	}
	steps := []struct {
		name  string
		now   int64
		flags uint32
		seed  bool
		want  int32
	}{
		{"first table", 1e18, wasmabi.ObservePolicy, false, wasmabi.ObservePolicyChanged},
		{"same table", 1e18, wasmabi.ObservePolicy, false, 0},
		{"until moved", 2e18, wasmabi.ObservePolicy, false, wasmabi.ObservePolicyChanged},
		{"not asked", 3e18, 0, false, 0},
		{"asked again", 3e18, wasmabi.ObservePolicy, false, wasmabi.ObservePolicyChanged},
		{"after a seed", 3e18, wasmabi.ObservePolicy, true, wasmabi.ObservePolicyChanged},
	}
	for _, st := range steps {
		if st.seed {
			if code := g.seed(call(t, g, wasmabi.AppendSeed(nil, st.now, nil))); code != 0 {
				t.Fatalf("seed: %d %s", code, g.lastErr)
			}
		}
		if got := observe(st.now, st.flags); got != st.want {
			t.Errorf("%s: observe = %d, want %d", st.name, got, st.want)
		}
	}
	if len(f.outcomes) != len(steps) {
		t.Errorf("the strategy observed %d outcomes, want %d", len(f.outcomes), len(steps))
	}
}

// TestNoAllocationPerCall: in steady state a decision with a keyed message (keyhash)
// and an observe batch with a policy check that finds no change allocate nothing in the
// guest, whose garbage collector runs inside the call that triggers it.
func TestNoAllocationPerCall(t *testing.T) {
	g := newGuest(t, keyhash.New())
	sel := sdktest.NewRoute("orders", sdktest.Queues(4, 8)).First()
	sel.Message = &sdk.MessageInfo{ShardingKey: "order-42", Tags: "t", Keys: []string{"order-42", "k2"}, Size: 1024}
	if code := g.selectQueue(call(t, g, wasmabi.AppendSelect(nil, sel, 0, 0, true))); code < 0 {
		t.Fatalf("select: %d %s", code, g.lastErr)
	}
	in := call(t, g, wasmabi.AppendSelect(nil, sel, 0, 0, false))
	if n := testing.AllocsPerRun(100, func() {
		if code := g.selectQueue(in); code < 0 {
			t.Fatalf("select: %d %s", code, g.lastErr)
		}
	}); n != 0 {
		t.Errorf("select: %v allocations per decision", n)
	}

	f := &fake{clock: func() time.Time { return time.Unix(1, 0) }}
	g = newGuest(t, f)
	var enc wasmabi.ObserveEncoder
	outcomes := []sdk.Outcome{sdktest.OK("broker-a", time.Millisecond), sdktest.OK("broker-b", 2*time.Millisecond)}
	obs := enc.Append(nil, 1, 0, outcomes)
	if code := g.observe(call(t, g, obs)); code != 0 {
		t.Fatalf("observe: %d %s", code, g.lastErr)
	}
	in = call(t, g, obs)
	f.outcomes = make([]sdk.Outcome, 0, 1024)
	if n := testing.AllocsPerRun(100, func() {
		f.outcomes = f.outcomes[:0]
		if code := g.observe(in); code != 0 {
			t.Fatalf("observe: %d %s", code, g.lastErr)
		}
	}); n != 0 {
		t.Errorf("observe: %v allocations per batch", n)
	}
}
