package host

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/producerd/producerd/internal/procs"
	"github.com/producerd/producerd/internal/strategywire"
	"github.com/producerd/producerd/internal/wasmtest"
	"github.com/producerd/producerd/plugins/sdk"
)

// envDumpVar names the file the "envdump" plugin mode writes its environment and open
// descriptors to.
const envDumpVar = "PRODUCERD_TEST_ENV_DUMP"

// dumpEnv writes a line "env NAME" per environment variable, the environment itself,
// then a line "fd N -> TARGET" per open descriptor, to the file named by envDumpVar (when it is set).
func dumpEnv() {
	path := os.Getenv(envDumpVar)
	if path == "" {
		return
	}
	var b strings.Builder
	for _, kv := range os.Environ() {
		k, _, _ := strings.Cut(kv, "=")
		fmt.Fprintf(&b, "env %s\n", k)
	}
	for _, kv := range os.Environ() {
		fmt.Fprintln(&b, kv)
	}
	if entries, err := os.ReadDir("/proc/self/fd"); err == nil {
		for _, e := range entries {
			target, _ := os.Readlink("/proc/self/fd/" + e.Name())
			fmt.Fprintf(&b, "fd %s -> %s\n", e.Name(), target)
		}
	}
	_ = os.WriteFile(path, []byte(b.String()), 0o600)
}

// TestPluginEnvironmentAndDescriptors: a plugin process gets only the allowlisted
// variables (and go-plugin's), none of the daemon's secrets, and none of its open
// descriptors, even one opened without close-on-exec.
func TestPluginEnvironmentAndDescriptors(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("reads /proc")
	}
	dir := t.TempDir()
	dump := filepath.Join(dir, "dump")
	secrets := map[string]string{
		"PRODUCERD_ADMIN_TOKEN": "admin-token-7f3a9c",
		"AWS_SECRET_ACCESS_KEY": "aws-secret-51be02",
	}
	for k, v := range secrets {
		t.Setenv(k, v)
	}
	t.Setenv(envDumpVar, dump)
	t.Setenv("PRODUCERD_TEST_ALLOWED", "visible")
	leak := filepath.Join(dir, "leaky-descriptor")
	if err := os.WriteFile(leak, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	fd, err := syscall.Open(leak, syscall.O_RDONLY, 0) // no O_CLOEXEC, on purpose
	if err != nil {
		t.Fatal(err)
	}
	defer syscall.Close(fd)

	h, _ := newHost(t, nil)
	spec := Spec{Plugin: scriptPlugin(t, "envdump"), Env: []string{envDumpVar, "PRODUCERD_TEST_ALLOWED", "NOT_SET_ANYWHERE"}}
	if err := h.Start(context.Background(), spec); err != nil {
		t.Fatal(err)
	}
	var got string
	waitFor(t, "the plugin's dump", 20*time.Second, func() bool {
		b, err := os.ReadFile(dump)
		got = string(b)
		return err == nil && strings.Contains(got, "fd ")
	})
	for k, v := range secrets {
		if strings.Contains(got, v) || strings.Contains(got, k+"=") {
			t.Errorf("the plugin's environment holds %s", k)
		}
	}
	for _, want := range []string{"PRODUCERD_TEST_ALLOWED=visible\n", envDumpVar + "=", strategywire.Handshake.MagicCookieKey + "="} {
		if !strings.Contains(got, want) {
			t.Errorf("the plugin's environment lacks %q", want)
		}
	}
	for _, line := range strings.Split(got, "\n") {
		if k, ok := strings.CutPrefix(line, "env "); ok && !allowedInPlugin(k) {
			t.Errorf("unexpected variable in the plugin's environment: %s", k)
		}
		if strings.HasPrefix(line, "fd ") && strings.HasSuffix(line, leak) {
			t.Errorf("the plugin inherited the daemon's descriptor: %s", line)
		}
	}
	if t.Failed() {
		t.Logf("plugin dump:\n%s", got)
	}
}

// allowedInPlugin: the variables a plugin may see in TestPluginEnvironmentAndDescriptors.
func allowedInPlugin(k string) bool {
	switch k {
	case envDumpVar, "PRODUCERD_TEST_ALLOWED", "TMPDIR", "GODEBUG", strategywire.EnvLogLevel, strategywire.Handshake.MagicCookieKey:
		return true
	}
	// go-plugin's handshake, and what /bin/sh (the test's script plugin) sets itself.
	return strings.HasPrefix(k, "PLUGIN_") || k == "PWD" || k == "SHLVL" || k == "_" || k == "OLDPWD"
}

// TestUntrustedPluginRefused: a plugin that someone other than its owner could
// replace is refused with ErrUntrustedPlugin (the strategy decides in-process, mode
// failed), unless AllowInsecurePath.
func TestUntrustedPluginRefused(t *testing.T) {
	for _, tc := range []struct {
		name   string
		break_ func(t *testing.T, path string)
		want   string
	}{
		{"group-writable file", func(t *testing.T, p string) { chmod(t, p, 0o775) }, "writable by its group or others"},
		{"world-writable directory", func(t *testing.T, p string) { chmod(t, filepath.Dir(p), 0o777) }, "directory"},
		{"file of another user", func(t *testing.T, p string) { chown(t, p, 65534) }, "belongs to uid 65534"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := scriptPlugin(t, "roundrobin")
			tc.break_(t, path)
			h, _ := newHost(t, nil)
			err := h.Start(context.Background(), Spec{Plugin: path})
			if !errors.Is(err, ErrUntrustedPlugin) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Start = %v, want ErrUntrustedPlugin mentioning %q", err, tc.want)
			}
			waitFor(t, "mode failed", 10*time.Second, func() bool { return h.Status().Mode == ModeFailed })
			if st := h.Status(); !strings.Contains(st.LastError, "allow_insecure_path") {
				t.Fatalf("LastError %q does not say how to override", st.LastError)
			}
			decideAll(t, h, 10)

			h2, _ := newHost(t, nil)
			if err := h2.Start(context.Background(), Spec{Plugin: path, AllowInsecurePath: true}); err != nil {
				t.Fatalf("Start with AllowInsecurePath = %v", err)
			}
		})
	}
}

