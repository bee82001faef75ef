package procs

import "testing"

func TestGODEBUGSets(t *testing.T) {
	for _, tt := range []struct {
		godebug string
		want    bool
	}{
		{"", false},
		{"schedtrace=1", true},
		{"gctrace=1,schedtrace=0", true},
		{"gctrace=1, schedtrace=5", false}, // the runtime does not trim
		{"schedtrace=abc", false},          // nor take a non-number
		{"schedtraceX=1", false},
		{"schedtrace", false},
		{"gctrace=1", false},
	} {
		if got := GODEBUGSets(tt.godebug, "schedtrace"); got != tt.want {
			t.Errorf("GODEBUGSets(%q) = %v, want %v", tt.godebug, got, tt.want)
		}
	}
}

func TestWithSteadySysmon(t *testing.T) {
	for in, want := range map[string]string{
		"":                "schedtrace=2147483647",
		"gctrace=1":       "gctrace=1,schedtrace=2147483647",
		"schedtrace=1000": "schedtrace=1000",
		"schedtrace=0":    "schedtrace=0",
	} {
		if got := WithSteadySysmon(in); got != want {
			t.Errorf("WithSteadySysmon(%q) = %q, want %q", in, got, want)
		}
	}
}
