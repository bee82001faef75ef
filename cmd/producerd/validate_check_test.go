package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestValidateRunsRunsChecks: validate refuses what run would refuse short of binding
// (review defect 13) and prints the warnings run logs at start.
func TestValidateRunsRunsChecks(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	open := filepath.Join(dir, "open")
	if err := os.Mkdir(open, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(open, 0o777); err != nil { // not sticky: anyone may replace a file
		t.Fatal(err)
	}
	for _, p := range []string{filepath.Join(open, "plugin"), filepath.Join(dir, "plugin")} {
		if err := os.WriteFile(p, []byte("#!/bin/sh\nexit 1\n"), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	const tail = "[client]\nname_servers = [\"127.0.0.1:9876\"]\n[[producer]]\n"
	for _, tc := range []struct {
		name, cfg string
		code      int
		stderr    []string
	}{
		{"plugin in a world-writable directory", "[strategy.s]\nplugin = \"open/plugin\"\n" + tail, 1,
			[]string{"strategy s", "directory " + open + " is writable by its group or others (mode 0777)"}},
		{"plugin allowed there", "[strategy.s]\nplugin = \"open/plugin\"\nallow_insecure_path = true\n" + tail, 0,
			[]string{"warning: ", "plugin " + open + "/plugin runs even if someone other than its owner could replace it"}},
		{"sha256 pin mismatch", "[strategy.s]\nplugin = \"plugin\"\nsha256 = \"" + strings.Repeat("ab", 32) + "\"\n" + tail, 1,
			[]string{"strategy s", "does not match its SHA-256 pin"}},
		{"localhost and 127.0.0.1 on one port", "[ingress]\ngrpc = \"127.0.0.1:7480\"\nhttp = \"localhost:7480\"\n" + tail, 1,
			[]string{":3: key ingress.http: localhost:7480 overlaps ingress.grpc = 127.0.0.1:7480"}},
		{"insecure listener warns", "[ingress]\ngrpc = \"0.0.0.0:7480\"\ninsecure = true\n" + tail, 0,
			[]string{"warning: INSECURE: a listener on a non-loopback address without TLS (ingress.insecure = true): ingress grpc on 0.0.0.0:7480"}},
	} {
		path := filepath.Join(dir, strings.ReplaceAll(tc.name, " ", "_")+".toml")
		if err := os.WriteFile(path, []byte(tc.cfg), 0o600); err != nil {
			t.Fatal(err)
		}
		code, out, errOut := runCLI("validate", "-no-start", "-c", path) // the plugin is a stand-in
		if code != tc.code {
			t.Errorf("%s: exit %d, want %d\n%s%s", tc.name, code, tc.code, out, errOut)
		}
		for _, want := range tc.stderr {
			if !strings.Contains(errOut, want) {
				t.Errorf("%s: stderr lacks %q:\n%s", tc.name, want, errOut)
			}
		}
	}
}
