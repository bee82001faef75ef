package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestSecretsNeverInErrors: whatever is wrong with the value of a secret key (admin
// token, client secret_key and security_token), the error names the key and never
// shows the value (review defect 7).
func TestSecretsNeverInErrors(t *testing.T) {
	t.Parallel()
	const secret = "98765432123"
	for _, key := range []string{"admin.token", "client.secret_key", "client.security_token"} {
		for _, value := range []string{
			secret,             // integer: a type error
			secret + ".5",      // float
			"[" + secret + "]", // array
			"{a = " + secret + "}",
			"0x" + secret + "fffffffffff", // out of range: a syntax error
			"abc" + secret,                // bare word: a syntax error
			`"` + secret + `\q"`,          // bad escape
			`"` + secret,                  // unterminated
			`"""` + secret,                // unterminated multi-line
		} {
			table, k, _ := strings.Cut(key, ".")
			src := "[[producer]]\n[client]\nname_servers = [\"127.0.0.1:9876\"]\naccess_key = \"ak\"\n"
			if table == "client" {
				src += k + " = " + value + "\n"
				if k == "security_token" {
					src += "secret_key = \"sk-ok\"\n"
				}
			} else {
				src += "secret_key = \"sk-ok\"\n[admin]\n" + k + " = " + value + "\n"
			}
			_, err := Parse("p.toml", []byte(src), t.TempDir())
			switch {
			case err == nil:
				t.Errorf("%s = %s: accepted", key, value)
			case strings.Contains(err.Error(), secret):
				t.Errorf("%s = %s: the error shows the secret: %v", key, value, err)
			case !strings.Contains(err.Error(), "p.toml:"):
				t.Errorf("%s = %s: the error names no line: %v", key, value, err)
			}
		}
	}
}

// TestEmptySecretsRefused: an empty secret_key, security_token or admin token is an
// error, not a signature with an empty key.
func TestEmptySecretsRefused(t *testing.T) {
	t.Parallel()
	base := "[[producer]]\n[client]\nname_servers = [\"127.0.0.1:9876\"]\n"
	for _, tc := range []struct{ keys, want string }{
		{"access_key = \"ak\"\nsecret_key = \"\"", "key client.secret_key: is empty"},
		{"access_key = \"ak\"\nsecret_key = \"  \"", "key client.secret_key: is empty"},
		{"access_key = \"ak\"\nsecret_key = \"sk\"\nsecurity_token = \"\"", "key client.security_token: is empty"},
		{"[admin]\ntoken = \"\"", "key admin.token: is empty"},
	} {
		_, err := Parse("p.toml", []byte(base+tc.keys+"\n"), t.TempDir())
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q: %v, want %q", tc.keys, err, tc.want)
		}
	}
}

// TestSecretKeyFileMode: a secret_key_file group or others can read is refused, like an
// admin token file; the error does not quote the secret.
func TestSecretKeyFileMode(t *testing.T) {
	t.Parallel()
	const secret = "sk-27182818284"
	for _, tc := range []struct {
		mode    os.FileMode
		wantErr string
	}{
		{0o600, ""},
		{0o400, ""},
		{0o644, "key client.secret_key_file: the secret key file \"sk\" is readable or writable by group or others (mode 0644)"},
		{0o640, "(mode 0640)"},
		{0o602, "(mode 0602)"},
	} {
		dir := t.TempDir()
		path := filepath.Join(dir, "sk")
		if err := os.WriteFile(path, []byte(secret+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(path, tc.mode); err != nil {
			t.Fatal(err)
		}
		src := "[[producer]]\n[client]\nname_servers = [\"127.0.0.1:9876\"]\naccess_key = \"ak\"\nsecret_key_file = \"sk\"\n"
		c, err := Parse("p.toml", []byte(src), dir)
		switch {
		case tc.wantErr == "" && err != nil:
			t.Errorf("mode %04o: %v", tc.mode, err)
		case tc.wantErr == "" && c.Client.ACL.SecretKey != secret:
			t.Errorf("mode %04o: secret %q", tc.mode, c.Client.ACL.SecretKey)
		case tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)):
			t.Errorf("mode %04o: %v, want %q", tc.mode, err, tc.wantErr)
		}
		if err != nil && strings.Contains(err.Error(), secret) {
			t.Errorf("mode %04o: the error quotes the secret: %v", tc.mode, err)
		}
	}
}
