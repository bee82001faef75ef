package config

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestListenerOverlap: two listeners that could not both bind are refused at validate,
// not only at run (review defect 13): same port with 127.0.0.1 and localhost, a
// wildcard (0.0.0.0, [::], "") and any host, one IP spelled twice. Listeners that bind
// apart (127.0.0.1 and 127.0.0.2, 127.0.0.1 and [::1], other ports, port 0) pass.
func TestListenerOverlap(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		grpc, http string
		overlap    bool
	}{
		{"127.0.0.1:7480", "localhost:7480", true},
		{"localhost:7480", "127.0.0.1:7480", true},
		{"127.0.0.1:7480", "0.0.0.0:7480", true},
		{"0.0.0.0:7480", "127.0.0.1:7480", true},
		{"[::]:7480", "127.0.0.1:7480", true},
		{"[::1]:7480", "[::]:7480", true},
		{":7480", "[::1]:7480", true},
		{"[::1]:7480", "[0:0:0:0:0:0:0:1]:7480", true},
		{"127.0.0.1:7480", "127.0.0.1:07480", true},
		{"127.0.0.1:7480", "127.0.0.2:7480", false},
		{"127.0.0.1:7480", "[::1]:7480", false},
		{"localhost:7480", "[::1]:7480", false},
		{"0.0.0.0:7480", "0.0.0.0:7481", false},
		{"0.0.0.0:0", "127.0.0.1:0", false},
	} {
		src := fmt.Sprintf("[ingress]\ngrpc = %q\nhttp = %q\ninsecure = true\n[client]\nname_servers = [\"127.0.0.1:9876\"]\n[[producer]]\n", tc.grpc, tc.http)
		_, err := Parse("p.toml", []byte(src), t.TempDir())
		switch {
		case tc.overlap && (err == nil || !strings.Contains(err.Error(), "p.toml:3: key ingress.http: ")):
			t.Errorf("grpc %s, http %s: %v, want an error at ingress.http", tc.grpc, tc.http, err)
		case !tc.overlap && err != nil:
			t.Errorf("grpc %s, http %s: %v", tc.grpc, tc.http, err)
		}
	}
}

// TestNameServerPort: a NameServer port outside 1..65535 is refused.
func TestNameServerPort(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		addr string
		ok   bool
	}{
		{"127.0.0.1:9876", true},
		{"ns.example:65535", true},
		{"[::1]:1", true},
		{"127.0.0.1:99999", false},
		{"127.0.0.1:0", false},
		{"127.0.0.1:-1", false},
		{"127.0.0.1:http", false},
	} {
		src := fmt.Sprintf("[client]\nname_servers = [\"127.0.0.1:9876\", %q]\n[[producer]]\n", tc.addr)
		_, err := Parse("p.toml", []byte(src), t.TempDir())
		if tc.ok != (err == nil) {
			t.Errorf("%s: %v", tc.addr, err)
		}
		if err != nil && !strings.Contains(err.Error(), "key client.name_servers[1]: invalid port") {
			t.Errorf("%s: %v", tc.addr, err)
		}
	}
}

// TestWasmNeedsNoExecBit: a WebAssembly module is read, not executed: mode 0644 is
// fine; a plugin binary without an exec bit is still refused.
func TestWasmNeedsNoExecBit(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	for _, name := range []string{"s.wasm", "plugin-bin"} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte("\x00asm\x01\x00\x00\x00"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	src := "[strategy.w]\nplugin = %q\n[client]\nname_servers = [\"127.0.0.1:9876\"]\n[[producer]]\n"
	if _, err := Parse("p.toml", []byte(fmt.Sprintf(src, "s.wasm")), dir); err != nil {
		t.Errorf("0644 module: %v", err)
	}
	if _, err := Parse("p.toml", []byte(fmt.Sprintf(src, "plugin-bin")), dir); err == nil || !strings.Contains(err.Error(), "is not executable") {
		t.Errorf("0644 binary: %v", err)
	}
}
