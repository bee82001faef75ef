package main

import (
	"fmt"
	"time"

	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/producerd/producerd/api/producerdpb"
)

// setTimer fills the timer fields of a message from `send --deliver-at` / `--after`.
func setTimer(m *producerdpb.Message, deliverAt string, after time.Duration) error {
	if deliverAt != "" {
		t, err := time.Parse(time.RFC3339Nano, deliverAt)
		if err != nil {
			return fmt.Errorf("--deliver-at %q: want an RFC 3339 time such as 2030-01-02T15:04:05Z", deliverAt)
		}
		m.DeliverAt = timestamppb.New(t)
	}
	if after != 0 {
		m.Delay = durationpb.New(after)
	}
	return nil
}
