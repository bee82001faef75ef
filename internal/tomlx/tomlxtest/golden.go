// Package tomlxtest checks strict-decoding errors against golden files.
package tomlxtest

import (
	"errors"
	"os"
	"strings"
	"testing"

	"github.com/producerd/producerd/internal/tomlx"
)

// Golden fails the test unless err is a tomlx.ErrInvalid whose text equals the golden
// file and whose every line starts with "name:". With update it rewrites the golden file
// instead of comparing.
func Golden(t testing.TB, name string, err error, golden string, update bool) {
	t.Helper()
	if err == nil {
		t.Fatalf("%s: decoded without error", name)
	}
	if !errors.Is(err, tomlx.ErrInvalid) {
		t.Errorf("error does not match ErrInvalid: %v", err)
	}
	got := err.Error() + "\n"
	if update {
		if err := os.WriteFile(golden, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, rerr := os.ReadFile(golden)
	if rerr != nil {
		t.Fatalf("%v (run with -update to create it)", rerr)
	}
	if got != string(want) {
		t.Errorf("error text differs from %s\n--- got\n%s--- want\n%s", golden, got, want)
	}
	for _, line := range strings.Split(strings.TrimSpace(got), "\n") {
		if !strings.HasPrefix(line, name+":") {
			t.Errorf("line does not start with the file name: %q", line)
		}
	}
}
