package sdk

import (
	"reflect"
	"testing"
	"time"
)

// TestHealthRoundTrip: every field of a policy row crosses the process, weight included.
func TestHealthRoundTrip(t *testing.T) {
	rows := []BrokerHealth{
		{Broker: "a", Available: true, Latency: 3 * time.Millisecond, Weight: 7},
		{Broker: "b", Until: time.Unix(0, 1234567890), Latency: time.Second},
	}
	if got := healthFromPB(healthToPB(rows)); !reflect.DeepEqual(got, rows) {
		t.Fatalf("round trip = %+v, want %+v", got, rows)
	}
	changed := slicesClone(rows)
	changed[0].Weight = 8
	if equalHealth(rows, changed, false) {
		t.Fatal("a weight change is not a health change")
	}
}

func slicesClone(r []BrokerHealth) []BrokerHealth { return append([]BrokerHealth(nil), r...) }
