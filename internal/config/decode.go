package config

import (
	"errors"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Error is one configuration problem at a key. Its text is "FILE:LINE: key KEY: problem"
// (without ":LINE" when the line is unknown, without "key KEY: " for file-level
// problems).
type Error struct {
	File    string
	Line    int
	Key     string
	Problem string
}

func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString(e.File)
	if e.Line > 0 {
		b.WriteString(":")
		b.WriteString(strconv.Itoa(e.Line))
	}
	b.WriteString(": ")
	if e.Key != "" {
		b.WriteString("key ")
		b.WriteString(e.Key)
		b.WriteString(": ")
	}
	b.WriteString(e.Problem)
	return b.String()
}

// Is makes errors.Is(err, ErrInvalid) true.
func (e *Error) Is(target error) bool { return target == ErrInvalid }

// decoder collects problems while the typed config is filled from the TOML tree.
type decoder struct {
	file string
	loc  *locator
	errs []error
}

func (d *decoder) errorf(path, format string, args ...any) {
	d.errs = append(d.errs, &Error{File: d.file, Line: d.loc.Line(path), Key: path, Problem: fmt.Sprintf(format, args...)})
}

// table is one TOML table being decoded; every key read from it is marked so that
// done can report the rest as unknown.
type table struct {
	d    *decoder
	path string
	m    map[string]any
	seen map[string]bool
}

func (d *decoder) root(m map[string]any) *table {
	return &table{d: d, m: m, seen: make(map[string]bool)}
}

func (t *table) key(k string) string { return joinPath(t.path, k) }

func (t *table) get(k string) (any, bool) {
	t.seen[k] = true
	v, ok := t.m[k]
	return v, ok
}

// has reports whether k is set.
func (t *table) has(k string) bool {
	_, ok := t.m[k]
	return ok
}

// done reports keys nobody read, in file order.
func (t *table) done(allowed ...string) {
	var unknown []string
	for k := range t.m {
		if !t.seen[k] && !slices.Contains(allowed, k) {
			unknown = append(unknown, k)
		}
	}
	slices.SortFunc(unknown, func(a, b string) int {
		la, lb := t.d.loc.Line(t.key(a)), t.d.loc.Line(t.key(b))
		if la != lb {
			return la - lb
		}
		return strings.Compare(a, b)
	})
	for _, k := range unknown {
		t.d.errorf(t.key(k), "unknown key%s", t.suggest(k))
	}
}

// suggest proposes a known key that differs from k only in case, dashes or
// underscores.
func (t *table) suggest(k string) string {
	norm := func(s string) string { return strings.ToLower(strings.NewReplacer("-", "", "_", "").Replace(s)) }
	for known := range t.seen {
		if known != k && norm(known) == norm(k) {
			return fmt.Sprintf(" (did you mean %q?)", known)
		}
	}
	return ""
}

func typeName(v any) string {
	switch v := v.(type) {
	case string:
		return fmt.Sprintf("string %q", v)
	case int64:
		return fmt.Sprintf("integer %d", v)
	case float64:
		return fmt.Sprintf("float %v", v)
	case bool:
		return fmt.Sprintf("boolean %v", v)
	case map[string]any:
		return "table"
	case []map[string]any:
		return "array of tables"
	case []any:
		return "array"
	}
	return fmt.Sprintf("%T", v)
}

func (t *table) str(k string, dst *string) bool {
	v, ok := t.get(k)
	if !ok {
		return false
	}
	s, ok := v.(string)
	if !ok {
		t.d.errorf(t.key(k), "expected a string, got %s", typeName(v))
		return false
	}
	*dst = s
	return true
}

// oneOf reads a string that must be one of choices.
func (t *table) oneOf(k string, dst *string, choices ...string) {
	var s string
	if !t.str(k, &s) {
		return
	}
	if !slices.Contains(choices, s) {
		t.d.errorf(t.key(k), "%q is not one of %s", s, strings.Join(choices, ", "))
		return
	}
	*dst = s
}

func (t *table) boolean(k string, dst *bool) {
	v, ok := t.get(k)
	if !ok {
		return
	}
	b, ok := v.(bool)
	if !ok {
		t.d.errorf(t.key(k), "expected a boolean (true or false), got %s", typeName(v))
		return
	}
	*dst = b
}

func (t *table) integer(k string, dst *int, lo, hi int) {
	v, ok := t.get(k)
	if !ok {
		return
	}
	n, ok := v.(int64)
	if !ok {
		t.d.errorf(t.key(k), "expected an integer, got %s", typeName(v))
		return
	}
	if n < int64(lo) || n > int64(hi) {
		t.d.errorf(t.key(k), "%d is out of range %d..%d", n, lo, hi)
		return
	}
	*dst = int(n)
}

