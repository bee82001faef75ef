package config

import (
	"cmp"
	"errors"
	"slices"

	"github.com/producerd/producerd/internal/builtin"
	"github.com/producerd/producerd/internal/strategywire"
)

// SettingsError places a rejection of the strategy's settings in the config file. err
// is what building the strategy returned: its constructor's *sdk.SettingError values
// (joined), whether it ran in the daemon (a built-in), in a plugin process or in a
// WebAssembly module, which carry them across as key and message. The result reads as
// one *Error per setting, "FILE:LINE: key strategy.NAME.settings.KEY: problem" at the
// key's line (the settings table's line for a key the file does not set), one per
// line in line order, and still matches what err matched (errors.Is, errors.As). An
// err that holds no SettingError (a strategy that does not name its keys, a failure
// that is not about settings) is returned as is; nil gives nil.
func (s *Strategy) SettingsError(err error) error {
	var errs []*Error
	s.placeSettings(err, func(line int, key, problem string) {
		errs = append(errs, &Error{File: s.file, Line: line, Key: key, Problem: problem})
	})
	if len(errs) == 0 {
		return err
	}
	slices.SortStableFunc(errs, func(a, b *Error) int { return cmp.Compare(a.Line, b.Line) })
	placed := make([]error, len(errs))
	for i, e := range errs {
		placed[i] = e
	}
	return &settingsError{placed: errors.Join(placed...), err: err}
}

// settingsError reads as the placed problems and unwraps to them and to the original.
type settingsError struct {
	placed, err error
}

func (e *settingsError) Error() string   { return e.placed.Error() }
func (e *settingsError) Unwrap() []error { return []error{e.placed, e.err} }

// placeSettings calls add with the line, key path and problem of each *SettingError
// in err and reports whether there was one.
func (s *Strategy) placeSettings(err error, add func(line int, key, problem string)) bool {
	ses := strategywire.ErrorsOf[*builtin.SettingError](err)
	path := s.keyPath
	if path == "" {
		path = "strategy." + s.Name + ".settings"
	}
	for _, se := range ses {
		key := path
		if se.Key != "" {
			key = path + "." + se.Key
		}
		line := 0
		if s.lineOf != nil {
			line = s.lineOf(key)
		}
		problem := "rejected"
		if se.Err != nil {
			problem = se.Err.Error()
		}
		add(line, key, problem)
	}
	return len(ses) > 0
}
