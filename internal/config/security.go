package config

import (
	"encoding/hex"
	"fmt"
	"strings"

	"github.com/producerd/producerd/internal/tomlx"
)

// Warnings returns the settings that weaken security and are allowed, one line each
// ("FILE:LINE: key KEY: ..."): tls_insecure_skip_verify = true, and every strategy with
// allow_insecure_path = true. The daemon logs them at every start and reload.
func (c *Config) Warnings() []string { return c.warnings }

func (c *Config) warnAt(d *tomlx.Decoder, key, format string, args ...any) {
	e := &tomlx.Error{File: d.File(), Line: d.Line(key), Key: key, Problem: fmt.Sprintf(format, args...)}
	c.warnings = append(c.warnings, e.Error())
}

// clientTLSKeys are the [client] keys that mean something only with tls = true.
var clientTLSKeys = []string{"tls_ca", "tls_server_name", "tls_insecure_skip_verify"}

// checkClientTLS refuses TLS settings without tls = true (the connections would be
// plaintext while the file reads as if they were not), and warns about
// tls_insecure_skip_verify.
func (c *Config) checkClientTLS(t *tomlx.Table, d *tomlx.Decoder) {
	if !c.Client.TLS {
		for _, k := range clientTLSKeys {
			if t.Has(k) {
				t.Errorf(k, "%s is set but tls is not true: connections to the brokers and NameServers would be plaintext; set tls = true, or remove %s", k, k)
			}
		}
		return
	}
	if c.Client.InsecureSkipVerify {
		c.warnAt(d, t.Key("tls_insecure_skip_verify"), "TLS certificates of the brokers and NameServers are not verified: anyone on the network path can read and alter messages")
	}
}

// decodeStrategyTrust reads the keys of a [strategy.NAME] table about trusting its
// plugin: sha256, allow_insecure_path and env.
func decodeStrategyTrust(t *tomlx.Table, s *Strategy) {
	if t.Str("sha256", &s.SHA256) {
		if b, err := hex.DecodeString(s.SHA256); err != nil || len(b) != 32 {
			t.Errorf("sha256", "%q is not a SHA-256 (64 hex digits, as printed by sha256sum)", s.SHA256)
		}
	}
	t.Bool("allow_insecure_path", &s.AllowInsecurePath)
	t.Strings("env", &s.Env)
	for _, name := range s.Env {
		if name == "" || strings.ContainsAny(name, "= \t\x00") {
			t.Errorf("env", "%q is not an environment variable name", name)
		}
	}
	if s.Builtin != "" {
		for _, k := range []string{"sha256", "allow_insecure_path"} {
			if t.Has(k) {
				t.Errorf(k, "%s applies to external plugins; built-in %s is part of producerd", k, s.Builtin)
			}
		}
	}
}
