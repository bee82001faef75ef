package config

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

const envBase = `
[admin]
token = "from-the-file"

[client]
name_servers = ["127.0.0.1:9876"]

[strategy.my-rr]
plugin = "builtin:roundrobin"

[[producer]]
group = "g1"
retries = 2
`

func TestEnvOverrides(t *testing.T) {
	t.Parallel()
	tokenFile := filepath.Join(t.TempDir(), "token")
	if err := os.WriteFile(tokenFile, []byte("s3cret-from-file\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	env := []string{
		"PRODUCERD_CLIENT_NAME_SERVERS=10.0.0.1:9876, 10.0.0.2:9876",
		"PRODUCERD_DAEMON_LOG_LEVEL=debug",
		"PRODUCERD_DAEMON_MAX_INFLIGHT_MESSAGES=77",
		"PRODUCERD_DAEMON_MAX_INFLIGHT_BYTES=8MiB",
		"PRODUCERD_DAEMON_SHUTDOWN_TIMEOUT=4s",
		"PRODUCERD_ADMIN_PPROF=true",
		"PRODUCERD_ADMIN_TOKEN_FILE=" + tokenFile,
		"PRODUCERD_CLIENT_INSTANCE_NAME=12345",
		"PRODUCERD_LIMITS_MAX_TOPICS=9",
		"PRODUCERD_READINESS_TOPICS=[\"A\", \"B\"]",
		"PRODUCERD_PRODUCER_0_RETRIES=5",
		"PRODUCERD_STRATEGY_MY_RR_ENV=LANG,TZ",
		"PRODUCERD_ADDR=127.0.0.1:1", // the CLI's, not a config key
		"PRODUCERD_ADMIN=127.0.0.1:2",
		"HOME=/root",
	}
	c, err := ParseEnv("p.toml", []byte(envBase), ".", env)
	if err != nil {
		t.Fatal(err)
	}
	p, _ := c.Producer("g1")
	for _, check := range []struct {
		name      string
		got, want any
	}{
		{"name_servers", strings.Join(c.Client.NameServers, "|"), "10.0.0.1:9876|10.0.0.2:9876"},
		{"log_level", c.Daemon.LogLevel, "debug"},
		{"max_inflight_messages", c.Daemon.MaxInflightMessages, 77},
		{"max_inflight_bytes", c.Daemon.MaxInflightBytes, int64(8 << 20)},
		{"shutdown_timeout", c.Daemon.ShutdownTimeout, 4 * time.Second},
		{"pprof", c.Admin.Pprof, true},
		{"token from the file the variable names", c.Admin.Token, "s3cret-from-file"},
		{"a number-like string stays a string", c.Client.InstanceName, "12345"},
		{"max_topics", c.Limits.MaxTopics, 9},
		{"readiness topics (TOML array)", strings.Join(c.Readiness.Topics, "|"), "A|B"},
		{"producer[0].retries", p.Retries, 5},
		{"strategy env", strings.Join(c.Strategies["my-rr"].Env, "|"), "LANG|TZ"},
	} {
		if check.got != check.want {
			t.Errorf("%s = %#v, want %#v", check.name, check.got, check.want)
		}
	}
	from := map[string]Source{}
	for _, s := range c.Sources {
		from[s.Key] = s
	}
	for key, want := range map[string]string{
		"client.name_servers":       "env PRODUCERD_CLIENT_NAME_SERVERS",
		"producer[0].retries":       "env PRODUCERD_PRODUCER_0_RETRIES",
		"producer[0].group":         "p.toml:12",
		"ingress.grpc":              "default",
		"limits.read_timeout":       "default",
		"admin.token_file":          "env PRODUCERD_ADMIN_TOKEN_FILE",
		"strategy.my-rr.env":        "env PRODUCERD_STRATEGY_MY_RR_ENV",
		"strategy.my-rr.plugin":     "p.toml:9",
		"daemon.max_inflight_bytes": "env PRODUCERD_DAEMON_MAX_INFLIGHT_BYTES",
	} {
		if got := from[key].From; got != want {
			t.Errorf("source of %s = %q, want %q", key, got, want)
		}
	}
	for _, s := range c.Sources {
		if strings.Contains(s.Value, "s3cret") || strings.Contains(s.Value, "from-the-file") {
			t.Errorf("a secret in Sources: %+v", s)
		}
	}
}

func TestEnvTokenHidden(t *testing.T) {
	t.Parallel()
	c, err := ParseEnv("p.toml", []byte(envBase), ".", []string{"PRODUCERD_ADMIN_TOKEN=987654"})
	if err != nil {
		t.Fatal(err)
	}
	if c.Admin.Token != "987654" {
		t.Fatalf("token %q", c.Admin.Token)
	}
	i := slices.IndexFunc(c.Sources, func(s Source) bool { return s.Key == "admin.token" })
	if i < 0 || c.Sources[i].Value != "(hidden)" || c.Sources[i].From != "env PRODUCERD_ADMIN_TOKEN" {
		t.Fatalf("admin.token source: %+v", c.Sources)
	}
}

// TestEnvErrors: a bad value names its variable, an unknown key of a known section is
// refused like in the file, and a producer index that does not exist is refused.
func TestEnvErrors(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ env, want string }{
		{"PRODUCERD_DAEMON_MAX_INFLIGHT_MESSAGES=many", "env PRODUCERD_DAEMON_MAX_INFLIGHT_MESSAGES: key daemon.max_inflight_messages: expected an integer"},
		{"PRODUCERD_DAEMON_LOG_LEVEL=loud", `env PRODUCERD_DAEMON_LOG_LEVEL: key daemon.log_level: "loud" is not one of`},
		{"PRODUCERD_CLIENT_NAME_SERVER=x:1", "env PRODUCERD_CLIENT_NAME_SERVER: key client.name_server: unknown key"},
		{"PRODUCERD_PRODUCER_3_RETRIES=1", "env PRODUCERD_PRODUCER_3_RETRIES: the file has 1 [[producer]] table(s); there is no index 3"},
		{"PRODUCERD_STRATEGY_NOPE_PLUGIN=x", "env PRODUCERD_STRATEGY_NOPE_PLUGIN: no [strategy.NAME] in the file matches"},
		{"PRODUCERD_ADMIN_PPROF=maybe", "env PRODUCERD_ADMIN_PPROF: key admin.pprof: expected a boolean"},
	} {
		_, err := ParseEnv("p.toml", []byte(envBase), ".", []string{tc.env})
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want %q", tc.env, err, tc.want)
		}
	}
}
