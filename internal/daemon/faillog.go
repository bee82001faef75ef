package daemon

import (
	"errors"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/producerd/producerd/core"
	"github.com/producerd/producerd/internal/apijson"
)

// Failed sends are logged one line each, at most failLogBurst lines per
// failLogWindow; the next line after a window with suppressed lines says how many were
// left out (a broker outage must not flood the log).
const (
	failLogWindow = 10 * time.Second
	failLogBurst  = 10
)

// logFailedSend writes the line of a send that was accepted and failed: group, topic,
// attempts, the last broker tried and the cause.
func (d *Daemon) logFailedSend(log hclog.Logger, api, group, topic string, err error) {
	ok, suppressed := d.failLog.allow(failLogWindow, failLogBurst)
	if !ok {
		return
	}
	attempts, broker, cause := 0, "", err
	var se *core.SendError
	if errors.As(err, &se) {
		attempts = se.Attempts
		if len(se.Brokers) > 0 {
			broker = se.Brokers[len(se.Brokers)-1]
		}
		if se.Last != nil {
			cause = se.Last
		}
	}
	args := []any{"api", api, "group", group, "topic", topic, "attempts", attempts, "last_broker", broker,
		"code", errorToPB(err).GetReason(), "cause", apijson.CleanMessage(cause.Error())}
	if suppressed > 0 {
		args = append(args, "suppressed_before", suppressed)
	}
	log.Warn("send failed", args...)
}
