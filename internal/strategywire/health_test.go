//go:build !wasip1

package strategywire

import (
	"reflect"
	"testing"
	"time"
)

// brokerHealth has the shape of sdk.BrokerHealth, as a distinct named type.
type brokerHealth HealthRow

// TestHealthRoundTrip: every field of a policy row crosses the process, weight included.
func TestHealthRoundTrip(t *testing.T) {
	rows := []brokerHealth{
		{Broker: "a", Available: true, Latency: 3 * time.Millisecond, Weight: 7},
		{Broker: "b", Until: time.Unix(0, 1234567890), Latency: time.Second},
	}
	if got := HealthFromPB[brokerHealth](HealthToPB(rows)); !reflect.DeepEqual(got, rows) {
		t.Fatalf("round trip = %+v, want %+v", got, rows)
	}
}
