package simulate

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/producerd/producerd/core"
	"github.com/producerd/producerd/devbroker"
	"github.com/producerd/producerd/internal/builtin"
	"github.com/producerd/producerd/internal/config"
	"github.com/producerd/producerd/internal/tomlx"
	"github.com/producerd/producerd/remoting"
)

// Defaults and bounds of a scenario.
const (
	DefaultTopic       = "SimTopic"
	DefaultQueues      = 4
	DefaultConcurrency = 64
	DefaultMessageSize = 1 << 10
	DefaultSeed        = 1
	// MaxDuration bounds a scenario's load; every run is real time (see the package doc).
	MaxDuration = 10 * time.Minute
	// MaxRate bounds the offered load, in messages per second.
	MaxRate = 20000
	// MaxMessages bounds rate × duration.
	MaxMessages = 2_000_000
	// MaxMessageSize is the largest message body a scenario may ask for.
	MaxMessageSize = 4 << 20
)

// Scenario is a decoded, validated scenario file. Every duration in it is scenario
// time, measured from the start of the load; the simulator runs in real time, so
// scenario time is wall time.
type Scenario struct {
	// File is the path the scenario was read from.
	File string
	// Name defaults to the file name without its extension (name).
	Name string
	// Description is free text (description).
	Description string
	// Seed makes the dev broker's random choices (latency jitter, injected errors) and
	// the message sizes reproducible (seed); default 1. Every strategy runs with it.
	Seed uint64
	// Brokers are the dev broker masters ([cluster] brokers), in order; Queues is the
	// number of queues of Topic on each (queues, default 4; topic, default "SimTopic").
	Brokers []string
	Queues  int
	Topic   string
	// Load is the offered load ([load]).
	Load Load
	// Producer configures core.Producer ([producer]).
	Producer Producer
	// Faults are the fault windows ([[fault]]), sorted by From.
	Faults []Fault
	// Strategies are compared in order ([[strategy]]); at least one.
	Strategies []Strategy
}

// Load is the [load] table: an open-loop load of Rate synchronous sends per second for
// Duration, at most Concurrency in flight (a send that finds no free slot waits for one
// and is counted as a late start), bodies cycling through Sizes in a seeded random order.
type Load struct {
	Rate        int
	Duration    time.Duration
	Concurrency int
	// Sizes are the body sizes in bytes (message_size: one size or an array); default
	// 1 KiB.
	Sizes []int64
}

// Messages returns how many messages the load sends.
func (l Load) Messages() int { return int(float64(l.Rate) * l.Duration.Seconds()) }

// Producer is the [producer] table; zero values mean core's defaults (send_timeout 3s,
// retries 2, attempt_timeout send_timeout/(1+retries)).
type Producer struct {
	SendTimeout    time.Duration
	AttemptTimeout time.Duration
	Retries        int
	NoRetries      bool
}

// Fault is one [[fault]] window: from From to To (scenario time) Broker behaves as the
// fields say, and is healthy again at To. Windows of one broker must not overlap.
type Fault struct {
	Broker   string
	From, To time.Duration
	// Latency and Jitter delay every send answer by Latency plus a uniform [0, Jitter).
	Latency, Jitter time.Duration
	// Errors answer a share of sends with an error code instead of storing them.
	Errors []InjectedError
	// Resets closes the connection (TCP RST) on each of the next Resets requests from
	// the start of the window.
	Resets int
	// Hang freezes the broker like SIGSTOP; Down kills it like SIGKILL (it also leaves
	// the NameServer's routes).
	Hang, Down bool
	// Line is the line of the [[fault]] header.
	Line int
}

// InjectedError is one error code answered with a probability.
type InjectedError struct {
	Code remoting.ResponseCode
	Rate float64
}

// Describe returns a short text of what the window does, e.g. "+800ms (jitter 40ms)".
func (f Fault) Describe() string {
	var parts []string
	if f.Down {
		parts = append(parts, "down")
	}
	if f.Hang {
		parts = append(parts, "hang")
	}
	if f.Latency > 0 || f.Jitter > 0 {
		s := "+" + f.Latency.String()
		if f.Jitter > 0 {
			s += " (jitter " + f.Jitter.String() + ")"
		}
		parts = append(parts, s)
	}
	for _, e := range f.Errors {
		parts = append(parts, fmt.Sprintf("%s %g%%", e.Code, e.Rate*100))
	}
	if f.Resets > 0 {
		parts = append(parts, fmt.Sprintf("%d resets", f.Resets))
	}
	return strings.Join(parts, ", ")
}

