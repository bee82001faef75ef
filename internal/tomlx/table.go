package tomlx

import (
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Table is one TOML table being decoded. Every getter marks its key as read, whether
// the key is set or not, so that Done can report the others as unknown and suggest a
// read key for a misspelt one. A getter that finds its key absent does nothing; one
// that finds a bad value records the problem and leaves dst alone. The getters that
// return a bool report whether dst was set.
type Table struct {
	d    *Decoder
	path string
	m    map[string]any
	seen map[string]bool
}

// Decoder returns the decoder the table belongs to.
func (t *Table) Decoder() *Decoder { return t.d }

// Path returns the table's key path ("" for the root, "producer[1]", "client").
func (t *Table) Path() string { return t.path }

// Key returns the path of the key k of the table.
func (t *Table) Key(k string) string { return joinPath(t.path, k) }

// Map returns the table's values, as parsed; reading it marks nothing.
func (t *Table) Map() map[string]any { return t.m }

// Errorf records a problem at the key k of the table.
func (t *Table) Errorf(k, format string, args ...any) {
	t.d.Errorf(t.Key(k), format, args...)
}

// Get returns the raw value of k and marks k read.
func (t *Table) Get(k string) (any, bool) {
	t.seen[k] = true
	v, ok := t.m[k]
	return v, ok
}

// Has reports whether k is set; it does not mark k read.
func (t *Table) Has(k string) bool {
	_, ok := t.m[k]
	return ok
}

// MarkRead marks every key of the table read, for a table whose keys the caller checks
// itself (a plugin's settings).
func (t *Table) MarkRead() {
	for k := range t.m {
		t.seen[k] = true
	}
}

// Done reports every key nobody read as unknown, in line order.
func (t *Table) Done() {
	var unknown []string
	for k := range t.m {
		if !t.seen[k] {
			unknown = append(unknown, k)
		}
	}
	slices.SortFunc(unknown, func(a, b string) int {
		if la, lb := t.d.Line(t.Key(a)), t.d.Line(t.Key(b)); la != lb {
			return la - lb
		}
		return strings.Compare(a, b)
	})
	for _, k := range unknown {
		t.Errorf(k, "unknown key%s", t.hint(k))
	}
}

// hint is what follows "unknown key": the keys read from the table (ListKnown), or a
// read key that differs from k only in case, dashes or underscores.
func (t *Table) hint(k string) string {
	if t.d.ListKnown {
		known := make([]string, 0, len(t.seen))
		for s := range t.seen {
			known = append(known, s)
		}
		slices.Sort(known)
		return fmt.Sprintf(" (known here: %s)", strings.Join(known, ", "))
	}
	norm := func(s string) string { return strings.ToLower(strings.NewReplacer("-", "", "_", "").Replace(s)) }
	for known := range t.seen {
		if known != k && norm(known) == norm(k) {
			return fmt.Sprintf(" (did you mean %q?)", known)
		}
	}
	return ""
}

// Str reads a string.
func (t *Table) Str(k string, dst *string) bool {
	defer t.note(k, dst)
	v, ok := t.Get(k)
	if !ok {
		return false
	}
	v = fromEnv(v, "string")
	s, ok := v.(string)
	if !ok {
		t.Errorf(k, "expected a string, got %s", TypeName(v))
		return false
	}
	*dst = s
	return true
}

// OneOf reads a string that must be one of choices.
func (t *Table) OneOf(k string, dst *string, choices ...string) bool {
	defer t.note(k, dst)
	var s string
	if !t.Str(k, &s) {
		return false
	}
	if !slices.Contains(choices, s) {
		t.Errorf(k, "%q is not one of %s", s, strings.Join(choices, ", "))
		return false
	}
	*dst = s
	return true
}

// Bool reads a boolean.
func (t *Table) Bool(k string, dst *bool) bool {
	defer t.note(k, dst)
	v, ok := t.Get(k)
	if !ok {
		return false
	}
	v = fromEnv(v, "bool")
	b, ok := v.(bool)
	if !ok {
		t.Errorf(k, "expected a boolean (true or false), got %s", TypeName(v))
		return false
	}
	*dst = b
	return true
}

// Int reads an integer in lo..hi.
func (t *Table) Int(k string, dst *int, lo, hi int) bool {
	defer t.note(k, dst)
	v, ok := t.Get(k)
	if !ok {
		return false
	}
	v = fromEnv(v, "int")
	n, ok := v.(int64)
	if !ok {
		t.Errorf(k, "expected an integer, got %s", TypeName(v))
		return false
	}
	if n < int64(lo) || n > int64(hi) {
		t.Errorf(k, "%d is out of range %d..%d", n, lo, hi)
		return false
	}
	*dst = int(n)
	return true
}

// Fraction reads a number in 0..1 (an integer 0 or 1 is accepted too).
func (t *Table) Fraction(k string, dst *float64) bool {
	defer t.note(k, dst)
	v, ok := t.Get(k)
	if !ok {
		return false
	}
	v = fromEnv(v, "float")
	var f float64
	switch x := v.(type) {
	case float64:
		f = x
	case int64:
		f = float64(x)
	default:
		t.Errorf(k, "expected a number in 0..1, got %s", TypeName(v))
		return false
	}
	if !(f >= 0 && f <= 1) {
		t.Errorf(k, "%v is out of range 0..1", f)
		return false
	}
	*dst = f
	return true
}

// NoMax is the hi of a Duration without an upper bound.
const NoMax time.Duration = math.MaxInt64

// Duration reads a duration string such as "3s" or "250ms" in lo..hi; with hi NoMax,
// lo is only a minimum.
func (t *Table) Duration(k string, dst *time.Duration, lo, hi time.Duration) bool {
	defer t.note(k, dst)
	v, ok := t.Get(k)
	if !ok {
		return false
	}
	v = fromEnv(v, "string")
	s, ok := v.(string)
	if !ok {
		t.Errorf(k, "expected a duration string such as \"3s\" or \"500ms\", got %s", TypeName(v))
		return false
	}
	dur, err := time.ParseDuration(s)
	if err != nil {
		t.Errorf(k, "invalid duration %q (use a number with a unit: \"3s\", \"500ms\", \"1m30s\")", s)
		return false
	}
	switch {
	case hi == NoMax && dur < lo:
		t.Errorf(k, "duration %s is below the minimum %s", s, lo)
		return false
	case hi != NoMax && (dur < lo || dur > hi):
		t.Errorf(k, "duration %s is out of range %s..%s", s, lo, hi)
		return false
	}
	*dst = dur
	return true
}

// Size reads a byte size in lo..hi: an integer or a string with a unit (see ParseSize).
func (t *Table) Size(k string, dst *int64, lo, hi int64) bool {
	defer t.note(k, dst)
	v, ok := t.Get(k)
	if !ok {
		return false
	}
	v = fromEnv(v, "size")
	n, ok := t.d.Size(t.Key(k), v, lo, hi)
	if ok {
		*dst = n
	}
	return ok
}

// Size checks the value v at the key path as a byte size in lo..hi (see Table.Size);
// it serves sizes that are not a table's key, such as the elements of an array.
func (d *Decoder) Size(path string, v any, lo, hi int64) (int64, bool) {
	var n int64
	switch x := v.(type) {
	case int64:
		n = x
	case string:
		var err error
		if n, err = ParseSize(x); err != nil {
			d.Errorf(path, "%v", err)
			return 0, false
		}
	default:
		example := d.SizeExample
		if example == "" {
			example = "4MiB"
		}
		d.Errorf(path, "expected a size such as %q or a number of bytes, got %s", example, TypeName(v))
		return 0, false
	}
	if n < lo || n > hi {
		d.Errorf(path, "size %d bytes is out of range %d..%d", n, lo, hi)
		return 0, false
	}
	return n, true
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

// Strings reads an array of strings; an element that is not a string is reported and
// left out.
func (t *Table) Strings(k string, dst *[]string) bool {
	defer t.note(k, dst)
	v, ok := t.Get(k)
	if !ok {
		return false
	}
	v = fromEnv(v, "strings")
	arr, ok := v.([]any)
	if !ok {
		t.Errorf(k, "expected an array of strings, got %s", TypeName(v))
		return false
	}
	out := make([]string, 0, len(arr))
	for i, e := range arr {
		s, ok := e.(string)
		if !ok {
			t.d.Errorf(fmt.Sprintf("%s[%d]", t.Key(k), i), "expected a string, got %s", TypeName(e))
			continue
		}
		out = append(out, s)
	}
	*dst = out
	return true
}

// Sub returns the sub-table k, or nil when it is absent or not a table.
func (t *Table) Sub(k string) *Table {
	v, ok := t.Get(k)
	if !ok {
		return nil
	}
	m, ok := v.(map[string]any)
	if !ok {
		form := "[" + t.Key(k) + "]"
		if t.d.InlineTables {
			form += " or { ... }"
		}
		t.Errorf(k, "expected a table (%s), got %s", form, TypeName(v))
		return nil
	}
	return t.d.table(t.Key(k), m)
}

// Tables returns the array of tables k ([[k]], or with Decoder.InlineTables also an
// array of inline tables), or nil when it is absent or of another type.
func (t *Table) Tables(k string) []*Table {
	v, ok := t.Get(k)
	if !ok {
		return nil
	}
	var ms []map[string]any
	switch x := v.(type) {
	case []map[string]any:
		ms = x
	case []any:
		if !t.d.InlineTables {
			t.Errorf(k, "expected an array of tables ([[%s]]), got %s", t.Key(k), TypeName(v))
			return nil
		}
		for i, e := range x {
			m, ok := e.(map[string]any)
			if !ok {
				t.d.Errorf(fmt.Sprintf("%s[%d]", t.Key(k), i), "expected a table, got %s", TypeName(e))
				continue
			}
			ms = append(ms, m)
		}
	default:
		t.Errorf(k, "expected an array of tables ([[%s]]), got %s", t.Key(k), TypeName(v))
		return nil
	}
	out := make([]*Table, len(ms))
	for i, m := range ms {
		out[i] = t.d.table(fmt.Sprintf("%s[%d]", t.Key(k), i), m)
	}
	return out
}
