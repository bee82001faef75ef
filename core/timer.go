package core

import (
	"strconv"
	"time"
)

// Timer message properties of RocketMQ 5.x (spec §4.5): the broker's timer wheel holds the
// message until the delivery time. A 4.x broker ignores them (it delivers at once); a 5.x
// broker with timerWheelEnable=false refuses them with its own error.
const (
	PropertyTimerDeliverMS = "TIMER_DELIVER_MS"
	PropertyTimerDelayMS   = "TIMER_DELAY_MS"
	PropertyTimerDelaySec  = "TIMER_DELAY_SEC"
)

// MaxDelayLevel is the highest delay level of the broker's default table
// (1s 5s 10s 30s 1m 2m 3m 4m 5m 6m 7m 8m 9m 10m 20m 30m 1h 2h); the default of
// ProducerConfig.MaxDelayLevel.
const MaxDelayLevel = 18

// isTimer reports whether m asks for timer delivery.
func (m *Message) isTimer() bool { return !m.DeliverAt.IsZero() || m.Delay != 0 }

// validateDelay checks the delay level and the timer fields: at most one way to delay a
// message, a level within 1..maxLevel, a positive Delay in whole milliseconds.
func (m *Message) validateDelay(maxLevel int) error {
	switch {
	case m.DelayLevel < 0 || m.DelayLevel > maxLevel:
		return invalid("delay.level", "delay level %d is outside 1..%d (0 = none)", m.DelayLevel, maxLevel)
	case m.Delay < 0:
		return invalid("delay.negative", "delay %v is negative", m.Delay)
	case m.Delay > 0 && m.Delay < time.Millisecond:
		return invalid("delay.resolution", "delay %v is below the timer's 1ms resolution", m.Delay)
	}
	n := 0
	for _, set := range []bool{m.DelayLevel > 0, m.Delay > 0, !m.DeliverAt.IsZero()} {
		if set {
			n++
		}
	}
	if n > 1 {
		return invalid("delay.conflict", "set at most one of DelayLevel, Delay and DeliverAt")
	}
	return nil
}

// appendTimer adds the timer property of m, if any: TIMER_DELIVER_MS (epoch ms) for
// DeliverAt, TIMER_DELAY_MS for Delay (counted by the broker from when it stores the
// message), as the Java 5.x client's setDeliverTimeMs and setDelayTimeMs do.
func (m *Message) appendTimer(dst []byte) []byte {
	switch {
	case !m.DeliverAt.IsZero():
		return appendProperty(dst, PropertyTimerDeliverMS, strconv.FormatInt(m.DeliverAt.UnixMilli(), 10))
	case m.Delay > 0:
		return appendProperty(dst, PropertyTimerDelayMS, strconv.FormatInt(m.Delay.Milliseconds(), 10))
	}
	return dst
}
