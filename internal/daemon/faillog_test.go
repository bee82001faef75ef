package daemon

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/producerd/producerd/core"
	"github.com/producerd/producerd/remoting"
)

// TestFailedSendLog: one JSON line per failed send with group, topic, attempts, last
// broker, code and cause; past the burst lines are suppressed and the next line after
// the window counts them.
func TestFailedSendLog(t *testing.T) {
	clock := time.Date(2026, 12, 7, 12, 0, 0, 0, time.UTC)
	var buf bytes.Buffer
	log := NewLogger("info", "json", &buf)
	d := &Daemon{failLog: logLimiter{now: func() time.Time { return clock }}}
	sendErr := &core.SendError{Topic: "T", Attempts: 3, Brokers: []string{"broker-a", "broker-b", "broker-a"},
		Last: fmt.Errorf("core: broker broker-a: %w", &remoting.Error{Code: remoting.SystemBusy, Remark: "busy"})}
	for range failLogBurst + 5 {
		d.logFailedSend(log, "grpc", "g1", "T", sendErr)
	}
	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	if len(lines) != failLogBurst {
		t.Fatalf("%d lines in the window, want %d", len(lines), failLogBurst)
	}
	var first map[string]any
	if err := json.Unmarshal([]byte(lines[0]), &first); err != nil {
		t.Fatal(err)
	}
	for k, want := range map[string]any{"group": "g1", "topic": "T", "attempts": float64(3), "last_broker": "broker-a", "code": "SYSTEM_BUSY"} {
		if first[k] != want {
			t.Errorf("%s = %#v, want %#v (%s)", k, first[k], want, lines[0])
		}
	}
	if c, _ := first["cause"].(string); strings.HasPrefix(c, "core: ") || !strings.Contains(c, "busy") {
		t.Errorf("cause %q", c)
	}
	buf.Reset()
	clock = clock.Add(failLogWindow - time.Nanosecond)
	if d.logFailedSend(log, "grpc", "g1", "T", sendErr); buf.Len() != 0 {
		t.Fatalf("a line before the window ended: %s", buf.String())
	}
	clock = clock.Add(time.Nanosecond)
	d.logFailedSend(log, "grpc", "g1", "T", sendErr)
	if !strings.Contains(buf.String(), `"suppressed_before":6`) {
		t.Fatalf("after the window: %s", buf.String())
	}
}
