package config

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestACLKeys(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "sk"), []byte("file-secret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("TEST_SK", "env-secret")
	base := "[[producer]]\n[client]\nname_servers = [\"127.0.0.1:9876\"]\n"
	for _, tc := range []struct {
		name, keys, secret, token, err string
	}{
		{"none", "", "", "", ""},
		{"inline", "access_key = \"ak\"\nsecret_key = \"inline-secret\"\nsecurity_token = \"tok\"", "inline-secret", "tok", ""},
		{"file", "access_key = \"ak\"\nsecret_key_file = \"sk\"", "file-secret", "", ""},
		{"env", "access_key = \"ak\"\nsecret_key_env = \"TEST_SK\"", "env-secret", "", ""},
		{"two sources", "access_key = \"ak\"\nsecret_key = \"inline-secret\"\nsecret_key_env = \"TEST_SK\"", "", "", "exactly one"},
		{"no secret", "access_key = \"ak\"", "", "", "needs one of"},
		{"no access key", "secret_key = \"inline-secret\"", "", "", "client.access_key"},
		{"unset env", "access_key = \"ak\"\nsecret_key_env = \"TEST_UNSET_SK\"", "", "", "unset or empty"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := Parse("t.toml", []byte(base+tc.keys+"\n"), dir)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("error %v, want %q", err, tc.err)
				}
				if strings.Contains(err.Error(), "secret\"") || strings.Contains(err.Error(), "inline-secret") || strings.Contains(err.Error(), "env-secret") {
					t.Errorf("the error shows a secret: %v", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			acl := c.Client.ACL
			if tc.secret == "" {
				if acl != nil {
					t.Errorf("ACL %v without keys", acl)
				}
				return
			}
			if acl == nil || acl.AccessKey != "ak" || acl.SecretKey != tc.secret || acl.SecurityToken != tc.token {
				t.Fatalf("ACL %+v", acl)
			}
			if s := fmt.Sprintf("%v %+v", c.Client, c.Client); strings.Contains(s, tc.secret) {
				t.Errorf("printing the client config shows the secret: %s", s)
			}
		})
	}
}
