package daemon

import (
	"bytes"
	"encoding/json"
	"testing"
	"time"
)

// TestJSONLogDurations: durations are text in JSON logs, also through With and Named.
func TestJSONLogDurations(t *testing.T) {
	t.Parallel()
	var b bytes.Buffer
	log := NewLogger("info", "json", &b).Named("x").With("budget", 3*time.Second)
	log.Info("sent", "took", 1500*time.Millisecond)
	var line map[string]any
	if err := json.Unmarshal(b.Bytes(), &line); err != nil {
		t.Fatalf("%v: %s", err, b.String())
	}
	if line["took"] != "1.5s" || line["budget"] != "3s" {
		t.Fatalf("took=%#v budget=%#v, want \"1.5s\" and \"3s\": %s", line["took"], line["budget"], b.String())
	}
}
