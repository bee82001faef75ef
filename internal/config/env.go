package config

import (
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/producerd/producerd/internal/tomlx"
)

// EnvPrefix starts every environment override: PRODUCERD_<SECTION>_<KEY> sets the key
// of a section ([daemon], [ingress], [admin], [client], [limits], [readiness],
// [tracing]), for
// example PRODUCERD_CLIENT_NAME_SERVERS=10.0.0.1:9876,10.0.0.2:9876 or
// PRODUCERD_DAEMON_LOG_LEVEL=debug; PRODUCERD_PRODUCER_<N>_<KEY> sets a key of the N-th
// [[producer]] (from 0) and PRODUCERD_STRATEGY_<NAME>_<KEY> one of [strategy.NAME]
// (NAME upper-cased, "-" as "_"). A variable overrides the file. Values are written as
// on a command line: strings unquoted, lists comma-separated (or a TOML array),
// durations "3s", sizes "4MiB". Secrets come from a variable directly
// (PRODUCERD_ADMIN_TOKEN) or from a file (PRODUCERD_ADMIN_TOKEN_FILE,
// PRODUCERD_CLIENT_SECRET_KEY_FILE); setting one form drops the other from the file.
// Variables of other sections (PRODUCERD_ADDR, the CLI's) are not config keys.
const EnvPrefix = "PRODUCERD_"

// sections are the top-level tables an override may name.
var sections = []string{"daemon", "ingress", "admin", "client", "limits", "readiness", "tracing"}

// exclusive are the keys that give one secret in different forms: a variable setting
// one removes the others the file set.
var exclusive = [][]string{{"token", "token_file"}, {"secret_key", "secret_key_file", "secret_key_env"}, {"security_token", "security_token_env"}}

// Source is a key of the effective configuration.
type Source struct {
	// Key is the key path: "client.name_servers", "producer[0].retries".
	Key string
	// Value is the value in TOML syntax; secrets read "(hidden)".
	Value string
	// From is "FILE:LINE", "env NAME" or "default".
	From string
}

// applyEnv writes the overrides of environ into the tree and returns the key path of
// each override with its variable's name.
func applyEnv(file string, tree map[string]any, environ []string) (map[string]string, error) {
	out := map[string]string{}
	var errs []error
	// An absent section decodes as an empty one, so Sources lists its defaults too.
	for _, s := range sections {
		if _, ok := tree[s]; !ok && s != "client" {
			tree[s] = map[string]any{}
		}
	}
	names := slices.Clone(environ)
	slices.Sort(names)
	for _, kv := range names {
		name, val, ok := strings.Cut(kv, "=")
		if !ok || !strings.HasPrefix(name, EnvPrefix) {
			continue
		}
		table, key, path, err := envTarget(tree, strings.ToLower(strings.TrimPrefix(name, EnvPrefix)))
		if err != nil {
			errs = append(errs, &tomlx.Error{File: "env " + name, Problem: err.Error()})
			continue
		}
		if table == nil {
			continue
		}
		for _, group := range exclusive {
			if slices.Contains(group, key) {
				for _, other := range group {
					if other != key {
						delete(table, other)
					}
				}
			}
		}
		table[key] = tomlx.EnvString(val)
		out[path] = name
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return out, nil
}

// envTarget finds the table and key a lower-cased variable name (without the prefix)
// overrides; a nil table for a name that is no config key.
func envTarget(tree map[string]any, name string) (map[string]any, string, string, error) {
	section, rest, _ := strings.Cut(name, "_")
	switch {
	case slices.Contains(sections, section):
		if rest == "" {
			return nil, "", "", nil
		}
		t, ok := tree[section].(map[string]any)
		if !ok {
			t = map[string]any{}
			tree[section] = t
		}
		return t, rest, section + "." + rest, nil
	case section == "producer":
		idx, key, _ := strings.Cut(rest, "_")
		n, err := strconv.Atoi(idx)
		ps, _ := tree["producer"].([]map[string]any)
		if err != nil || key == "" {
			return nil, "", "", fmt.Errorf("want PRODUCERD_PRODUCER_<N>_<KEY>, N the [[producer]]'s index from 0")
		}
		if n < 0 || n >= len(ps) {
			return nil, "", "", fmt.Errorf("the file has %d [[producer]] table(s); there is no index %d", len(ps), n)
		}
		return ps[n], key, fmt.Sprintf("producer[%d].%s", n, key), nil
	case section == "strategy":
		strategies, _ := tree["strategy"].(map[string]any)
		names := make([]string, 0, len(strategies))
		for s := range strategies {
			names = append(names, s)
		}
		slices.Sort(names)
		for _, s := range names {
			norm := strings.ToLower(strings.ReplaceAll(s, "-", "_")) + "_"
			if t, ok := strategies[s].(map[string]any); ok && strings.HasPrefix(rest, norm) && len(rest) > len(norm) {
				return t, rest[len(norm):], "strategy." + s + "." + rest[len(norm):], nil
			}
		}
		return nil, "", "", fmt.Errorf("no [strategy.NAME] in the file matches (strategies: %s)", strings.Join(names, ", "))
	}
	return nil, "", "", nil
}

// envErrors rewrites the problems at overridden keys to name the variable.
func envErrors(err error, overrides map[string]string) error {
	if len(overrides) == 0 {
		return err
	}
	var list []error
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		list = j.Unwrap()
	} else {
		list = []error{err}
	}
	out := make([]error, len(list))
	for i, e := range list {
		out[i] = e
		var te *tomlx.Error
		if errors.As(e, &te) {
			if name, ok := overrides[te.Key]; ok {
				out[i] = &tomlx.Error{File: "env " + name, Key: te.Key, Problem: te.Problem}
			}
		}
	}
	return errors.Join(out...)
}

// sources lists the keys the decoder read with where each value came from.
func sources(d *tomlx.Decoder, overrides map[string]string) []Source {
	var out []Source
	for _, v := range d.Values() {
		s := Source{Key: v.Path, Value: v.Value, From: "default"}
		switch name, ok := overrides[v.Path]; {
		case ok:
			s.From = "env " + name
		case v.Set:
			s.From = d.File()
			if line := d.Line(v.Path); line > 0 {
				s.From += ":" + strconv.Itoa(line)
			}
		}
		if isSecretKey(v.Path) && v.Value != `""` { // shown as hidden
			s.Value = "(hidden)"
		}
		out = append(out, s)
	}
	return out
}

// plain turns a value from the environment into the string it is, for the keys read
// with Table.Get.
func plain(v any) any {
	if s, ok := v.(tomlx.EnvString); ok {
		return string(s)
	}
	return v
}