func (f Fault) devFault() devbroker.Fault {
	df := devbroker.Fault{
		Latency: devbroker.Latency{Fixed: f.Latency, Jitter: f.Jitter},
		Resets:  f.Resets, Hang: f.Hang, Down: f.Down,
	}
	for _, e := range f.Errors {
		df.Errors = append(df.Errors, devbroker.InjectedError{Code: e.Code, Rate: e.Rate})
	}
	return df
}

// Strategy is one [[strategy]] to compare.
type Strategy struct {
	// Name labels the strategy in the report.
	Name string
	// Plugin is as written: "builtin:NAME" or a path; Builtin is NAME, Path the plugin's
	// absolute path.
	Plugin  string
	Builtin string
	Path    string
	// InProcess runs a built-in inside the simulator instead of as a plugin process (the
	// default, as the daemon does).
	InProcess bool
	// Settings is the settings table as JSON ("{}" when absent).
	Settings []byte
}

// Where returns "in-process", "wasm" or "plugin process".
func (s Strategy) Where() string {
	switch {
	case s.InProcess:
		return "in-process"
	case strings.HasSuffix(s.Path, ".wasm"):
		return "wasm"
	}
	return "plugin process"
}

// ParseFile reads and decodes the scenario file at path.
func ParseFile(path string) (*Scenario, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, &config.Error{File: path, Problem: err.Error()}
	}
	return Parse(path, data, filepath.Dir(path))
}

// Parse decodes data, read from the file called name; relative plugin paths are
// resolved against dir. Decoding is strict: an unknown key, a value of the wrong type
// or out of range, and an inconsistent fault timeline are each a *config.Error
// ("FILE:LINE: key KEY: problem", errors.Is config.ErrInvalid), all joined into one
// error.
func Parse(name string, data []byte, dir string) (*Scenario, error) {
	d, root, err := tomlx.Parse(name, data)
	if err != nil {
		return nil, err
	}
	d.ListKnown, d.InlineTables, d.SizeExample = true, true, "1KiB"
	sc := &Scenario{File: name, Seed: DefaultSeed, Queues: DefaultQueues, Topic: DefaultTopic}
	if !root.Str("name", &sc.Name) {
		sc.Name = strings.TrimSuffix(filepath.Base(name), filepath.Ext(name))
	}
	root.Str("description", &sc.Description)
	var seed int
	if root.Int("seed", &seed, 0, 1<<62) {
		sc.Seed = uint64(seed)
		if seed == 0 {
			d.Errorf("seed", "must not be 0 (the dev broker would pick a random seed)")
		}
	}
	sc.decodeCluster(root.Sub("cluster"), d)
	sc.decodeLoad(root.Sub("load"), d)
	sc.decodeProducer(root.Sub("producer"), d)
	sc.decodeFaults(root.Tables("fault"), d)
	sc.decodeStrategies(root.Tables("strategy"), d, dir)
	if !root.Has("strategy") {
		d.ErrorAt(1, "strategy", "at least one [[strategy]] is required")
	}
	root.Done()
	if err := d.Err(); err != nil {
		return nil, err
	}
	return sc, nil
}

func (sc *Scenario) decodeCluster(t *tomlx.Table, d *tomlx.Decoder) {
	if t == nil {
		d.ErrorAt(1, "cluster", "a [cluster] table with brokers = [...] is required")
		return
	}
	var names []string
	ok := t.Strings("brokers", &names)
	if !ok && !t.Has("brokers") {
		t.Errorf("brokers", "required: the broker names, e.g. [\"broker-a\", \"broker-b\"]")
	}
	if ok && (len(names) < 1 || len(names) > 26) {
		t.Errorf("brokers", "%d brokers: want 1..26", len(names))
	}
	for i, b := range names {
		switch {
		case !validName(b):
			d.Errorf(fmt.Sprintf("%s[%d]", t.Key("brokers"), i), "broker name %q: use 1..127 characters of [%%|a-zA-Z0-9_-]", b)
		case slices.Contains(sc.Brokers, b):
			d.Errorf(fmt.Sprintf("%s[%d]", t.Key("brokers"), i), "broker %q listed twice", b)
		default:
			sc.Brokers = append(sc.Brokers, b)
		}
	}
	t.Int("queues", &sc.Queues, 1, 64)
	if t.Str("topic", &sc.Topic) {
		if err := core.ValidateTopic(sc.Topic); err != nil {
			var ve *core.ValidationError
			if errors.As(err, &ve) {
				err = errors.New(ve.Msg)
			}
			t.Errorf("topic", "%v", err)
		}
	}
	t.Done()
}

