//go:build !wasip1

package strategywire

import (
	"time"

	"github.com/producerd/producerd/internal/strategywire/strategypb"
)

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
