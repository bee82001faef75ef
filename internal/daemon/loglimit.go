package daemon

import (
	"sync"
	"time"
)

// logLimiter rate-limits a kind of log line: at most burst lines per window, the window
// starting at the first line written after the last one ended; the next line written
// after suppressed ones says how many. The zero value is ready.
type logLimiter struct {
	now        func() time.Time // nil: time.Now
	mu         sync.Mutex
	start      time.Time
	n          int
	suppressed int
}

// allow reports whether a line may be written now and how many were suppressed since
// the last one written.
func (l *logLimiter) allow(window time.Duration, burst int) (bool, int) {
	now := time.Now
	if l.now != nil {
		now = l.now
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if now := now(); l.start.IsZero() || now.Sub(l.start) >= window {
		l.start, l.n = now, 0
	}
	if l.n >= burst {
		l.suppressed++
		return false, 0
	}
	l.n++
	s := l.suppressed
	l.suppressed = 0
	return true, s
}
