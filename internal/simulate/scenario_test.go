package simulate

import (
	"flag"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/producerd/producerd/internal/tomlx"
	"github.com/producerd/producerd/internal/tomlx/tomlxtest"
	"github.com/producerd/producerd/remoting"
)

var update = flag.Bool("update", false, "rewrite the golden .err files of testdata/scenarios")

const goodScenario = `# a scenario that uses every key
name = "every-key"
description = "all of it"
seed = 42

[cluster]
brokers = ["broker-a", "broker-b", "broker-c"]
queues = 2
topic = "OrdersSim"

[load]
rate = 50
duration = "6s"
concurrency = 8
message_size = ["100B", 2048, "4KiB"]

[producer]
send_timeout = "400ms"
attempt_timeout = "200ms"
retries = 1

[[fault]]
broker = "broker-c"
from = "3s"
to = "5s"
errors = [
  { code = "SYSTEM_BUSY", rate = 0.25 },
  { code = 1, rate = 0.5 },
]
resets = 3

[[fault]]
broker = "broker-b"
from = "1s"
to = "2s"
latency = "300ms"
jitter = "20ms"

[[fault]]
broker = "broker-b"
from = "2s"
to = "3s"
hang = true

[[fault]]
broker = "broker-a"
from = "4s"
to = "9s"
down = true

[[strategy]]
name = "rr"
plugin = "builtin:roundrobin"
in_process = true

[[strategy]]
name = "lf"
plugin = "builtin:latencyfault"

[strategy.settings]
preset = "rocketmq5"
max_isolated_share = 0.5
`

func TestParseGood(t *testing.T) {
	t.Parallel()
	sc, err := Parse("good.toml", []byte(goodScenario), ".")
	if err != nil {
		t.Fatal(err)
	}
	if sc.Name != "every-key" || sc.Seed != 42 || sc.Queues != 2 || sc.Topic != "OrdersSim" ||
		!slices.Equal(sc.Brokers, []string{"broker-a", "broker-b", "broker-c"}) {
		t.Errorf("header: %+v", sc)
	}
	if l := sc.Load; l.Rate != 50 || l.Duration != 6*time.Second || l.Concurrency != 8 || !slices.Equal(l.Sizes, []int64{100, 2048, 4096}) || l.Messages() != 300 {
		t.Errorf("load: %+v", l)
	}
	if p := sc.Producer; p.SendTimeout != 400*time.Millisecond || p.AttemptTimeout != 200*time.Millisecond || p.Retries != 1 || p.NoRetries {
		t.Errorf("producer: %+v", p)
	}
	// Sorted by From.
	want := []struct {
		broker   string
		from, to time.Duration
		what     string
		line     int
	}{
		{"broker-b", time.Second, 2 * time.Second, "+300ms (jitter 20ms)", 32},
		{"broker-b", 2 * time.Second, 3 * time.Second, "hang", 39},
		{"broker-c", 3 * time.Second, 5 * time.Second, "SYSTEM_BUSY 25%, SYSTEM_ERROR 50%, 3 resets", 22},
		{"broker-a", 4 * time.Second, 9 * time.Second, "down", 45},
	}
	if len(sc.Faults) != len(want) {
		t.Fatalf("faults: %+v", sc.Faults)
	}
	for i, w := range want {
		f := sc.Faults[i]
		if f.Broker != w.broker || f.From != w.from || f.To != w.to || f.Describe() != w.what || f.Line != w.line {
			t.Errorf("fault %d = %s %v-%v %q line %d, want %+v", i, f.Broker, f.From, f.To, f.Describe(), f.Line, w)
		}
	}
	if c := sc.Faults[2].Errors; c[0].Code != remoting.SystemBusy || c[1].Code != remoting.SystemError {
		t.Errorf("codes: %+v", c)
	}
	if len(sc.Strategies) != 2 {
		t.Fatalf("strategies: %+v", sc.Strategies)
	}
	if s := sc.Strategies[0]; s.Name != "rr" || s.Builtin != "roundrobin" || !s.InProcess || string(s.Settings) != "{}" {
		t.Errorf("rr: %+v", s)
	}
	if s := sc.Strategies[1]; s.Name != "lf" || s.Builtin != "latencyfault" || s.InProcess || !strings.Contains(string(s.Settings), `"preset":"rocketmq5"`) {
		t.Errorf("lf: %+v %s", s, s.Settings)
	}
	// The timeline heals broker-b at 2s before hanging it, and ends at To; a cut at 3.5s
	// drops the windows that start later.
	tl := sc.timeline(3500 * time.Millisecond)
	var got []string
	for _, ev := range tl {
		got = append(got, ev.At.String()+" "+ev.Broker+" "+map[bool]string{true: "fault", false: "heal"}[ev.Fault.Hang || ev.Fault.Latency.Fixed > 0 || len(ev.Fault.Errors) > 0])
	}
	wantTL := []string{"1s broker-b fault", "2s broker-b heal", "2s broker-b fault", "3s broker-b heal", "3s broker-c fault", "5s broker-c heal"}
	if !slices.Equal(got, wantTL) {
		t.Errorf("timeline:\n got %q\nwant %q", got, wantTL)
	}
}

