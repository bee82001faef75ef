package daemon

import (
	"fmt"

	"github.com/producerd/producerd/api/producerdpb"
	"github.com/producerd/producerd/core"
)

// validateTimerPB refuses deliver_at and delay values protobuf defines as invalid
// (Timestamp seconds outside years 1..9999 or nanos outside 0..999999999; Duration
// beyond ±10000 years, nanos outside ±999999999 or of the other sign than seconds):
// AsTime and AsDuration would turn them into some other time instead of an error.
func validateTimerPB(m *producerdpb.Message) error {
	if t := m.GetDeliverAt(); t != nil {
		if err := t.CheckValid(); err != nil {
			return fmt.Errorf("%w: deliver_at {seconds:%d nanos:%d} is not a valid timestamp: %v", core.ErrInvalidMessage, t.GetSeconds(), t.GetNanos(), err)
		}
	}
	if d := m.GetDelay(); d != nil {
		if err := d.CheckValid(); err != nil {
			return fmt.Errorf("%w: delay {seconds:%d nanos:%d} is not a valid duration: %v", core.ErrInvalidMessage, d.GetSeconds(), d.GetNanos(), err)
		}
	}
	return nil
}
