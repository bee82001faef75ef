package strategywire

import (
	"time"

	"github.com/producerd/producerd/internal/strategywire/strategypb"
)

// HealthRow is the shape of sdk.BrokerHealth: the same fields in the same order. Both
// sides translate health tables (the plugin publishes them, the host seeds them), so
// the translation lives here, generic over that shape: a field added to
// sdk.BrokerHealth and not here stops the build instead of being dropped on the wire.
type HealthRow = struct {
	Broker    string
	Available bool
	Until     time.Time
	Latency   time.Duration
	Weight    uint32
}

// HealthToPB encodes a health table.
func HealthToPB[T ~HealthRow](rows []T) *strategypb.HealthTable {
	t := &strategypb.HealthTable{Rows: make([]*strategypb.BrokerHealth, len(rows))}
	for i, row := range rows {
		r := HealthRow(row)
		var until int64
		if !r.Until.IsZero() {
			until = r.Until.UnixNano()
		}
		t.Rows[i] = &strategypb.BrokerHealth{
			Broker:        r.Broker,
			Available:     r.Available,
			UntilUnixNano: until,
			LatencyNs:     int64(r.Latency),
			Weight:        r.Weight,
		}
	}
	return t
}

// HealthFromPB decodes a health table.
func HealthFromPB[T ~HealthRow](t *strategypb.HealthTable) []T {
	rows := make([]T, len(t.GetRows()))
	for i, r := range t.GetRows() {
		var until time.Time
		if r.GetUntilUnixNano() != 0 {
			until = time.Unix(0, r.GetUntilUnixNano())
		}
		rows[i] = T(HealthRow{
			Broker:    r.GetBroker(),
			Available: r.GetAvailable(),
			Until:     until,
			Latency:   time.Duration(r.GetLatencyNs()),
			Weight:    r.GetWeight(),
		})
	}
	return rows
}