// TestPluginReplacedBeforeRestart: a plugin that passed its checks at start and is
// then replaced (a wrong SHA-256 pin) or made replaceable (group-writable) is refused
// when it restarts after a crash; the fallback keeps deciding.
func TestPluginReplacedBeforeRestart(t *testing.T) {
	for _, tc := range []struct {
		name   string
		tamper func(t *testing.T, path string)
		want   error
	}{
		{"swapped binary", func(t *testing.T, p string) {
			b, err := os.ReadFile(p)
			if err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(p, append(b, "# swapped\n"...), 0o755); err != nil {
				t.Fatal(err)
			}
		}, ErrChecksumMismatch},
		{"made group-writable", func(t *testing.T, p string) { chmod(t, p, 0o775) }, ErrUntrustedPlugin},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := scriptPlugin(t, "roundrobin")
			b, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			sum := sha256.Sum256(b)
			h, logs := newHost(t, nil)
			if err := h.Start(context.Background(), Spec{Plugin: path, SHA256: hex.EncodeToString(sum[:])}); err != nil {
				t.Fatal(err)
			}
			pid := h.Status().PID
			if pid == 0 {
				t.Fatal("no plugin process")
			}
			tc.tamper(t, path)
			if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
				t.Fatal(err)
			}
			waitFor(t, "mode failed", 20*time.Second, func() bool { return h.Status().Mode == ModeFailed })
			st := h.Status()
			if st.Restarts != 0 || st.PID != 0 {
				t.Fatalf("the tampered plugin was restarted: %+v", st)
			}
			if !strings.Contains(logs.String(), tc.want.Error()) {
				t.Fatalf("the log does not say %q", tc.want)
			}
			decideAll(t, h, 10)
		})
	}
}

// decideAll makes n decisions through h; each must yield a queue.
func decideAll(t *testing.T, h *Host, n int) {
	t.Helper()
	sel := &sdk.Selection{Topic: "t", RouteVersion: 1, Queues: []sdk.Queue{{Broker: "a"}, {Broker: "b"}}}
	for range n {
		if i, err := h.Strategy().Select(context.Background(), sel); err != nil || i < 0 || i > 1 {
			t.Fatalf("fallback decision = %d, %v", i, err)
		}
	}
}

func chmod(t *testing.T, p string, mode os.FileMode) {
	t.Helper()
	if err := os.Chmod(p, mode); err != nil {
		t.Fatal(err)
	}
}

func chown(t *testing.T, p string, uid int) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("changing a file's owner needs root")
	}
	if err := os.Chown(p, uid, -1); err != nil {
		t.Fatal(err)
	}
}

// TestUntrustedWasmRefused: a WebAssembly module in a directory others can write is
// refused at Start (nothing changes), unless AllowInsecurePath.
func TestUntrustedWasmRefused(t *testing.T) {
	dir := t.TempDir()
	path, err := wasmtest.Write(dir, wasmtest.OK)
	if err != nil {
		t.Fatal(err)
	}
	chmod(t, dir, 0o777)
	h, _ := newHost(t, nil)
	if err := h.Start(context.Background(), Spec{Plugin: path}); !errors.Is(err, ErrUntrustedPlugin) {
		t.Fatalf("Start = %v, want ErrUntrustedPlugin", err)
	}
	if st := h.Status(); st.Generation != 0 {
		t.Fatalf("a refused module was installed: %+v", st)
	}
	if err := h.Start(context.Background(), Spec{Plugin: path, AllowInsecurePath: true}); err != nil {
		t.Fatalf("Start with AllowInsecurePath = %v", err)
	}
}

// TestPluginEnvGODEBUG: a plugin process gets the daemon's GODEBUG only when the
// allowlist names it, and the steady runtime monitor when the daemon runs with it.
func TestPluginEnvGODEBUG(t *testing.T) {
	godebug := func(env []string) []string {
		var out []string
		for _, kv := range env {
			if v, ok := strings.CutPrefix(kv, "GODEBUG="); ok {
				out = append(out, v)
			}
		}
		return out
	}
	for _, tt := range []struct {
		daemon string
		allow  []string
		want   []string
	}{
		{"gctrace=0", nil, nil},
		{"gctrace=0", []string{"GODEBUG"}, []string{"gctrace=0"}},
		{"gctrace=0," + procs.SteadySysmon, nil, []string{procs.SteadySysmon}},
		{"gctrace=0," + procs.SteadySysmon, []string{"GODEBUG"}, []string{"gctrace=0," + procs.SteadySysmon}},
		{"schedtrace=1000", []string{"GODEBUG"}, []string{"schedtrace=1000"}},
	} {
		t.Setenv("GODEBUG", tt.daemon)
		if got := godebug(pluginEnv(tt.allow)); !slices.Equal(got, tt.want) {
			t.Errorf("daemon GODEBUG %q, allow %q: plugin GODEBUG %q, want %q", tt.daemon, tt.allow, got, tt.want)
		}
	}
}
