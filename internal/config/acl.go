package config

import (
	"os"

	"github.com/producerd/producerd/internal/tomlx"
	"github.com/producerd/producerd/remoting"
)

// decodeACL reads the [client] ACL keys: access_key, then the secret from exactly one of
// secret_key, secret_key_file (relative to the config's directory) or secret_key_env, and
// an optional security_token or security_token_env. Errors never quote a secret.
func decodeACL(t *tomlx.Table, dir string) *remoting.Credentials {
	var c remoting.Credentials
	hasAK := t.Str("access_key", &c.AccessKey)
	var file, env string
	sources := 0
	if t.Has("secret_key") {
		sources++
		secretStr(t, "secret_key", &c.SecretKey)
	}
	if t.Str("secret_key_file", &file) {
		sources++
		c.SecretKey = readSecretFile(t, "secret_key_file", "secret key", resolve(dir, file), file)
	}
	if t.Str("secret_key_env", &env) {
		sources++
		if c.SecretKey = os.Getenv(env); c.SecretKey == "" {
			t.Errorf("secret_key_env", "the environment variable %s is unset or empty", env)
		}
	}
	var tokenEnv string
	secretStr(t, "security_token", &c.SecurityToken)
	if t.Str("security_token_env", &tokenEnv) {
		if t.Has("security_token") {
			t.Errorf("security_token_env", "set security_token or security_token_env, not both")
		} else if c.SecurityToken = os.Getenv(tokenEnv); c.SecurityToken == "" {
			t.Errorf("security_token_env", "the environment variable %s is unset or empty", tokenEnv)
		}
	}
	switch {
	case !hasAK && sources == 0 && !t.Has("security_token") && tokenEnv == "":
		return nil
	case !hasAK || c.AccessKey == "":
		t.Errorf("access_key", "required with secret_key, secret_key_file, secret_key_env or a security token")
	case sources == 0:
		t.Errorf("access_key", "needs one of secret_key, secret_key_file or secret_key_env")
	case sources > 1:
		t.Errorf("access_key", "set exactly one of secret_key, secret_key_file and secret_key_env")
	}
	return &c
}
