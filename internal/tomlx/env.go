package tomlx

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/BurntSushi/toml"
)

// EnvString is a value that came from an environment variable rather than the file:
// each getter converts it to the type it expects (a string stays a string even when it
// looks like a number; "true" is a boolean for Bool; a list is comma-separated, or a
// TOML array when it starts with "[").
type EnvString string

// fromEnv converts an EnvString for a getter expecting kind; other values pass through.
func fromEnv(v any, kind string) any {
	s, ok := v.(EnvString)
	if !ok {
		return v
	}
	str := strings.TrimSpace(string(s))
	switch kind {
	case "bool":
		if b, err := strconv.ParseBool(str); err == nil {
			return b
		}
	case "int":
		if n, err := strconv.ParseInt(str, 10, 64); err == nil {
			return n
		}
	case "float":
		if f, err := strconv.ParseFloat(str, 64); err == nil {
			return f
		}
	case "size":
		if n, err := strconv.ParseInt(str, 10, 64); err == nil {
			return n
		}
	case "strings":
		if strings.HasPrefix(str, "[") {
			var tree struct{ V []any }
			if _, err := toml.Decode("v = "+str, &tree); err == nil {
				return tree.V
			}
			return string(s)
		}
		var out []any
		for _, p := range strings.Split(str, ",") {
			if p = strings.TrimSpace(p); p != "" {
				out = append(out, p)
			}
		}
		return out
	}
	return string(s)
}

// Value is a key a getter read, with the value it left in its destination: the
// decoded one, or the default when the key was absent (Set false).
type Value struct {
	Path  string
	Value string
	Set   bool
}

// Values returns every key the getters read, in the order they were read.
func (d *Decoder) Values() []Value { return d.values }

// Note records the value of k that the caller read with Get (see Decoder.Values).
func (t *Table) Note(k string, dst any) { t.note(k, dst) }

// note records the value a getter left in dst (after it ran, by defer).
func (t *Table) note(k string, dst any) {
	var s string
	switch p := dst.(type) {
	case *string:
		s = strconv.Quote(*p)
	case *bool:
		s = strconv.FormatBool(*p)
	case *int:
		s = strconv.Itoa(*p)
	case *int64:
		s = strconv.FormatInt(*p, 10)
	case *float64:
		s = strconv.FormatFloat(*p, 'g', -1, 64)
	case *time.Duration:
		s = strconv.Quote(p.String())
	case *[]string:
		q := make([]string, len(*p))
		for i, e := range *p {
			q[i] = strconv.Quote(e)
		}
		s = "[" + strings.Join(q, ", ") + "]"
	default:
		s = fmt.Sprint(dst)
	}
	v := Value{Path: t.Key(k), Value: s, Set: t.Has(k)}
	if n := len(t.d.values); n > 0 && t.d.values[n-1].Path == v.Path {
		t.d.values[n-1] = v // OneOf over Str: the outer getter has the final value
		return
	}
	t.d.values = append(t.d.values, v)
}
