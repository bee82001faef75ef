package wasmabi_test

import (
	"errors"
	"slices"
	"testing"

	"github.com/producerd/producerd/internal/strategywire"
	"github.com/producerd/producerd/plugins/sdk"
	"github.com/producerd/producerd/plugins/sdk/wasmguest/wasmabi"
)

// TestSettingsErrorRoundTrip: a constructor's setting errors cross the module boundary
// key by key; plain text (an older module) stays the message.
func TestSettingsErrorRoundTrip(t *testing.T) {
	for _, tc := range []struct {
		name string
		err  error
		keys []string
		text string
	}{
		{"joined", errors.Join(&sdk.SettingError{Key: "a", Err: errors.New("too big")}, &sdk.SettingError{Key: "", Err: errors.New("not a table")}),
			[]string{"a: too big", "not a table"}, ""},
		{"plain", errors.New("bad settings"), nil, "sdk: invalid strategy settings: code -6 (invalid-settings): bad settings"},
		{"empty", errors.New(""), nil, "sdk: invalid strategy settings: code -6 (invalid-settings): "},
	} {
		got := wasmabi.SettingsError(string(wasmabi.AppendSettingsError([]byte("code -6 (invalid-settings): "), tc.err)))
		if !errors.Is(got, sdk.ErrInvalidSettings) {
			t.Errorf("%s: %v does not match ErrInvalidSettings", tc.name, got)
		}
		var keys []string
		for _, se := range strategywire.ErrorsOf[*sdk.SettingError](got) {
			keys = append(keys, se.Error())
		}
		if !slices.Equal(keys, tc.keys) {
			t.Errorf("%s: setting errors %q, want %q", tc.name, keys, tc.keys)
		}
		if tc.text != "" && got.Error() != tc.text {
			t.Errorf("%s: text %q, want %q", tc.name, got.Error(), tc.text)
		}
	}
}
