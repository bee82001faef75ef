package daemon

import (
	"errors"
	"sync"
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

// failLogLimiter rate-limits the failed-send log lines; the zero value is ready.
type failLogLimiter struct {
	now        func() time.Time // nil: time.Now
	mu         sync.Mutex
	start      time.Time
	n          int
	suppressed int
}

// allow reports whether a line may be written now and how many were suppressed since
// the last one written.
func (l *failLogLimiter) allow() (bool, int) {
	now := time.Now
	if l.now != nil {
		now = l.now
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if now := now(); now.Sub(l.start) >= failLogWindow {
		l.start, l.n = now, 0
	}
	if l.n >= failLogBurst {
		l.suppressed++
		return false, 0
	}
	l.n++
	s := l.suppressed
	l.suppressed = 0
	return true, s
}

// logFailedSend writes the line of a send that was accepted and failed: group, topic,
// attempts, the last broker tried and the cause.
func (d *Daemon) logFailedSend(log hclog.Logger, api, group, topic string, err error) {
	ok, suppressed := d.failLog.allow()
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
