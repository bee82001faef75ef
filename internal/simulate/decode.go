package simulate

import (
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/producerd/producerd/internal/config"
)

// The scenario decoder walks the generic TOML tree (map[string]any) so that every
// problem can name its key and line, in the same *config.Error form as producer.toml.
// internal/config keeps its walker unexported; this one is deliberately smaller: a
// scenario has a fixed, shallow shape.

// decoder collects problems while a Scenario is filled.
type decoder struct {
	file  string
	lines map[string]int // key path -> line, see locate
	errs  []error
}

// line returns the line of path or of its nearest located ancestor (0 when unknown).
func (d *decoder) line(path string) int {
	for path != "" {
		if n, ok := d.lines[path]; ok {
			return n
		}
		path = parent(path)
	}
	return 0
}

func (d *decoder) errorf(path, format string, args ...any) {
	d.errs = append(d.errs, &config.Error{File: d.file, Line: d.line(path), Key: path, Problem: fmt.Sprintf(format, args...)})
}

// err joins the problems, ordered by line; nil when there are none.
func (d *decoder) err() error {
	if len(d.errs) == 0 {
		return nil
	}
	slices.SortStableFunc(d.errs, func(a, b error) int {
		var ea, eb *config.Error
		if errors.As(a, &ea) && errors.As(b, &eb) {
			return ea.Line - eb.Line
		}
		return 0
	})
	return errors.Join(d.errs...)
}

func parent(p string) string {
	if strings.HasSuffix(p, "]") {
		if i := strings.LastIndexByte(p, '['); i >= 0 {
			return p[:i]
		}
	}
	if i := strings.LastIndexByte(p, '.'); i >= 0 {
		return p[:i]
	}
	return ""
}

func join(prefix, key string) string {
	if prefix == "" {
		return key
	}
	return prefix + "." + key
}

// obj is one TOML table being decoded; keys read from it are marked so that done can
// report the others as unknown.
type obj struct {
	d    *decoder
	path string
	m    map[string]any
	seen map[string]bool
}

func (d *decoder) obj(path string, m map[string]any) *obj {
	return &obj{d: d, path: path, m: m, seen: map[string]bool{}}
}

func (o *obj) key(k string) string { return join(o.path, k) }

func (o *obj) get(k string) (any, bool) {
	o.seen[k] = true
	v, ok := o.m[k]
	return v, ok
}

// done reports every key nobody read, in line order.
func (o *obj) done() {
	var unknown []string
	for k := range o.m {
		if !o.seen[k] {
			unknown = append(unknown, k)
		}
	}
	slices.SortFunc(unknown, func(a, b string) int {
		if la, lb := o.d.line(o.key(a)), o.d.line(o.key(b)); la != lb {
			return la - lb
		}
		return strings.Compare(a, b)
	})
	for _, k := range unknown {
		known := make([]string, 0, len(o.seen))
		for s := range o.seen {
			known = append(known, s)
		}
		slices.Sort(known)
		o.d.errorf(o.key(k), "unknown key (known here: %s)", strings.Join(known, ", "))
	}
}

