package builtin

import (
	"errors"
	"testing"
)

func TestValidate(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name, settings string
		ok             bool
		key            string
	}{
		{RoundRobin, ``, true, ""},
		{RoundRobin, `{}`, true, ""},
		{RoundRobin, `{"x":1}`, false, ""},
		{LatencyFault, `{"preset":"rocketmq5","max_isolated_share":0.3}`, true, ""},
		{LatencyFault, `{"preset":"rocketmq9"}`, false, "preset"},
		{LatencyFault, `{"latency_max":["1s","x"],"not_available":["1s","2s"]}`, false, "latency_max[1]"},
		{LatencyFault, `{"latency_max":["1s"]}`, false, ""},
		{LatencyFault, `{"nope":1}`, false, ""},
		{LatencyFault, `{"max_isolated_share":2}`, false, "max_isolated_share"},
		{"fastest", ``, false, ""},
	} {
		err := Validate(tc.name, []byte(tc.settings))
		if (err == nil) != tc.ok {
			t.Errorf("%s %s: %v", tc.name, tc.settings, err)
			continue
		}
		if tc.key != "" {
			var se *SettingError
			if !errors.As(err, &se) || se.Key != tc.key {
				t.Errorf("%s %s: want a SettingError for %s, got %v", tc.name, tc.settings, tc.key, err)
			}
		}
	}
	if _, ok := Lookup(LatencyFault); !ok || len(All()) != 2 {
		t.Error("registry incomplete")
	}
}
