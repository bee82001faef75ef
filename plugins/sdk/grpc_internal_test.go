//go:build !wasip1

package sdk

import (
	"testing"
	"time"
)

// TestWeightChangeIsHealthChange: a plugin publishes a table whose only change is a
// weight (a policy update).
func TestWeightChangeIsHealthChange(t *testing.T) {
	rows := []BrokerHealth{
		{Broker: "a", Available: true, Latency: 3 * time.Millisecond, Weight: 7},
		{Broker: "b", Until: time.Unix(0, 1234567890), Latency: time.Second},
	}
	changed := append([]BrokerHealth(nil), rows...)
	changed[0].Weight = 8
	if equalHealth(rows, changed, false) {
		t.Fatal("a weight change is not a health change")
	}
}
