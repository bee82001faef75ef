package main

import (
	"testing"
	"time"

	"github.com/producerd/producerd/api/producerdpb"
)

func TestSetTimer(t *testing.T) {
	t.Parallel()
	m := &producerdpb.Message{}
	if err := setTimer(m, "2030-01-02T03:04:05Z", 0); err != nil || m.GetDeliverAt().AsTime().Unix() != 1893553445 || m.Delay != nil {
		t.Errorf("deliver-at: %v %v", m, err)
	}
	m = &producerdpb.Message{}
	if err := setTimer(m, "", 5*time.Second); err != nil || m.GetDelay().AsDuration() != 5*time.Second || m.DeliverAt != nil {
		t.Errorf("after: %v %v", m, err)
	}
	if err := setTimer(&producerdpb.Message{}, "tomorrow", 0); err == nil {
		t.Error("a bad --deliver-at was accepted")
	}
}
