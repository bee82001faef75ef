package daemon

import (
	"fmt"
	"unicode/utf8"

	"github.com/producerd/producerd/api/producerdpb"
	"github.com/producerd/producerd/core"
)

// maxDelayLevel is the highest level of the broker's default delay table
// (messageDelayLevel: 1s 5s 10s 30s 1m 2m ... 2h has 18 levels).
const maxDelayLevel = 18

// validatePB refuses what the API accepts on the wire but RocketMQ cannot honour: a
// delay level outside 0..18, a send mode the daemon does not know, text fields that are
// not valid UTF-8 (the Go packages and HTTP can carry those; gRPC refuses them itself).
// core.Message.Validate checks the rest when the message is sent.
func validatePB(m *producerdpb.Message) error {
	if dl := m.GetDelayLevel(); dl < 0 || dl > maxDelayLevel {
		return fmt.Errorf("%w: delay_level %d: want 0 (none) or 1..%d", core.ErrInvalidMessage, dl, maxDelayLevel)
	}
	switch m.GetMode() {
	case producerdpb.SendMode_SEND_MODE_SYNC, producerdpb.SendMode_SEND_MODE_ONEWAY:
	default:
		return fmt.Errorf("%w: unknown send mode %d: want SYNC (0) or ONEWAY (1)", core.ErrInvalidMessage, int32(m.GetMode()))
	}
	if err := validateTimerPB(m); err != nil {
		return err
	}
	if !utf8.ValidString(m.GetTags()) || !utf8.ValidString(m.GetShardingKey()) {
		return fmt.Errorf("%w: tags and sharding_key must be valid UTF-8", core.ErrInvalidMessage)
	}
	for _, k := range m.GetKeys() {
		if !utf8.ValidString(k) {
			return fmt.Errorf("%w: keys must be valid UTF-8", core.ErrInvalidMessage)
		}
	}
	for k, v := range m.GetProperties() {
		if !utf8.ValidString(k) || !utf8.ValidString(v) {
			return fmt.Errorf("%w: property names and values must be valid UTF-8", core.ErrInvalidMessage)
		}
	}
	return nil
}
