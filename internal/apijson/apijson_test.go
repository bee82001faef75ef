package apijson

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/producerd/producerd/api/producerdpb"
)

func TestMarshalDialect(t *testing.T) {
	t.Parallel()
	st := &producerdpb.StatusResponse{Pid: 14454, StartedUnixMs: 1_700_000_000_000}
	b, err := Marshal(st)
	if err != nil {
		t.Fatal(err)
	}
	var got map[string]any
	if err := json.Unmarshal(b, &got); err != nil {
		t.Fatal(err)
	}
	if got["pid"] != float64(14454) {
		t.Errorf("pid = %#v, want the number 14454", got["pid"])
	}
	for _, k := range []string{"draining", "config_generation", "clients", "inflight", "not_ready_reason"} {
		if _, ok := got[k]; !ok {
			t.Errorf("zero field %q left out: %s", k, b)
		}
	}
	r, _ := Marshal(&producerdpb.SendResult{QueueOffset: 1 << 40})
	if !strings.Contains(string(r), `"status": "SEND_OK"`) || !strings.Contains(string(r), `"queue_offset": 1099511627776`) {
		t.Errorf("SendResult: %s", r)
	}
	m, _ := Marshal(&producerdpb.Message{Body: []byte("hi"), Delay: durationpb.New(1500 * time.Millisecond),
		DeliverAt: timestamppb.New(time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)), Properties: map[string]string{"b": "2", "a": "1"}})
	for _, want := range []string{`"delay": "1.5s"`, `"deliver_at": "2026-01-02T03:04:05Z"`, `"body": "aGk="`, `"mode": "SYNC"`, `"a": "1",`} {
		if !strings.Contains(string(m), want) {
			t.Errorf("Message: %s lacks %s", m, want)
		}
	}
}

func TestCleanMessage(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]string{
		"core: invalid message: topic.charset: bad":   "invalid message: topic.charset: bad",
		"messages[1]: daemon: unknown producer group": "messages[1]: unknown producer group",
		"broker said: hardcore: x":                    "broker said: hardcore: x",
	} {
		if got := CleanMessage(in); got != want {
			t.Errorf("CleanMessage(%q) = %q, want %q", in, got, want)
		}
	}
}