// duration reads a duration string such as "3s" or "250ms"; min is the smallest
// accepted value.
func (t *table) duration(k string, dst *time.Duration, min time.Duration) {
	v, ok := t.get(k)
	if !ok {
		return
	}
	s, ok := v.(string)
	if !ok {
		t.d.errorf(t.key(k), "expected a duration string such as \"3s\" or \"500ms\", got %s", typeName(v))
		return
	}
	dur, err := time.ParseDuration(s)
	if err != nil {
		t.d.errorf(t.key(k), "invalid duration %q (use a number with a unit: \"3s\", \"500ms\", \"1m30s\")", s)
		return
	}
	if dur < min {
		t.d.errorf(t.key(k), "duration %s is below the minimum %s", s, min)
		return
	}
	*dst = dur
}

// size reads a byte size: an integer or a string with a unit ("4MiB", "64KiB", "512B",
// "1GB"); it must lie in lo..hi bytes.
func (t *table) size(k string, dst *int64, lo, hi int64) {
	v, ok := t.get(k)
	if !ok {
		return
	}
	var n int64
	switch x := v.(type) {
	case int64:
		n = x
	case string:
		var err error
		if n, err = ParseSize(x); err != nil {
			t.d.errorf(t.key(k), "%v", err)
			return
		}
	default:
		t.d.errorf(t.key(k), "expected a size such as \"4MiB\" or a number of bytes, got %s", typeName(v))
		return
	}
	if n < lo || n > hi {
		t.d.errorf(t.key(k), "size %d bytes is out of range %d..%d", n, lo, hi)
		return
	}
	*dst = n
}

var sizeUnits = []struct {
	suffix string
	mult   int64
}{
	{"KiB", 1 << 10}, {"MiB", 1 << 20}, {"GiB", 1 << 30},
	{"KB", 1000}, {"MB", 1000 * 1000}, {"GB", 1000 * 1000 * 1000},
	{"B", 1},
}

// ParseSize parses a byte size: digits with an optional unit B, KB, MB, GB (powers of
// 1000) or KiB, MiB, GiB (powers of 1024), e.g. "4MiB", "512", "64 KiB".
func ParseSize(s string) (int64, error) {
	num := strings.TrimSpace(s)
	mult := int64(1)
	for _, u := range sizeUnits {
		if strings.HasSuffix(num, u.suffix) {
			num, mult = strings.TrimSpace(strings.TrimSuffix(num, u.suffix)), u.mult
			break
		}
	}
	n, err := strconv.ParseInt(num, 10, 64)
	if err != nil || n < 0 || n > math.MaxInt64/mult {
		return 0, fmt.Errorf("invalid size %q (use a number of bytes or a unit: \"4MiB\", \"64KiB\", \"1GB\")", s)
	}
	return n * mult, nil
}

func (t *table) strings(k string, dst *[]string) bool {
	v, ok := t.get(k)
	if !ok {
		return false
	}
	arr, ok := v.([]any)
	if !ok {
		t.d.errorf(t.key(k), "expected an array of strings, got %s", typeName(v))
		return false
	}
	out := make([]string, 0, len(arr))
	for i, e := range arr {
		s, ok := e.(string)
		if !ok {
			t.d.errorf(fmt.Sprintf("%s[%d]", t.key(k), i), "expected a string, got %s", typeName(e))
			continue
		}
		out = append(out, s)
	}
	*dst = out
	return true
}

// sub returns the sub-table k, or nil when it is absent or not a table.
func (t *table) sub(k string) *table {
	v, ok := t.get(k)
	if !ok {
		return nil
	}
	m, ok := v.(map[string]any)
	if !ok {
		t.d.errorf(t.key(k), "expected a table ([%s]), got %s", t.key(k), typeName(v))
		return nil
	}
	return &table{d: t.d, path: t.key(k), m: m, seen: make(map[string]bool)}
}

// tables returns the array of tables k ([[k]]).
func (t *table) tables(k string) []*table {
	v, ok := t.get(k)
	if !ok {
		return nil
	}
	arr, ok := v.([]map[string]any)
	if !ok {
		t.d.errorf(t.key(k), "expected an array of tables ([[%s]]), got %s", t.key(k), typeName(v))
		return nil
	}
	out := make([]*table, len(arr))
	for i, m := range arr {
		out[i] = &table{d: t.d, path: fmt.Sprintf("%s[%d]", t.key(k), i), m: m, seen: make(map[string]bool)}
	}
	return out
}

// errJoin joins problems into one error ordered by line, nil when there are none.
func errJoin(errs []error) error {
	if len(errs) == 0 {
		return nil
	}
	slices.SortStableFunc(errs, func(a, b error) int {
		var ea, eb *Error
		if errors.As(a, &ea) && errors.As(b, &eb) {
			return ea.Line - eb.Line
		}
		return 0
	})
	return errors.Join(errs...)
}
