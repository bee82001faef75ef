package core

import (
	"errors"
	"testing"
)

func TestSystemPropertiesAndUniqKey(t *testing.T) {
	t.Parallel()
	m := &Message{Topic: "T", Body: []byte("x"), Tags: "a", UniqKey: "01ABC",
		SystemProperties: map[string]string{PropertyTraceContext: "tc", PropertyBornTimestamp: "1600000000000"}}
	if err := m.Validate(0); err != nil {
		t.Fatal(err)
	}
	props := DecodeProperties(string(m.encodeProperties(nil, m.uniqKey())))
	if props[PropertyUniqKey] != "01ABC" || props[PropertyTraceContext] != "tc" || props[PropertyTags] != "a" {
		t.Fatalf("properties %v", props)
	}
	if (&Message{}).uniqKey() == "" {
		t.Fatal("no fresh UNIQ_KEY without UniqKey")
	}
	for name, bad := range map[string]*Message{
		"own name":   {Topic: "T", Body: []byte("x"), SystemProperties: map[string]string{PropertyTags: "t"}},
		"timer name": {Topic: "T", Body: []byte("x"), SystemProperties: map[string]string{PropertyTimerDeliverMS: "1"}},
		"separator":  {Topic: "T", Body: []byte("x"), SystemProperties: map[string]string{PropertyTraceContext: "a\x01b"}},
		"comma id":   {Topic: "T", Body: []byte("x"), UniqKey: "a,b"},
		"blank name": {Topic: "T", Body: []byte("x"), SystemProperties: map[string]string{" ": "v"}},
	} {
		if err := bad.Validate(0); !errors.Is(err, ErrInvalidMessage) {
			t.Errorf("%s: Validate = %v, want ErrInvalidMessage", name, err)
		}
	}
}