func kind(v any) string {
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

func (o *obj) str(k string, dst *string) bool {
	v, ok := o.get(k)
	if !ok {
		return false
	}
	s, ok := v.(string)
	if !ok {
		o.d.errorf(o.key(k), "expected a string, got %s", kind(v))
		return false
	}
	*dst = s
	return true
}

func (o *obj) boolean(k string, dst *bool) {
	v, ok := o.get(k)
	if !ok {
		return
	}
	b, ok := v.(bool)
	if !ok {
		o.d.errorf(o.key(k), "expected a boolean (true or false), got %s", kind(v))
		return
	}
	*dst = b
}

func (o *obj) integer(k string, dst *int, lo, hi int) bool {
	v, ok := o.get(k)
	if !ok {
		return false
	}
	n, ok := v.(int64)
	if !ok {
		o.d.errorf(o.key(k), "expected an integer, got %s", kind(v))
		return false
	}
	if n < int64(lo) || n > int64(hi) {
		o.d.errorf(o.key(k), "%d is out of range %d..%d", n, lo, hi)
		return false
	}
	*dst = int(n)
	return true
}

// fraction reads a number in 0..1 (an integer 0 or 1 is accepted too).
func (o *obj) fraction(k string, dst *float64) bool {
	v, ok := o.get(k)
	if !ok {
		return false
	}
	var f float64
	switch x := v.(type) {
	case float64:
		f = x
	case int64:
		f = float64(x)
	default:
		o.d.errorf(o.key(k), "expected a number in 0..1, got %s", kind(v))
		return false
	}
	if !(f >= 0 && f <= 1) {
		o.d.errorf(o.key(k), "%v is out of range 0..1", f)
		return false
	}
	*dst = f
	return true
}

func (o *obj) duration(k string, dst *time.Duration, lo, hi time.Duration) bool {
	v, ok := o.get(k)
	if !ok {
		return false
	}
	s, ok := v.(string)
	if !ok {
		o.d.errorf(o.key(k), "expected a duration string such as \"3s\" or \"500ms\", got %s", kind(v))
		return false
	}
	dur, err := time.ParseDuration(s)
	if err != nil {
		o.d.errorf(o.key(k), "invalid duration %q (use a number with a unit: \"3s\", \"500ms\", \"1m30s\")", s)
		return false
	}
	if dur < lo || dur > hi {
		o.d.errorf(o.key(k), "duration %s is out of range %s..%s", s, lo, hi)
		return false
	}
	*dst = dur
	return true
}

// size reads one byte size (an integer or "4KiB") at path from v.
func (d *decoder) size(path string, v any, lo, hi int64) (int64, bool) {
	var n int64
	switch x := v.(type) {
	case int64:
		n = x
	case string:
		var err error
		if n, err = config.ParseSize(x); err != nil {
			d.errorf(path, "%v", err)
			return 0, false
		}
	default:
		d.errorf(path, "expected a size such as \"1KiB\" or a number of bytes, got %s", kind(v))
		return 0, false
	}
	if n < lo || n > hi {
		d.errorf(path, "size %d bytes is out of range %d..%d", n, lo, hi)
		return 0, false
	}
	return n, true
}

func (o *obj) strings(k string) ([]string, bool) {
	v, ok := o.get(k)
	if !ok {
		return nil, false
	}
	arr, ok := v.([]any)
	if !ok {
		o.d.errorf(o.key(k), "expected an array of strings, got %s", kind(v))
		return nil, false
	}
	out := make([]string, 0, len(arr))
	for i, e := range arr {
		s, ok := e.(string)
		if !ok {
			o.d.errorf(fmt.Sprintf("%s[%d]", o.key(k), i), "expected a string, got %s", kind(e))
			continue
		}
		out = append(out, s)
	}
	return out, true
}

// sub returns the sub-table k, or nil when it is absent or not a table.
func (o *obj) sub(k string) *obj {
	v, ok := o.get(k)
	if !ok {
		return nil
	}
	m, ok := v.(map[string]any)
	if !ok {
		o.d.errorf(o.key(k), "expected a table ([%s] or { ... }), got %s", o.key(k), kind(v))
		return nil
	}
	return o.d.obj(o.key(k), m)
}

// tables returns the array of tables k ([[k]] or an array of inline tables).
func (o *obj) tables(k string) []*obj {
	v, ok := o.get(k)
	if !ok {
		return nil
	}
	var ms []map[string]any
	switch x := v.(type) {
	case []map[string]any:
		ms = x
	case []any:
		for i, e := range x {
			m, ok := e.(map[string]any)
			if !ok {
				o.d.errorf(fmt.Sprintf("%s[%d]", o.key(k), i), "expected a table, got %s", kind(e))
				continue
			}
			ms = append(ms, m)
		}
	default:
		o.d.errorf(o.key(k), "expected an array of tables ([[%s]]), got %s", o.key(k), kind(v))
		return nil
	}
	out := make([]*obj, len(ms))
	for i, m := range ms {
		out[i] = o.d.obj(fmt.Sprintf("%s[%d]", o.key(k), i), m)
	}
	return out
}

// locate maps key paths ("fault[1].to", "strategy[0].settings.preset") to their lines.
// It reads the source line by line and understands what scenarios use: [table] and
// [[array]] headers, key = value lines (dotted keys too), one-line inline tables, and
// arrays whose elements (values or inline tables) start on their own lines. It runs
// only on input the TOML parser accepted; a key it cannot place falls back to the line
// of its nearest located ancestor.
func locate(src string) map[string]int {
	lines := map[string]int{}
	record := func(path string, n int) {
		if _, ok := lines[path]; !ok {
			lines[path] = n
		}
	}
	arrays := map[string]int{} // [[path]] -> tables seen
	prefix := ""
	var inArray string // path of a multi-line array value being read
	var elem, depth int
	var multi string // closing delimiter of a multi-line string being skipped
	for i, raw := range strings.Split(src, "\n") {
		n := i + 1
		s := strings.TrimSpace(raw)
		if multi != "" {
			if strings.Contains(s, multi) {
				multi = ""
			}
			continue
		}
		if inArray != "" {
			// One element per line: record it and the keys of an inline table.
			if strings.HasPrefix(s, "{") || (s != "" && s != "]" && !strings.HasPrefix(s, "#")) {
				if depth == 1 {
					p := inArray + "[" + strconv.Itoa(elem) + "]"
					record(p, n)
					inlineKeys(p, s, n, record)
					elem++
				}
			}
			depth += strings.Count(s, "[") - strings.Count(s, "]")
			if depth <= 0 {
				inArray = ""
			}
			continue
		}
		if s == "" || s[0] == '#' {
			continue
		}
		if s[0] == '[' {
			array := strings.HasPrefix(s, "[[")
			name := strings.Trim(strings.SplitN(s, "#", 2)[0], "[] \t")
			path := ""
			segs := strings.Split(name, ".")
			for j, seg := range segs {
				path = join(path, strings.Trim(strings.TrimSpace(seg), `"'`))
				if j == len(segs)-1 && array {
					record(path, n)
					idx := arrays[path]
					arrays[path] = idx + 1
					path += "[" + strconv.Itoa(idx) + "]"
					break
				}
				if c := arrays[path]; c > 0 {
					path += "[" + strconv.Itoa(c-1) + "]"
				}
			}
			record(path, n)
			prefix = path
			continue
		}
		k, v, ok := strings.Cut(s, "=")
		if !ok {
			continue
		}
		path := prefix
		for _, seg := range strings.Split(strings.TrimSpace(k), ".") {
			path = join(path, strings.Trim(strings.TrimSpace(seg), `"'`))
			record(path, n)
		}
		v = strings.TrimSpace(v)
		switch {
		case strings.HasPrefix(v, `"""`) && strings.Count(v, `"""`) == 1:
			multi = `"""`
		case strings.HasPrefix(v, `'''`) && strings.Count(v, `'''`) == 1:
			multi = `'''`
		case strings.HasPrefix(v, "{"):
			inlineKeys(path, v, n, record)
		case strings.HasPrefix(v, "["):
			d := strings.Count(v, "[") - strings.Count(v, "]")
			if d > 0 {
				inArray, elem, depth = path, 0, d
			}
			// Elements on the key's own line: record inline tables in order.
			for j, part := range strings.Split(strings.TrimPrefix(v, "["), "{")[1:] {
				p := path + "[" + strconv.Itoa(j) + "]"
				record(p, n)
				inlineKeys(p, "{"+part, n, record)
				elem = j + 1
			}
		}
	}
	return lines
}

// inlineKeys records the top-level keys of a one-line inline table "{ a = 1, b = 2 }".
func inlineKeys(path, s string, n int, record func(string, int)) {
	s = strings.TrimSpace(s)
	if !strings.HasPrefix(s, "{") {
		return
	}
	body := s[1:]
	if i := strings.IndexByte(body, '}'); i >= 0 {
		body = body[:i]
	}
	for _, part := range strings.Split(body, ",") {
		if k, _, ok := strings.Cut(part, "="); ok {
			if k = strings.Trim(strings.TrimSpace(k), `"'`); k != "" {
				record(join(path, k), n)
			}
		}
	}
}