// validName applies the broker-name rule of the dev broker (the topic charset).
func validName(s string) bool {
	if s == "" || len(s) > 127 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '%' || c == '|' || c == '-' || c == '_') {
			return false
		}
	}
	return true
}

func (sc *Scenario) decodeLoad(t *tomlx.Table, d *tomlx.Decoder) {
	if t == nil {
		d.ErrorAt(1, "load", "a [load] table with rate and duration is required")
		return
	}
	l := &sc.Load
	l.Concurrency = DefaultConcurrency
	if !t.Int("rate", &l.Rate, 1, MaxRate) && !t.Has("rate") {
		t.Errorf("rate", "required: messages per second")
	}
	if !t.Duration("duration", &l.Duration, time.Second, MaxDuration) && !t.Has("duration") {
		t.Errorf("duration", "required: how long the load runs, e.g. \"40s\"")
	}
	if l.Rate > 0 && l.Duration > 0 && l.Messages() > MaxMessages {
		t.Errorf("rate", "rate × duration = %d messages, more than %d", l.Messages(), MaxMessages)
	}
	t.Int("concurrency", &l.Concurrency, 1, 4096)
	if v, ok := t.Get("message_size"); ok {
		key := t.Key("message_size")
		if arr, isArr := v.([]any); isArr {
			if len(arr) == 0 {
				d.Errorf(key, "empty array: give at least one size")
			}
			for i, e := range arr {
				if n, ok := d.Size(fmt.Sprintf("%s[%d]", key, i), e, 0, MaxMessageSize); ok {
					l.Sizes = append(l.Sizes, n)
				}
			}
		} else if n, ok := d.Size(key, v, 0, MaxMessageSize); ok {
			l.Sizes = []int64{n}
		}
	}
	if len(l.Sizes) == 0 {
		l.Sizes = []int64{DefaultMessageSize}
	}
	t.Done()
}

func (sc *Scenario) decodeProducer(t *tomlx.Table, d *tomlx.Decoder) {
	if t == nil {
		return
	}
	p := &sc.Producer
	t.Duration("send_timeout", &p.SendTimeout, time.Millisecond, time.Minute)
	t.Duration("attempt_timeout", &p.AttemptTimeout, time.Millisecond, time.Minute)
	if t.Int("retries", &p.Retries, 0, 16) {
		p.NoRetries = p.Retries == 0
	}
	send := p.SendTimeout
	if send == 0 {
		send = core.DefaultSendTimeout
	}
	if p.AttemptTimeout > send {
		t.Errorf("attempt_timeout", "%v is above send_timeout %v (set it equal to send_timeout for no per-attempt cap)", p.AttemptTimeout, send)
	}
	t.Done()
}

