package remoting

import (
	"errors"
	"os"
	"testing"
	"time"
)

// TestServerRequestFlood: a server that keeps sending requests and never reads the
// replies is disconnected (the queue stays full: errRequestFlood; or the blocked write
// times out, whichever comes first), and the replies waiting for it never exceed the
// write-queue bound (issue 12, finding 6).
func TestServerRequestFlood(t *testing.T) {
	t.Parallel()
	flooding := make(chan error, 1)
	srv := startServer(t, func(fc *fakeConn) {
		if _, err := fc.read(); err != nil { // the client's heartbeat
			flooding <- err
			return
		}
		frame, err := AppendFrame(nil, &Command{Code: int32(NotifyConsumerIDsChanged)}, JSON)
		if err != nil {
			flooding <- err
			return
		}
		batch := make([]byte, 0, 256*len(frame))
		for range 256 {
			batch = append(batch, frame...)
		}
		for {
			// Never reads again; a write fails once the client closed the connection.
			if err := fc.writeRaw(batch); err != nil {
				flooding <- err
				return
			}
		}
	})
	h := newHookRecorder()
	c := newClient(t, Config{DefaultTimeout: 500 * time.Millisecond, Hooks: h.hooks()})
	if err := c.InvokeOneway(ctxTimeout(t, 10*time.Second), srv.addr, NewRequest(HeartBeat, nil, nil)); err != nil {
		t.Fatal(err)
	}
	maxQueued := 0
	deadline := time.After(30 * time.Second)
	for {
		select {
		case e := <-h.connC:
			if e.Open {
				continue
			}
			if !errors.Is(e.Err, errRequestFlood) && !errors.Is(e.Err, os.ErrDeadlineExceeded) {
				t.Fatalf("connection closed with %v, want errRequestFlood or a write timeout", e.Err)
			}
			if maxQueued > maxQueuedBytes+4096 {
				t.Fatalf("%d reply bytes queued, bound %d", maxQueued, maxQueuedBytes)
			}
			recv(t, flooding, "the server's write to fail")
			return
		case <-deadline:
			t.Fatal("the flooding server was not disconnected")
		case <-time.After(time.Millisecond):
			for _, ci := range c.Conns() {
				maxQueued = max(maxQueued, ci.Queued)
			}
		}
	}
}
