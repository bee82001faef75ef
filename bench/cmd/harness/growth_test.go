package main

import (
	"strings"
	"testing"
	"time"

	"github.com/producerd/producerd/internal/config"
)

func TestGrowthConfigParses(t *testing.T) {
	for _, groups := range []int{1, 20} {
		text := growthConfig("127.0.0.1:9876", "127.0.0.1:1", "127.0.0.1:2", 100_000, groups, growthRefresh(1))
		cfg, err := config.Parse("growth.toml", []byte(text), ".")
		if err != nil {
			t.Fatalf("%d groups: %v\n%s", groups, err, text)
		}
		if len(cfg.Producers) != groups || cfg.Limits.MaxTopics != 100_000 || cfg.Client.RouteRefresh != 30*time.Second {
			t.Fatalf("%d groups: producers %d, max_topics %d, route_refresh %v", groups, len(cfg.Producers), cfg.Limits.MaxTopics, cfg.Client.RouteRefresh)
		}
	}
}

// TestDaemonConfigParses: the side-by-side daemon's TOML (ingress on TCP and the Unix
// socket, two groups) is a valid config.
func TestDaemonConfigParses(t *testing.T) {
	text := daemonConfig("127.0.0.1:9876", "127.0.0.1:1", "/tmp/p.sock", "127.0.0.1:2")
	cfg, err := config.Parse("daemon.toml", []byte(text), ".")
	if err != nil {
		t.Fatalf("%v\n%s", err, text)
	}
	if cfg.Ingress.Unix != "/tmp/p.sock" || cfg.Ingress.GRPC != "127.0.0.1:1" || len(cfg.Producers) != 2 {
		t.Fatalf("unix %q, grpc %q, %d producers", cfg.Ingress.Unix, cfg.Ingress.GRPC, len(cfg.Producers))
	}
}

func TestSpliceGrowth(t *testing.T) {
	section := growthBegin + "\nnew\n" + growthEnd + "\n"
	tests := []struct{ name, doc, want string }{
		{"replaces the old section", "a\n" + growthBegin + "\nold\n" + growthEnd + "\n## Targets\n", "a\n" + section + "## Targets\n"},
		{"before the targets", "a\n## Targets\nb\n", "a\n" + section + "\n## Targets\nb\n"},
		{"appended", "a\n", "a\n\n" + section},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := spliceGrowth(tt.doc, section); got != tt.want {
				t.Fatalf("got\n%q\nwant\n%q", got, tt.want)
			}
		})
	}
	if got := oldGrowth("x\n" + strings.TrimSuffix(section, "\n") + "\ny"); got != section {
		t.Fatalf("oldGrowth = %q, want %q", got, section)
	}
	if oldGrowth("no section") != "" {
		t.Fatal("oldGrowth found a section in a document without one")
	}
}

func TestGrowthPoints(t *testing.T) {
	topics, err := parsePoints("growth-topics", defaultGrowthTopics)
	if err != nil {
		t.Fatal(err)
	}
	groups, err := parsePoints("growth-groups", " 1, 20 ")
	if err != nil {
		t.Fatal(err)
	}
	scen := growthScenarios(1, 16, 0, false, topics, groups)
	var got []string
	for _, s := range scen {
		for _, c := range s.Cells {
			got = append(got, s.ID+"/"+c.Variant)
			if c.Pause != 0 || c.WarmupTime != 0 {
				t.Errorf("%s: the driver pauses %v and warms up for %v; the route warm-up and pause are the harness's", c.Variant, c.Pause, c.WarmupTime)
			}
		}
	}
	want := "growth-topics/t1-g1 growth-topics/t100-g1 growth-topics/t1000-g1 growth-topics/t10000-g1 growth-topics/t100000-g1 growth-groups/t1-g1 growth-groups/t1-g20"
	if strings.Join(got, " ") != want {
		t.Fatalf("points %q, want %q", strings.Join(got, " "), want)
	}
	for _, bad := range []string{"", "1,,2", "0", "-5", "x"} {
		if _, err := parsePoints("growth-topics", bad); err == nil {
			t.Errorf("parsePoints(%q) accepted", bad)
		}
	}
}
