package sdk

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"strings"
)

// Constructor builds a strategy from its settings: the daemon's
// [strategy.NAME.settings] table as JSON, empty when there is none. It is the one place
// a strategy parses its settings (strictly: see DecodeSettings), and the same function
// serves `producerd validate`, the host, a plugin process (Serve), a WebAssembly module
// (wasmguest.Register) and `producerd simulate`. A rejection returns an error wrapping
// ErrInvalidSettings, preferably a *SettingError (or several, errors.Join) naming the
// key, so that the daemon can point at FILE:LINE of that key.
type Constructor func(settings []byte) (Selector, error)

// NoSettings returns the Constructor of a strategy that takes no settings: it accepts
// only empty settings ("", "{}" or "null") and returns newSel().
func NoSettings(newSel func() Selector) Constructor {
	return func(settings []byte) (Selector, error) {
		if err := DecodeSettings(settings, &struct{}{}); err != nil {
			return nil, err
		}
		return newSel(), nil
	}
}

// emptySettings reports whether settings are empty: "", "{}" or "null" (spaces aside).
func emptySettings(settings []byte) bool {
	switch string(bytes.TrimSpace(settings)) {
	case "", "{}", "null":
		return true
	}
	return false
}

// SettingError is a problem with one setting. Key is its name in the settings table
// ("" when it concerns the table as a whole). It matches ErrInvalidSettings with
// errors.Is.
type SettingError struct {
	Key string
	Err error
}

func (e *SettingError) Error() string {
	if e.Key == "" {
		return e.Err.Error()
	}
	return e.Key + ": " + e.Err.Error()
}

// Unwrap returns the setting's problem.
func (e *SettingError) Unwrap() error { return e.Err }

// Is makes a SettingError match ErrInvalidSettings.
func (e *SettingError) Is(target error) bool { return target == ErrInvalidSettings }

// DecodeSettings decodes JSON settings into the struct v points to, strictly: every
// key must be one of v's fields (by its json tag), and each key decodes on its own, so
// that all problems are reported at once, each as a *SettingError naming its key,
// joined with errors.Join. Empty settings leave v unchanged.
func DecodeSettings(settings []byte, v any) error {
	if emptySettings(settings) {
		return nil
	}
	var table map[string]json.RawMessage
	if err := json.Unmarshal(settings, &table); err != nil {
		return &SettingError{Err: fmt.Errorf("settings are not a table: %w", err)}
	}
	rv := reflect.ValueOf(v)
	if rv.Kind() != reflect.Pointer || rv.Elem().Kind() != reflect.Struct {
		return fmt.Errorf("sdk: DecodeSettings needs a pointer to a struct, got %T", v)
	}
	fields := settingFields(rv.Elem().Type())
	keys := make([]string, 0, len(table))
	for k := range table {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	var errs []error
	for _, k := range keys {
		i, ok := fields[k]
		if !ok {
			err := errors.New("unknown key: the strategy takes no settings")
			if len(fields) > 0 {
				err = fmt.Errorf("unknown key (known: %s)", strings.Join(sortedKeys(fields), ", "))
			}
			errs = append(errs, &SettingError{Key: k, Err: err})
			continue
		}
		if err := json.Unmarshal(table[k], rv.Elem().Field(i).Addr().Interface()); err != nil {
			var te *json.UnmarshalTypeError
			if errors.As(err, &te) {
				err = fmt.Errorf("cannot be %s (want %s)", te.Value, te.Type)
			}
			errs = append(errs, &SettingError{Key: k, Err: err})
		}
	}
	return errors.Join(errs...)
}

// settingFields maps the json names of t's exported fields to their index.
func settingFields(t reflect.Type) map[string]int {
	m := make(map[string]int, t.NumField())
	for i := range t.NumField() {
		f := t.Field(i)
		if !f.IsExported() {
			continue
		}
		name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		if name == "-" {
			continue
		}
		if name == "" {
			name = f.Name
		}
		m[name] = i
	}
	return m
}

// sortedKeys returns m's keys in field order.
func sortedKeys(m map[string]int) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	slices.SortFunc(out, func(a, b string) int { return m[a] - m[b] })
	return out
}

// SettingKeys returns the keys DecodeSettings accepts for the settings struct v (or a
// pointer to it), in field order.
func SettingKeys(v any) []string {
	t := reflect.TypeOf(v)
	if t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if t.Kind() != reflect.Struct {
		return nil
	}
	return sortedKeys(settingFields(t))
}