func (sc *Scenario) decodeFaults(ts []*tomlx.Table, d *tomlx.Decoder) {
	for _, t := range ts {
		f := Fault{Line: d.Line(t.Path())}
		if t.Str("broker", &f.Broker) {
			if len(sc.Brokers) > 0 && !slices.Contains(sc.Brokers, f.Broker) {
				t.Errorf("broker", "no broker %q in [cluster] brokers (%s)", f.Broker, strings.Join(sc.Brokers, ", "))
			}
		} else if !t.Has("broker") {
			t.Errorf("broker", "required: the broker this window applies to")
		}
		hasFrom := t.Duration("from", &f.From, 0, MaxDuration)
		hasTo := t.Duration("to", &f.To, 0, MaxDuration)
		if !t.Has("from") {
			t.Errorf("from", "required: when the fault starts (scenario time, e.g. \"10s\")")
		}
		if !t.Has("to") {
			t.Errorf("to", "required: when the broker is healthy again (scenario time, e.g. \"20s\")")
		}
		if hasFrom && hasTo && f.To <= f.From {
			t.Errorf("to", "%v is not after from %v", f.To, f.From)
		}
		if hasFrom && sc.Load.Duration > 0 && f.From >= sc.Load.Duration {
			t.Errorf("from", "%v is not before the end of the load (%v)", f.From, sc.Load.Duration)
		}
		t.Duration("latency", &f.Latency, 0, time.Minute)
		t.Duration("jitter", &f.Jitter, 0, time.Minute)
		t.Int("resets", &f.Resets, 0, 1_000_000)
		t.Bool("hang", &f.Hang)
		t.Bool("down", &f.Down)
		if f.Hang && f.Down {
			t.Errorf("hang", "hang and down exclude each other (a killed broker cannot also be frozen)")
		}
		sum := 0.0
		for _, et := range t.Tables("errors") {
			var e InjectedError
			decodeCode(et, d, &e.Code)
			if !et.Fraction("rate", &e.Rate) && !et.Has("rate") {
				et.Errorf("rate", "required: the share of sends answered with this code, 0..1")
			}
			sum += e.Rate
			et.Done()
			f.Errors = append(f.Errors, e)
		}
		if sum > 1+1e-9 {
			t.Errorf("errors", "rates add up to %g, more than 1", sum)
		}
		if f.Describe() == "" {
			d.Errorf(t.Path(), "the window does nothing: set latency, jitter, errors, resets, hang or down")
		}
		t.Done()
		sc.Faults = append(sc.Faults, f)
	}
	// Each window replaces the broker's whole fault state at From and heals it at To, so
	// overlapping windows of one broker would cut each other short: refuse them.
	for i, a := range sc.Faults {
		for j := range i {
			b := sc.Faults[j]
			if a.Broker == b.Broker && a.From < b.To && b.From < a.To {
				d.ErrorAt(a.Line, fmt.Sprintf("fault[%d]", i), "overlaps fault[%d] (line %d) on %s: merge them into one window", j, b.Line, a.Broker)
			}
		}
	}
	slices.SortStableFunc(sc.Faults, func(a, b Fault) int { return int(a.From - b.From) })
}

// decodeCode reads code: a response code number or its Java name ("SYSTEM_BUSY").
func decodeCode(t *tomlx.Table, d *tomlx.Decoder, dst *remoting.ResponseCode) {
	v, ok := t.Get("code")
	if !ok {
		t.Errorf("code", "required: a response code such as \"SYSTEM_BUSY\" or 2")
		return
	}
	var code remoting.ResponseCode
	switch x := v.(type) {
	case int64:
		if x < 1 || x > 32767 {
			t.Errorf("code", "%d is out of range 1..32767", x)
			return
		}
		code = remoting.ResponseCode(x)
	case string:
		found := false
		for c := remoting.ResponseCode(1); c < 2048; c++ {
			if c.String() == x {
				code, found = c, true
				break
			}
		}
		if !found {
			t.Errorf("code", "unknown response code %q (use a Java name such as \"SYSTEM_BUSY\" or a number)", x)
			return
		}
	default:
		t.Errorf("code", "expected a response code name or number, got %s", tomlx.TypeName(v))
		return
	}
	*dst = code
}

func (sc *Scenario) decodeStrategies(ts []*tomlx.Table, d *tomlx.Decoder, dir string) {
	for _, t := range ts {
		s := Strategy{Settings: []byte("{}")}
		if !t.Str("name", &s.Name) && !t.Has("name") {
			t.Errorf("name", "required: the strategy's label in the report")
		}
		if s.Name != "" && slices.ContainsFunc(sc.Strategies, func(o Strategy) bool { return o.Name == s.Name }) {
			t.Errorf("name", "duplicate strategy name %q", s.Name)
		}
		if strings.ContainsAny(s.Name, ",\n\t") {
			t.Errorf("name", "%q must not contain commas, tabs or newlines", s.Name)
		}
		if !t.Str("plugin", &s.Plugin) && !t.Has("plugin") {
			t.Errorf("plugin", "required: \"builtin:NAME\" (%s) or the path of a plugin binary", builtinNames())
		}
		t.Bool("in_process", &s.InProcess)
		ok := true
		switch {
		case s.Plugin == "":
		case strings.HasPrefix(s.Plugin, config.BuiltinPrefix):
			s.Builtin = strings.TrimPrefix(s.Plugin, config.BuiltinPrefix)
			if _, found := builtin.Lookup(s.Builtin); !found {
				t.Errorf("plugin", "unknown built-in strategy %q (built-ins: %s)", s.Builtin, builtinNames())
				ok = false
			}
		default:
			s.Path = s.Plugin
			if !filepath.IsAbs(s.Path) {
				s.Path = filepath.Join(dir, s.Path)
			}
			if abs, err := filepath.Abs(s.Path); err == nil {
				s.Path = abs
			}
			fi, err := os.Stat(s.Path)
			switch {
			case err != nil:
				t.Errorf("plugin", "plugin %q not found (a path relative to the scenario file, or \"builtin:NAME\")", s.Plugin)
				ok = false
			case fi.IsDir() || fi.Mode()&0o111 == 0 && !strings.HasSuffix(s.Path, ".wasm"):
				t.Errorf("plugin", "plugin %q is not an executable file or a .wasm module", s.Plugin)
				ok = false
			}
			if s.InProcess {
				t.Errorf("in_process", "only built-ins can run in-process; %q is a plugin binary", s.Plugin)
			}
		}
		if st := t.Sub("settings"); st != nil {
			b, err := json.Marshal(st.Map())
			if err != nil {
				d.Errorf(st.Path(), "settings cannot be passed to the plugin as JSON: %v", err)
			} else {
				s.Settings = b
			}
			st.MarkRead()
			if s.Builtin != "" && ok {
				checkSettings(st, d, s)
			}
		}
		t.Done()
		sc.Strategies = append(sc.Strategies, s)
	}
}

