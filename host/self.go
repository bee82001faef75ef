package host

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"runtime"
)

// procSelfExe names, on Linux, the executable image of the process that opens it: a
// child started through it runs the very file its parent runs, even after the path the
// parent was started from was replaced or removed.
const procSelfExe = "/proc/self/exe"

// SelfExecutable returns the path a built-in strategy's plugin process is started from
// (Spec.Command's default and the daemon's): on Linux /proc/self/exe, so that a restart
// of the plugin runs the image the daemon already runs, never whatever was since put at
// the daemon's path (a built-in gets no trust check: it is producerd itself);
// elsewhere, or without /proc, os.Executable().
func SelfExecutable() (string, error) {
	if runtime.GOOS == "linux" {
		if _, err := os.Stat(procSelfExe); err == nil {
			return procSelfExe, nil
		}
	}
	return os.Executable()
}

// CheckPlugin runs the checks the host makes before it runs the plugin executable or
// WebAssembly module at path, at Start and at every restart: the trust check (see
// ErrUntrustedPlugin; skipped with allowInsecurePath) and, when sha256Hex is set, the
// SHA-256 pin (ErrChecksumMismatch). It starts nothing; `producerd validate` calls it.
func CheckPlugin(path string, allowInsecurePath bool, sha256Hex string) error {
	if !allowInsecurePath {
		if err := checkTrust(path); err != nil {
			return err
		}
	}
	if sha256Hex == "" {
		return nil
	}
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("plugin %s: %w", path, err)
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return fmt.Errorf("plugin %s: %w", path, err)
	}
	if want, _ := hex.DecodeString(sha256Hex); !bytes.Equal(h.Sum(nil), want) {
		return fmt.Errorf("%w: %s has SHA-256 %x", ErrChecksumMismatch, path, h.Sum(nil))
	}
	return nil
}
