package daemon

import (
	"fmt"
	"time"

	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/producerd/producerd/api/producerdpb"
	"github.com/producerd/producerd/core"
)

// timerToCore copies the timer fields (deliver_at, delay) of an API message.
func timerToCore(cm *core.Message, m *producerdpb.Message) {
	if t := m.GetDeliverAt(); t != nil {
		cm.DeliverAt = t.AsTime()
	}
	if d := m.GetDelay(); d != nil {
		cm.Delay = d.AsDuration()
	}
}

// timerToPB parses the HTTP API's timer fields: deliver_at as RFC 3339, delay as a Go
// duration ("1500ms", "5s").
func (m *HTTPMessage) timerToPB(pm *producerdpb.Message) error {
	if m.DeliverAt != "" {
		t, err := time.Parse(time.RFC3339Nano, m.DeliverAt)
		if err != nil {
			return fmt.Errorf("%w: deliver_at %q is not an RFC 3339 time", core.ErrInvalidMessage, m.DeliverAt)
		}
		pm.DeliverAt = timestamppb.New(t)
	}
	if m.Delay != "" {
		d, err := time.ParseDuration(m.Delay)
		if err != nil {
			return fmt.Errorf("%w: delay %q is not a duration such as \"5s\"", core.ErrInvalidMessage, m.Delay)
		}
		pm.Delay = durationpb.New(d)
	}
	return nil
}
