package wasmabi

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"github.com/producerd/producerd/internal/strategywire"
	"github.com/producerd/producerd/plugins/sdk"
)

// settingsText is the producerd_last_error text of a CodeInvalidSettings result that
// names its keys: a JSON object, so that a host that does not know it still shows
// readable text.
type settingsText struct {
	Problems []settingProblem `json:"setting_problems"`
}

type settingProblem struct {
	Key     string `json:"key"`
	Message string `json:"message"`
}

// AppendSettingsError appends the producerd_last_error text of a constructor's
// rejection err to dst: when err holds *sdk.SettingError values, the JSON object
// {"setting_problems":[{"key":K,"message":M},...]} (one per value, key "" for the
// table as a whole), so that the host can place each at its key's line in its config;
// otherwise err's text.
func AppendSettingsError(dst []byte, err error) []byte {
	ses := strategywire.ErrorsOf[*sdk.SettingError](err)
	if len(ses) == 0 {
		return append(dst, err.Error()...)
	}
	t := settingsText{Problems: make([]settingProblem, len(ses))}
	for i, se := range ses {
		t.Problems[i].Key = se.Key
		if se.Err != nil {
			t.Problems[i].Message = se.Err.Error()
		}
	}
	b, jerr := json.Marshal(t)
	if jerr != nil {
		return append(dst, err.Error()...)
	}
	return append(dst, b...)
}

// settingsTextStart is how AppendSettingsError's JSON begins.
const settingsTextStart = `{"setting_problems":`

// SettingsError is the host's error for a CodeInvalidSettings result with the
// producerd_last_error text (possibly after a prefix the host added, such as the
// code): it wraps sdk.ErrInvalidSettings and, when the text holds AppendSettingsError's
// JSON, joins one *sdk.SettingError per problem; any other text (an older or non-Go
// module, or a truncated one) is kept as the message.
func SettingsError(text string) error {
	var t settingsText
	if i := strings.Index(text, settingsTextStart); i >= 0 && json.Unmarshal([]byte(text[i:]), &t) == nil && len(t.Problems) > 0 {
		errs := make([]error, len(t.Problems))
		for i, p := range t.Problems {
			errs[i] = &sdk.SettingError{Key: p.Key, Err: errors.New(p.Message)}
		}
		return fmt.Errorf("%w: %w", sdk.ErrInvalidSettings, errors.Join(errs...))
	}
	if text == "" {
		return sdk.ErrInvalidSettings
	}
	return fmt.Errorf("%w: %s", sdk.ErrInvalidSettings, text)
}