func TestParseDefaults(t *testing.T) {
	t.Parallel()
	sc, err := Parse("dir/min.toml", []byte("[cluster]\nbrokers = [\"b1\"]\n[load]\nrate = 1\nduration = \"1s\"\n[[strategy]]\nname = \"x\"\nplugin = \"builtin:roundrobin\"\n"), ".")
	if err != nil {
		t.Fatal(err)
	}
	if sc.Name != "min" || sc.Seed != DefaultSeed || sc.Queues != DefaultQueues || sc.Topic != DefaultTopic ||
		sc.Load.Concurrency != DefaultConcurrency || !slices.Equal(sc.Load.Sizes, []int64{DefaultMessageSize}) || sc.Producer != (Producer{}) {
		t.Errorf("defaults: %+v", sc)
	}
}

// TestExamples decodes the shipped scenarios.
func TestExamples(t *testing.T) {
	t.Parallel()
	files, err := filepath.Glob("../../examples/scenarios/*.toml")
	if err != nil || len(files) < 3 {
		t.Fatalf("examples: %v %v", files, err)
	}
	for _, f := range files {
		sc, err := ParseFile(f)
		if err != nil {
			t.Errorf("%s: %v", f, err)
			continue
		}
		if len(sc.Faults) == 0 || len(sc.Strategies) < 2 || sc.Load.Duration > time.Minute {
			t.Errorf("%s: want faults, at least two strategies and at most a minute: %s", f, sc.Summary())
		}
	}
}

// TestMalformed decodes every testdata/scenarios/bad-*.toml and compares the error text
// with the .err file next to it (regenerate with go test ./internal/simulate -update).
func TestMalformed(t *testing.T) {
	t.Parallel()
	const dir = "testdata/scenarios"
	files, err := filepath.Glob(filepath.Join(dir, "bad-*.toml"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no scenarios in %s: %v", dir, err)
	}
	for _, f := range files {
		name := filepath.Base(f)
		t.Run(strings.TrimSuffix(name, ".toml"), func(t *testing.T) {
			t.Parallel()
			data, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			_, perr := Parse(name, data, dir)
			tomlxtest.Golden(t, name, perr, strings.TrimSuffix(f, ".toml")+".err", *update)
		})
	}
}

func TestLocate(t *testing.T) {
	t.Parallel()
	lines := tomlx.NewLocator(goodScenario).Lines()
	for path, want := range map[string]int{
		"seed":                        4,
		"cluster":                     6,
		"cluster.queues":              8,
		"load.message_size":           15,
		"fault":                       22,
		"fault[0]":                    22,
		"fault[0].errors":             26,
		"fault[0].errors[0]":          27,
		"fault[0].errors[1].code":     28,
		"fault[1].jitter":             37,
		"fault[3].down":               49,
		"strategy[1].plugin":          58,
		"strategy[1].settings":        60,
		"strategy[1].settings.preset": 61,
	} {
		if got := lines[path]; got != want {
			t.Errorf("line of %s = %d, want %d", path, got, want)
		}
	}
	// A multi-line string hides what looks like keys and headers.
	lines = tomlx.NewLocator("description = \"\"\"\n[load]\nrate = 1\n\"\"\"\n[cluster]\nqueues = 2\n").Lines()
	if lines["load"] != 0 || lines["cluster.queues"] != 6 {
		t.Errorf("multi-line string: %v", lines)
	}
}
