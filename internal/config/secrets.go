package config

import (
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/producerd/producerd/internal/tomlx"
)

// secretNames are the keys whose values are secrets, in whatever table: admin token,
// client secret_key and security_token. No error quotes their values: not a type error,
// not a syntax error, not a range error; Sources shows them hidden.
var secretNames = map[string]bool{"token": true, "secret_key": true, "security_token": true}

// isSecretKey reports whether the key path ("client.secret_key") names a secret.
func isSecretKey(path string) bool {
	if i := strings.LastIndexByte(path, '.'); i >= 0 {
		path = path[i+1:]
	}
	return secretNames[strings.Trim(path, `"' `)]
}

// secretStr reads the secret k: a non-empty string. Its problems name the key and the
// value's type, never the value.
func secretStr(t *tomlx.Table, k string, dst *string) bool {
	v, ok := t.Get(k)
	if !ok {
		return false
	}
	v = plain(v) // a value from the environment
	s, ok := v.(string)
	switch {
	case !ok:
		t.Errorf(k, "expected a string, got %s (the value is not shown: it is a secret)", typeOnly(v))
		return false
	case strings.TrimSpace(s) == "":
		t.Errorf(k, "is empty")
		return false
	}
	*dst = s
	return true
}

// typeOnly names a decoded TOML value's type without its value.
func typeOnly(v any) string {
	name := tomlx.TypeName(v)
	if i := strings.IndexByte(name, ' '); i >= 0 {
		return name[:i]
	}
	return name
}

// readSecretFile reads a secret from the file at path for the key k (token_file,
// secret_key_file), refusing a file that group or others may read or write, as ssh
// refuses such a private key: the secret would not be one.
func readSecretFile(t *tomlx.Table, k, what, path, asWritten string) string {
	fi, err := os.Stat(path)
	if err != nil {
		t.Errorf(k, "cannot read the %s file %q: %v", what, asWritten, errors.Unwrap(err))
		return ""
	}
	if fi.Mode().Perm()&0o077 != 0 {
		t.Errorf(k, "the %s file %q is readable or writable by group or others (mode %04o): chmod 600 it", what, asWritten, fi.Mode().Perm())
		return ""
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Errorf(k, "cannot read the %s file %q: %v", what, asWritten, errors.Unwrap(err))
		return ""
	}
	s := strings.TrimSpace(string(b))
	if s == "" {
		t.Errorf(k, "the %s file %q is empty", what, asWritten)
	}
	return s
}

// redactSecretErrors is the safety net behind secretStr: a problem recorded at a secret
// key by any other check has the value's text replaced by its type. err is what
// Decoder.Err returned; root is the decoded file.
func redactSecretErrors(err error, root map[string]any) error {
	var errs []error
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		errs = j.Unwrap()
	} else {
		errs = []error{err}
	}
	for _, e := range errs {
		te, ok := e.(*tomlx.Error)
		if !ok || !isSecretKey(te.Key) {
			continue
		}
		v, found := lookup(root, te.Key)
		if !found {
			continue
		}
		for _, shown := range []string{tomlx.TypeName(v), fmt.Sprint(v), fmt.Sprintf("%q", v)} {
			if shown != "" && strings.Contains(te.Problem, shown) {
				te.Problem = strings.ReplaceAll(te.Problem, shown, typeOnly(v)+" (the value is not shown: it is a secret)")
			}
		}
	}
	return err
}

// lookup finds the value at a key path of plain table names ("client.secret_key").
func lookup(root map[string]any, path string) (any, bool) {
	parts := strings.Split(path, ".")
	m := root
	for i, p := range parts {
		v, ok := m[p]
		if !ok {
			return nil, false
		}
		if i == len(parts)-1 {
			return v, true
		}
		if m, ok = v.(map[string]any); !ok {
			return nil, false
		}
	}
	return nil, false
}

// redactSecret drops the parser's text from a syntax error at a secret key (its key,
// or the key assigned on its line, is one of secretNames), since that text may quote
// the secret itself.
func redactSecret(err error, data []byte) error {
	var te *tomlx.Error
	if !errors.As(err, &te) {
		return err
	}
	line := ""
	if lines := strings.Split(string(data), "\n"); te.Line > 0 && te.Line <= len(lines) {
		line = lines[te.Line-1]
	}
	if k, _, ok := strings.Cut(line, "="); (ok && isSecretKey(strings.TrimSpace(k))) || isSecretKey(te.Key) {
		return &tomlx.Error{File: te.File, Line: te.Line, Key: te.Key, Problem: "syntax error in a secret's value (the value is not shown)"}
	}
	return err
}
