package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestTokenFileMode: a token file group or others can read is refused, and no error
// quotes the token (issue 13).
func TestTokenFileMode(t *testing.T) {
	t.Parallel()
	const secret = "31415926535"
	for _, tc := range []struct {
		mode    os.FileMode
		wantErr string
	}{
		{0o600, ""},
		{0o400, ""},
		{0o640, "readable or writable by group or others (mode 0640)"},
		{0o604, "readable or writable by group or others (mode 0604)"},
	} {
		dir := t.TempDir()
		tok := filepath.Join(dir, "token")
		if err := os.WriteFile(tok, []byte(secret+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(tok, tc.mode); err != nil {
			t.Fatal(err)
		}
		src := "[admin]\ntoken_file = \"token\"\n[client]\nname_servers = [\"127.0.0.1:9876\"]\n[[producer]]\n"
		c, err := Parse("p.toml", []byte(src), dir)
		switch {
		case tc.wantErr == "" && err != nil:
			t.Errorf("mode %04o: %v", tc.mode, err)
		case tc.wantErr == "" && (c.Admin.Token != secret || c.Admin.TokenFile != tok):
			t.Errorf("mode %04o: token %q from %q", tc.mode, c.Admin.Token, c.Admin.TokenFile)
		case tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)):
			t.Errorf("mode %04o: %v, want %q", tc.mode, err, tc.wantErr)
		}
		if err != nil && strings.Contains(err.Error(), secret) {
			t.Errorf("mode %04o: the error quotes the token: %v", tc.mode, err)
		}
	}
}

// TestLimitsDefaults: the request limit follows the largest max_message_size.
func TestLimitsDefaults(t *testing.T) {
	t.Parallel()
	src := "[client]\nname_servers = [\"127.0.0.1:9876\"]\n[[producer]]\ngroup = \"a\"\n[[producer]]\ngroup = \"b\"\nmax_message_size = \"8MiB\"\n"
	c, err := Parse("p.toml", []byte(src), t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	if want := int64(2*8<<20 + 64<<10); c.Limits.MaxRequestSize != want {
		t.Errorf("max_request_size = %d, want %d", c.Limits.MaxRequestSize, want)
	}
	if c.Limits.MaxConnections != DefaultMaxConnections || c.Limits.ReadTimeout != DefaultReadTimeout || c.Limits.MaxTopics != DefaultMaxTopics {
		t.Errorf("limits = %+v", c.Limits)
	}
}
