package daemon

import (
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"sync"

	"github.com/producerd/producerd/core"
)

// checkJSONKeys walks a request body alongside the Go type it decodes into (t) and
// refuses what encoding/json would accept silently: a key given twice in one object
// (json keeps the last) and a field name that matches only case-insensitively
// ({"Topic":"x"} would set topic). Map keys (properties) are exact in Go, so only
// duplicates are refused there. It returns the keys of the top-level object, in order,
// so a caller can refuse fields that mean nothing in a context (a batch's top level).
//
// body must be valid JSON (decodeStrictKeys decodes it first). The walk scans bytes and
// allocates only keys: a body string of megabytes is skipped, not copied again.
func checkJSONKeys(body []byte, t reflect.Type) (top []string, err error) {
	w := keyWalker{b: body}
	top, err = w.value(t, "", true)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", core.ErrInvalidMessage, err)
	}
	return top, nil
}

// errJSONSyntax: the walk met bytes that are not JSON (the decoder should have refused them).
var errJSONSyntax = errors.New("invalid JSON")

type keyWalker struct {
	b []byte
	i int
}

func (w *keyWalker) space() {
	for w.i < len(w.b) {
		switch w.b[w.i] {
		case ' ', '\t', '\n', '\r':
			w.i++
		default:
			return
		}
	}
}

// next skips white space and returns the next byte without consuming it (0 at the end).
func (w *keyWalker) next() byte {
	w.space()
	if w.i >= len(w.b) {
		return 0
	}
	return w.b[w.i]
}

// str consumes a string and returns its raw bytes (between the quotes) and whether it
// holds an escape.
func (w *keyWalker) str() (raw []byte, escaped bool, err error) {
	if w.next() != '"' {
		return nil, false, errJSONSyntax
	}
	w.i++
	start := w.i
	for w.i < len(w.b) {
		switch w.b[w.i] {
		case '\\':
			escaped = true
			w.i += 2
			continue
		case '"':
			raw = w.b[start:w.i]
			w.i++
			return raw, escaped, nil
		}
		w.i++
	}
	return nil, false, errJSONSyntax
}

// value consumes one JSON value that decodes into t (nil: anything) at path; wantKeys
// asks for the keys of the object it is.
func (w *keyWalker) value(t reflect.Type, path string, wantKeys bool) ([]string, error) {
	for t != nil && t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	switch w.next() {
	case '{':
		w.i++
		return w.object(t, path, wantKeys)
	case '[':
		w.i++
		var elem reflect.Type
		if t != nil && (t.Kind() == reflect.Slice || t.Kind() == reflect.Array) {
			elem = t.Elem()
		}
		if w.next() == ']' {
			w.i++
			return nil, nil
		}
		for n := 0; ; n++ {
			if _, err := w.value(elem, fmt.Sprintf("%s[%d]", path, n), false); err != nil {
				return nil, err
			}
			switch w.next() {
			case ',':
				w.i++
			case ']':
				w.i++
				return nil, nil
			default:
				return nil, errJSONSyntax
			}
		}
	case '"':
		_, _, err := w.str()
		return nil, err
	case 0:
		return nil, errJSONSyntax
	}
	// A number, true, false or null: up to the next delimiter.
	for w.i < len(w.b) && !strings.ContainsRune(",]} \t\n\r", rune(w.b[w.i])) {
		w.i++
	}
	return nil, nil
}

func (w *keyWalker) object(t reflect.Type, path string, wantKeys bool) ([]string, error) {
	var fields map[string]reflect.Type
	var elem reflect.Type
	if t != nil {
		switch t.Kind() {
		case reflect.Struct:
			fields = cachedJSONFields(t)
		case reflect.Map:
			elem = t.Elem()
		}
	}
	if w.next() == '}' {
		w.i++
		return nil, nil
	}
	seen := map[string]bool{}
	var keys []string
	for {
		raw, escaped, err := w.str()
		if err != nil {
			return nil, err
		}
		key := string(raw)
		if escaped {
			if err := json.Unmarshal(append(append([]byte{'"'}, raw...), '"'), &key); err != nil {
				return nil, errJSONSyntax
			}
		}
		name := key
		if path != "" {
			name = path + "." + key
		}
		if seen[key] {
			return nil, fmt.Errorf("field %q is given twice", name)
		}
		seen[key] = true
		if wantKeys {
			keys = append(keys, key)
		}
		vt := elem
		if fields != nil {
			ft, ok := fields[key]
			if !ok {
				for f := range fields {
					if strings.EqualFold(f, key) {
						return nil, fmt.Errorf("field %q: field names are case-sensitive, did you mean %q?", name, f)
					}
				}
			}
			vt = ft
		}
		if w.next() != ':' {
			return nil, errJSONSyntax
		}
		w.i++
		if _, err := w.value(vt, name, false); err != nil {
			return nil, err
		}
		switch w.next() {
		case ',':
			w.i++
		case '}':
			w.i++
			return keys, nil
		default:
			return nil, errJSONSyntax
		}
	}
}

// jsonFields maps the JSON names of a struct's fields (embedded structs' promoted, the
// outer ones winning) to their types.
// jsonFieldCache holds jsonFields per type: the request types never change, and a batch
// checks one object per message.
var jsonFieldCache sync.Map // reflect.Type → map[string]reflect.Type (read-only)

func cachedJSONFields(t reflect.Type) map[string]reflect.Type {
	if f, ok := jsonFieldCache.Load(t); ok {
		return f.(map[string]reflect.Type)
	}
	f, _ := jsonFieldCache.LoadOrStore(t, jsonFields(t))
	return f.(map[string]reflect.Type)
}

func jsonFields(t reflect.Type) map[string]reflect.Type {
	out := map[string]reflect.Type{}
	var embedded []reflect.Type
	for i := range t.NumField() {
		f := t.Field(i)
		name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		switch {
		case name == "-":
		case f.Anonymous && name == "" && f.Type.Kind() == reflect.Struct:
			embedded = append(embedded, f.Type)
		case !f.IsExported():
		case name == "":
			out[f.Name] = f.Type
		default:
			out[name] = f.Type
		}
	}
	for _, e := range embedded {
		for k, v := range jsonFields(e) {
			if _, ok := out[k]; !ok {
				out[k] = v
			}
		}
	}
	return out
}