// checkSettings validates a built-in's settings with the strategy's own constructor
// (builtin.Validate), keyed by setting.
func checkSettings(st *tomlx.Table, d *tomlx.Decoder, s Strategy) {
	err := builtin.Validate(s.Builtin, s.Settings)
	if err == nil {
		return
	}
	errs := []error{err}
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		errs = j.Unwrap()
	}
	for _, e := range errs {
		var se *builtin.SettingError
		if errors.As(e, &se) && se.Key != "" {
			st.Errorf(se.Key, "%v", se.Err)
		} else {
			d.Errorf(st.Path(), "%v", e)
		}
	}
}

func builtinNames() string {
	var names []string
	for _, b := range builtin.All() {
		names = append(names, config.BuiltinPrefix+b.Name)
	}
	return strings.Join(names, ", ")
}

// event is one dev broker timeline event with its description.
type event struct {
	devbroker.Event
	what string
	heal bool
}

// events turns the fault windows that start before until into dev broker events: the
// fault at From, a healthy broker at To. At equal instants a heal comes before a new
// fault. The order is the order in which the dev broker applies them.
func (sc *Scenario) events(until time.Duration) []event {
	var evs []event
	for _, f := range sc.Faults {
		if f.From >= until {
			continue
		}
		evs = append(evs, event{Event: devbroker.Event{At: f.From, Broker: f.Broker, Fault: f.devFault()}, what: f.Describe()})
		evs = append(evs, event{Event: devbroker.Event{At: f.To, Broker: f.Broker}, what: "healthy", heal: true})
	}
	slices.SortStableFunc(evs, func(a, b event) int {
		if a.At != b.At {
			return int(a.At - b.At)
		}
		switch {
		case a.heal && !b.heal:
			return -1
		case b.heal && !a.heal:
			return 1
		}
		return 0
	})
	return evs
}

// timeline returns the events as a devbroker.Timeline.
func (sc *Scenario) timeline(until time.Duration) devbroker.Timeline {
	evs := sc.events(until)
	out := make(devbroker.Timeline, len(evs))
	for i, e := range evs {
		out[i] = e.Event
	}
	return out
}

// Summary is a one-line description of the scenario's cluster and load.
func (sc *Scenario) Summary() string {
	sizes := make([]string, len(sc.Load.Sizes))
	for i, n := range sc.Load.Sizes {
		sizes[i] = formatSize(n)
	}
	return fmt.Sprintf("%d brokers × %d queues, %d msg/s for %v (%d messages, %s, ≤%d in flight), seed %d",
		len(sc.Brokers), sc.Queues, sc.Load.Rate, sc.Load.Duration, sc.Load.Messages(), strings.Join(sizes, "/"),
		sc.Load.Concurrency, sc.Seed)
}

func formatSize(n int64) string {
	switch {
	case n >= 1<<20 && n%(1<<20) == 0:
		return strconv.FormatInt(n>>20, 10) + " MiB"
	case n >= 1<<10 && n%(1<<10) == 0:
		return strconv.FormatInt(n>>10, 10) + " KiB"
	}
	return strconv.FormatInt(n, 10) + " B"
}
