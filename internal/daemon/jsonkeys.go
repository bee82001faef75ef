package daemon

import (
	"bytes"
	"encoding/json"
	"fmt"
	"reflect"
	"strings"

	"github.com/producerd/producerd/core"
)

// checkJSONKeys walks a request body alongside the Go type it decodes into (t) and
// refuses what encoding/json would accept silently: a key given twice in one object
// (json keeps the last) and a field name that matches only case-insensitively
// ({"Topic":"x"} would set topic). Map keys (properties) are exact in Go, so only
// duplicates are refused there. It returns the keys of the top-level object, in order,
// so a caller can refuse fields that mean nothing in a context (a batch's top level).
// Syntax errors are left to the decoder, which reports them better.
func checkJSONKeys(body []byte, t reflect.Type) (top []string, err error) {
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber()
	w := keyWalker{dec: dec}
	top, err = w.value(t, "", true)
	if err != nil && !w.syntax {
		return nil, fmt.Errorf("%w: %v", core.ErrInvalidMessage, err)
	}
	if w.syntax {
		return nil, nil
	}
	return top, nil
}

type keyWalker struct {
	dec    *json.Decoder
	syntax bool // a token error: leave it to the decoder
}

func (w *keyWalker) token() (json.Token, error) {
	tok, err := w.dec.Token()
	if err != nil {
		w.syntax = true
	}
	return tok, err
}

// value consumes one JSON value that decodes into t (nil: anything) at path; wantKeys
// asks for the keys of the object it is.
func (w *keyWalker) value(t reflect.Type, path string, wantKeys bool) ([]string, error) {
	for t != nil && t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	tok, err := w.token()
	if err != nil {
		return nil, err
	}
	delim, ok := tok.(json.Delim)
	if !ok {
		return nil, nil
	}
	switch delim {
	case '[':
		var elem reflect.Type
		if t != nil && (t.Kind() == reflect.Slice || t.Kind() == reflect.Array) {
			elem = t.Elem()
		}
		for i := 0; w.dec.More(); i++ {
			if _, err := w.value(elem, fmt.Sprintf("%s[%d]", path, i), false); err != nil {
				return nil, err
			}
		}
		_, err := w.token()
		return nil, err
	case '{':
		return w.object(t, path, wantKeys)
	}
	return nil, nil
}

func (w *keyWalker) object(t reflect.Type, path string, wantKeys bool) ([]string, error) {
	var fields map[string]reflect.Type
	var elem reflect.Type
	if t != nil {
		switch t.Kind() {
		case reflect.Struct:
			fields = jsonFields(t)
		case reflect.Map:
			elem = t.Elem()
		}
	}
	seen := map[string]bool{}
	var keys []string
	for w.dec.More() {
		tok, err := w.token()
		if err != nil {
			return nil, err
		}
		key, _ := tok.(string)
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
		if _, err := w.value(vt, name, false); err != nil {
			return nil, err
		}
	}
	_, err := w.token()
	return keys, err
}

// jsonFields maps the JSON names of a struct's fields (embedded structs' promoted) to
// their types.
func jsonFields(t reflect.Type) map[string]reflect.Type {
	out := map[string]reflect.Type{}
	for i := range t.NumField() {
		f := t.Field(i)
		tag := f.Tag.Get("json")
		name, _, _ := strings.Cut(tag, ",")
		if name == "-" {
			continue
		}
		if f.Anonymous && name == "" && f.Type.Kind() == reflect.Struct {
			for k, v := range jsonFields(f.Type) {
				if _, ok := out[k]; !ok {
					out[k] = v
				}
			}
			continue
		}
		if !f.IsExported() {
			continue
		}
		if name == "" {
			name = f.Name
		}
		out[name] = f.Type
	}
	return out
}
