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
