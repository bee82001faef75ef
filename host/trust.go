package host

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/producerd/producerd/internal/procs"
	"github.com/producerd/producerd/internal/strategywire"
)

// checkTrust refuses to run the plugin executable at path when anyone but its owner
// could have replaced it: the file must be a regular file that is not group- or
// world-writable, and every directory from its own up to the root must not be group-
// or world-writable either (unless sticky, like /tmp: there only a file's owner can
// rename or remove it); the file and those directories must belong to root or to the
// daemon's user. Symbolic links are followed first. A problem wraps ErrUntrustedPlugin;
// a missing file is an ordinary start failure (the plugin may be being deployed).
func checkTrust(path string) error {
	real, err := filepath.EvalSymlinks(path)
	if err != nil {
		return fmt.Errorf("plugin %s: %w", path, err)
	}
	real, err = filepath.Abs(real)
	if err != nil {
		return fmt.Errorf("plugin %s: %w", path, err)
	}
	fi, err := os.Stat(real)
	if err != nil {
		return fmt.Errorf("plugin %s: %w", path, err)
	}
	untrusted := func(format string, args ...any) error {
		return fmt.Errorf("%w: %s: %s (set allow_insecure_path = true to run it anyway)", ErrUntrustedPlugin, path, fmt.Sprintf(format, args...))
	}
	switch {
	case !fi.Mode().IsRegular():
		return untrusted("%s is not a regular file", real)
	case fi.Mode().Perm()&0o022 != 0:
		return untrusted("%s is writable by its group or others (mode %04o)", real, fi.Mode().Perm())
	}
	if owner, ok := fileOwner(fi); ok && !trustedOwner(owner) {
		return untrusted("%s belongs to uid %d, neither root nor the daemon's user", real, owner)
	}
	for dir := filepath.Dir(real); ; dir = filepath.Dir(dir) {
		di, err := os.Stat(dir)
		if err != nil {
			return fmt.Errorf("plugin %s: %w", path, err)
		}
		if di.Mode().Perm()&0o022 != 0 && di.Mode()&fs.ModeSticky == 0 {
			return untrusted("directory %s is writable by its group or others (mode %04o): they could replace the plugin", dir, di.Mode().Perm())
		}
		if owner, ok := fileOwner(di); ok && !trustedOwner(owner) {
			return untrusted("directory %s belongs to uid %d, neither root nor the daemon's user", dir, owner)
		}
		if parent := filepath.Dir(dir); parent == dir {
			return nil
		}
	}
}

func trustedOwner(uid uint32) bool { return uid == 0 || int64(uid) == int64(os.Geteuid()) }

// pluginEnvBase are the variables a plugin process gets besides Spec.Env and
// go-plugin's own handshake variables: the SDK's log level, and where temporary files
// (go-plugin's socket) go.
var pluginEnvBase = []string{strategywire.EnvLogLevel, "TMPDIR"}

// pluginEnv returns the environment of a plugin process: the daemon's values of
// pluginEnvBase and of the allowlisted names (those set), nothing else; go-plugin adds
// its handshake variables. When the daemon runs with the steady runtime monitor
// (daemon.sysmon = "steady": procs.SteadySysmon in its GODEBUG), the plugin does too
// (added to the allowlisted GODEBUG, if any): a plugin idles between the host's batches,
// and a parked monitor woken by every batch was a quarter of latency-fault's plugin CPU.
func pluginEnv(allow []string) []string {
	env := []string{}
	seen := map[string]bool{}
	godebug, hasGODEBUG := "", false
	for _, name := range append(pluginEnvBase[:len(pluginEnvBase):len(pluginEnvBase)], allow...) {
		if seen[name] {
			continue
		}
		seen[name] = true
		if v, ok := os.LookupEnv(name); ok && name == "GODEBUG" {
			godebug, hasGODEBUG = v, true
		} else if ok {
			env = append(env, name+"="+v)
		}
	}
	if slices.Contains(strings.Split(os.Getenv("GODEBUG"), ","), procs.SteadySysmon) {
		godebug, hasGODEBUG = procs.WithSteadySysmon(godebug), true
	}
	if hasGODEBUG {
		env = append(env, "GODEBUG="+godebug)
	}
	return env
}

// checkEnvNames reports names that cannot be environment variable names.
func checkEnvNames(names []string) error {
	var errs []error
	for _, n := range names {
		if n == "" || strings.ContainsAny(n, "=\x00") {
			errs = append(errs, fmt.Errorf("env: %q is not an environment variable name", n))
		}
	}
	return errors.Join(errs...)
}
