package daemon

import (
	"errors"
	"testing"
	"time"

	"github.com/producerd/producerd/core"
)

func TestTimerConversion(t *testing.T) {
	t.Parallel()
	at := "2030-01-02T03:04:05.678Z"
	pm, err := (&HTTPMessage{Topic: "T", DeliverAt: at}).toPB()
	if err != nil {
		t.Fatal(err)
	}
	want, _ := time.Parse(time.RFC3339Nano, at)
	if cm := toCore(pm); !cm.DeliverAt.Equal(want) || cm.Delay != 0 {
		t.Errorf("deliver_at: core message %v %v", cm.DeliverAt, cm.Delay)
	}
	pm, err = (&HTTPMessage{Topic: "T", Delay: "1500ms"}).toPB()
	if err != nil {
		t.Fatal(err)
	}
	if cm := toCore(pm); cm.Delay != 1500*time.Millisecond || !cm.DeliverAt.IsZero() {
		t.Errorf("delay: core message %v %v", cm.DeliverAt, cm.Delay)
	}
	for _, bad := range []HTTPMessage{{DeliverAt: "tomorrow"}, {Delay: "5 seconds"}} {
		if _, err := bad.toPB(); !errors.Is(err, core.ErrInvalidMessage) {
			t.Errorf("%+v: %v, want ErrInvalidMessage", bad, err)
		}
	}
}
