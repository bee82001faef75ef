package config

import (
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/producerd/producerd/internal/tomlx"
	"github.com/producerd/producerd/internal/tomlx/tomlxtest"
)

var update = flag.Bool("update", false, "rewrite the golden .err files of testdata/config")

// configDir is the repository's table of malformed configs.
const configDir = "../../testdata/config"

// TestMalformed decodes every testdata/config/*.toml and compares the error text with
// the .err file next to it (regenerate with go test ./internal/config -update).
func TestMalformed(t *testing.T) {
	files, err := filepath.Glob(filepath.Join(configDir, "*.toml"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no configs in %s: %v", configDir, err)
	}
	for _, f := range files {
		name := filepath.Base(f)
		t.Run(strings.TrimSuffix(name, ".toml"), func(t *testing.T) {
			t.Parallel()
			data, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			_, perr := Parse(name, data, configDir)
			tomlxtest.Golden(t, name, perr, strings.TrimSuffix(f, ".toml")+".err", *update)
		})
	}
}

// TestShippedConfig checks that the repository's producer.toml is valid and says what
// its comments say.
func TestShippedConfig(t *testing.T) {
	c, err := Load("../../producer.toml")
	if err != nil {
		t.Fatal(err)
	}
	if len(c.Producers) == 0 || c.Producers[0].Strategy == "" {
		t.Fatalf("producers = %+v", c.Producers)
	}
	if c.Ingress.GRPC != DefaultIngressGRPC || c.Admin.Listen != DefaultAdminListen {
		t.Errorf("listeners: %+v %+v", c.Ingress, c.Admin)
	}
	for _, name := range []string{"latency", "roundrobin", "latencyfault"} {
		if _, ok := c.Strategies[name]; !ok {
			t.Errorf("strategy %q missing", name)
		}
	}
}

func TestDefaultsAndValues(t *testing.T) {
	src := `
[daemon]
max_inflight_bytes = "1MiB"
shutdown_timeout = "1m30s"

[client]
name_servers = ["127.0.0.1:9876"]

[strategy.lf]
plugin = "builtin:latencyfault"
settings = { preset = "rocketmq5", max_isolated_share = 1 }

[[producer]]
retries = 0
max_message_size = 65536
compress_threshold = "8KiB"
`
	c, err := Parse("t.toml", []byte(src), t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	p := c.Producers[0]
	if p.Group != DefaultGroup || !p.NoRetries || p.MaxMessageSize != 65536 || p.CompressThreshold != 8<<10 {
		t.Errorf("producer = %+v", p)
	}
	if c.Daemon.MaxInflightBytes != 1<<20 || c.Daemon.ShutdownTimeout != 90*time.Second || c.Daemon.MaxInflightMessages != DefaultMaxInflightMessages {
		t.Errorf("daemon = %+v", c.Daemon)
	}
	// The memory limit follows max_inflight_bytes unless set.
	if want := int64(2<<20 + 64<<20 + DefaultMaxTopics*BytesPerTopic); c.Daemon.GCPercent != DefaultGCPercent || c.Daemon.MemoryLimit != want {
		t.Errorf("gc_percent %d, memory_limit %d; want %d and %d", c.Daemon.GCPercent, c.Daemon.MemoryLimit, DefaultGCPercent, want)
	}
	if c.Daemon.Procs != ProcsAuto {
		t.Errorf("procs %d, want ProcsAuto when not set", c.Daemon.Procs)
	}
	if got := string(c.Strategies["lf"].Settings); got != `{"max_isolated_share":1,"preset":"rocketmq5"}` {
		t.Errorf("settings JSON = %s", got)
	}
	if !c.Strategies["roundrobin"].Implicit || c.Strategies["lf"].Implicit {
		t.Errorf("implicit built-ins wrong: %+v", c.Strategies)
	}
}

// TestRuntimeSettings: gc_percent and memory_limit take a value or "off", procs a number
// or "auto" (its default), sysmon "runtime" (its default) or "steady", and each refuses
// what the runtime would misread, at its line.
func TestRuntimeSettings(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		lines     string
		gc        int
		limit     int64
		procs     int
		sysmon    string
		wantError string
	}{
		{`gc_percent = 100` + "\n" + `memory_limit = "1GiB"` + "\n" + `procs = 3` + "\n" + `sysmon = "steady"`, 100, 1 << 30, 3, SysmonSteady, ""},
		{`gc_percent = "off"` + "\n" + `memory_limit = "off"` + "\n" + `procs = "auto"`, GCOff, NoMemoryLimit, ProcsAuto, SysmonRuntime, ""},
		{`gc_percent = 0`, 0, 0, 0, "", "daemon.gc_percent"},
		{`memory_limit = "1MiB"`, 0, 0, 0, "", "daemon.memory_limit"},
		{`gc_percent = "sometimes"`, 0, 0, 0, "", "daemon.gc_percent"},
		{`procs = 0`, 0, 0, 0, "", "daemon.procs"},
		{`procs = "many"`, 0, 0, 0, "", "daemon.procs"},
		{`sysmon = "off"`, 0, 0, 0, "", "daemon.sysmon"},
	} {
		c, err := Parse("t.toml", []byte("[daemon]\n"+tc.lines+"\n[client]\nname_servers = [\"127.0.0.1:9876\"]\n[[producer]]\n"), t.TempDir())
		if tc.wantError != "" {
			if err == nil || !strings.Contains(err.Error(), "t.toml:2") || !strings.Contains(err.Error(), tc.wantError) {
				t.Errorf("%q: err %v, want t.toml:2: %s", tc.lines, err, tc.wantError)
			}
			continue
		}
		if err != nil {
			t.Errorf("%q: %v", tc.lines, err)
			continue
		}
		if d := c.Daemon; d.GCPercent != tc.gc || d.MemoryLimit != tc.limit || d.Procs != tc.procs || d.Sysmon != tc.sysmon {
			t.Errorf("%q: gc_percent %d, memory_limit %d, procs %d, sysmon %q; want %d, %d, %d, %q", tc.lines, d.GCPercent, d.MemoryLimit, d.Procs, d.Sysmon,
				tc.gc, tc.limit, tc.procs, tc.sysmon)
		}
	}
}

func TestParseSize(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		in   string
		want int64
		ok   bool
	}{
		{"4MiB", 4 << 20, true}, {"64 KiB", 64 << 10, true}, {"512", 512, true}, {"1GB", 1e9, true},
		{"10B", 10, true}, {"4 MiBs", 0, false}, {"-1", 0, false}, {"", 0, false}, {"1.5MiB", 0, false},
	} {
		got, err := ParseSize(tc.in)
		if (err == nil) != tc.ok || got != tc.want {
			t.Errorf("ParseSize(%q) = %d, %v; want %d, ok=%v", tc.in, got, err, tc.want, tc.ok)
		}
	}
}

func TestLocator(t *testing.T) {
	t.Parallel()
	src := `a = 1
[t]
"quoted.key" = """
multi
line"""
arr = [
  1,
  { x = 2 },
]
[[p]]
g = 1
[[p]]
g = 2
[p.sub]
k = 'v'
`
	l := tomlx.NewLocator(src)
	for path, want := range map[string]int{
		"a": 1, "t": 2, "t.quoted.key": 3, "t.arr": 6, "t.arr[1]": 8, "t.arr[1].x": 8,
		"p[0].g": 11, "p[1].g": 13, "p[1].sub.k": 15, "p[1].sub.missing": 14, "nothing": 0,
	} {
		if got := l.Line(path); got != want {
			t.Errorf("Line(%q) = %d, want %d", path, got, want)
		}
	}
}
