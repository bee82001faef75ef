package core

import (
	"errors"
	"testing"
	"time"
)

func TestTimerValidation(t *testing.T) {
	t.Parallel()
	at := time.UnixMilli(1_900_000_000_123)
	for _, tc := range []struct {
		name string
		mod  func(*Message)
		rule string
	}{
		{"level 18", func(m *Message) { m.DelayLevel = 18 }, ""},
		{"level 19", func(m *Message) { m.DelayLevel = 19 }, "delay.level"},
		{"level -1", func(m *Message) { m.DelayLevel = -1 }, "delay.level"},
		{"deliver at", func(m *Message) { m.DeliverAt = at }, ""},
		{"delay", func(m *Message) { m.Delay = 5 * time.Second }, ""},
		{"negative delay", func(m *Message) { m.Delay = -time.Second }, "delay.negative"},
		{"sub-ms delay", func(m *Message) { m.Delay = time.Microsecond }, "delay.resolution"},
		{"level and deliver at", func(m *Message) { m.DelayLevel, m.DeliverAt = 2, at }, "delay.conflict"},
		{"delay and deliver at", func(m *Message) { m.Delay, m.DeliverAt = time.Second, at }, "delay.conflict"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := &Message{Topic: "T", Body: []byte("x")}
			tc.mod(m)
			err := m.Validate(0)
			var ve *ValidationError
			switch {
			case tc.rule == "" && err != nil:
				t.Fatalf("unexpected error %v", err)
			case tc.rule != "" && (!errors.As(err, &ve) || ve.Rule != tc.rule):
				t.Fatalf("error %v, want rule %s", err, tc.rule)
			}
		})
	}
}

func TestTimerProperties(t *testing.T) {
	t.Parallel()
	at := time.UnixMilli(1_900_000_000_123)
	for _, tc := range []struct {
		m          Message
		name, want string
	}{
		{Message{DeliverAt: at}, PropertyTimerDeliverMS, "1900000000123"},
		{Message{Delay: 1500 * time.Millisecond}, PropertyTimerDelayMS, "1500"},
		{Message{DelayLevel: 3}, PropertyDelay, "3"},
	} {
		props := DecodeProperties(string(tc.m.encodeProperties(nil, "U")))
		if props[tc.name] != tc.want {
			t.Errorf("%s = %q, want %q (all: %q)", tc.name, props[tc.name], tc.want, props)
		}
		for _, other := range []string{PropertyTimerDeliverMS, PropertyTimerDelayMS, PropertyDelay} {
			if _, ok := props[other]; ok && other != tc.name {
				t.Errorf("%s set as well: %q", other, props)
			}
		}
	}
}
