package core

import (
	"errors"
	"strings"
	"testing"
)

// TestUserPropertiesRefuseSystemNames: review finding 14. A user property named after
// a property the producer or the broker writes itself is refused, with the field to use
// instead: a user __SHARDINGKEY beside sharding_key chose the queue by one key and
// stored the other.
func TestUserPropertiesRefuseSystemNames(t *testing.T) {
	t.Parallel()
	for name, want := range map[string]string{
		"__SHARDINGKEY":           "set the message's sharding key instead",
		"UNIQ_KEY":                "the producer sets the message id",
		"TAGS":                    "set the message's tags instead",
		"KEYS":                    "set the message's keys instead",
		"DELAY":                   "set the message's delay level instead",
		"TIMER_DELIVER_MS":        "deliver-at time",
		"TIMER_DELAY_SEC":         "set the message's delay instead",
		"__transactionId__":       "reserved system property name",
		"TRANSACTION_CHECK_TIMES": "reserved system property name",
		"WAIT":                    "reserved system property name",
	} {
		m := &Message{Topic: "T", Body: []byte("x"), ShardingKey: "k1", Properties: map[string]string{name: "v"}}
		err := m.Validate(0)
		var ve *ValidationError
		if !errors.As(err, &ve) || ve.Rule != "property.reserved" || !strings.Contains(err.Error(), want) ||
			!strings.Contains(err.Error(), name) {
			t.Errorf("property %s: %v; want property.reserved naming it with %q", name, err, want)
		}
	}
	// Names Java lets users set stay allowed.
	for _, name := range []string{"CHECK_IMMUNITY_TIME_IN_SECONDS", "shardingkey", "order"} {
		m := &Message{Topic: "T", Body: []byte("x"), Properties: map[string]string{name: "v"}}
		if err := m.Validate(0); err != nil {
			t.Errorf("property %s: %v; want ok", name, err)
		}
	}
}
