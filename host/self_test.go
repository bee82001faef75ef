package host

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
)

// TestCheckPlugin: the checks validate runs are the ones a start makes: the trust check
// (unless allowed) and the SHA-256 pin, in either hex case.
func TestCheckPlugin(t *testing.T) {
	t.Parallel()
	if runtime.GOOS == "windows" {
		t.Skip("mode bits")
	}
	dir := t.TempDir()
	open := filepath.Join(dir, "open")
	if err := os.Mkdir(open, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(open, 0o777); err != nil {
		t.Fatal(err)
	}
	body := []byte("#!/bin/sh\n")
	sum := sha256.Sum256(body)
	good, bad := filepath.Join(dir, "p"), filepath.Join(open, "p")
	for _, p := range []string{good, bad} {
		if err := os.WriteFile(p, body, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	for _, tc := range []struct {
		path  string
		allow bool
		sha   string
		want  error
	}{
		{good, false, "", nil},
		{good, false, hex.EncodeToString(sum[:]), nil},
		{good, false, strings.ToUpper(hex.EncodeToString(sum[:])), nil},
		{good, false, strings.Repeat("00", 32), ErrChecksumMismatch},
		{bad, false, "", ErrUntrustedPlugin},
		{bad, true, "", nil},
		{bad, true, strings.Repeat("00", 32), ErrChecksumMismatch},
	} {
		if err := CheckPlugin(tc.path, tc.allow, tc.sha); !errors.Is(err, tc.want) || (tc.want == nil) != (err == nil) {
			t.Errorf("CheckPlugin(%s, %v, %.8s): %v, want %v", tc.path, tc.allow, tc.sha, err, tc.want)
		}
	}
}

// TestSelfExecutable: on Linux the built-ins start from the running image.
func TestSelfExecutable(t *testing.T) {
	t.Parallel()
	exe, err := SelfExecutable()
	if err != nil {
		t.Fatal(err)
	}
	if runtime.GOOS == "linux" && exe != "/proc/self/exe" {
		t.Errorf("SelfExecutable() = %q, want /proc/self/exe", exe)
	}
}
