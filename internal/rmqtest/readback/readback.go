// Package readback reads messages back from the real RocketMQ test cluster, so that
// integration tests can prove that what was acknowledged is stored. It is separate from
// rmqtest because it needs core, which remoting's own tests (users of rmqtest) cannot
// import.
package readback

import (
	"context"
	"testing"
	"time"

	"github.com/producerd/producerd/core"
	"github.com/producerd/producerd/internal/rmqtest"
	"github.com/producerd/producerd/remoting"
)

// group is the consumer group of the verifying pulls.
const group = "producerd_verifier"

// Queue is one queue of a topic on one broker.
type Queue struct {
	Broker, Addr string
	ID           int32
}

// Marks are the next offsets of a topic's queues at one moment: what is written later
// starts there.
type Marks map[Queue]int64

// Client returns a remoting client for reading back, closed at the end of the test.
func Client(t testing.TB) *remoting.Client {
	t.Helper()
	rc, err := remoting.NewClient(remoting.Config{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { rc.Close() })
	return rc
}

// Mark records the next offset of queues 0..queues-1 of topic on every broker of c.
func Mark(t testing.TB, rc *remoting.Client, c *rmqtest.Cluster, topic string, queues int32) Marks {
	t.Helper()
	m := make(Marks)
	for _, b := range c.Brokers {
		for id := range queues {
			off, err := core.MaxOffset(context.Background(), rc, b.Addr, topic, id)
			if err != nil {
				t.Fatalf("readback: max offset of %s %s/%d: %v", topic, b.Name, id, err)
			}
			m[Queue{Broker: b.Name, Addr: b.Addr, ID: id}] = off
		}
	}
	return m
}

// Scan pulls every message of topic written since m, once, calling f for each; it stops
// as soon as f returns true and reports whether one did.
func Scan(t testing.TB, rc *remoting.Client, topic string, m Marks, f func(*core.MessageExt) bool) bool {
	t.Helper()
	for q, off := range m {
		for {
			msgs, next, err := core.PullMessages(context.Background(), rc, q.Addr, group, topic, q.ID, off, 32)
			if err != nil {
				t.Fatalf("readback: pull %s %s/%d at %d: %v", topic, q.Broker, q.ID, off, err)
			}
			for _, msg := range msgs {
				if f(msg) {
					return true
				}
			}
			if len(msgs) == 0 || next == off {
				break
			}
			off = next
		}
	}
	return false
}

// Missing returns how many of the UNIQ_KEYs in want are not among the messages of topic
// written since m. The broker indexes asynchronously, so it scans again (up to 15 s)
// while some are missing.
func Missing(t testing.TB, rc *remoting.Client, topic string, m Marks, want []string) int {
	t.Helper()
	left := make(map[string]bool, len(want))
	for _, id := range want {
		left[id] = true
	}
	for deadline := time.Now().Add(15 * time.Second); ; {
		Scan(t, rc, topic, m, func(msg *core.MessageExt) bool {
			delete(left, msg.UniqKey())
			return len(left) == 0
		})
		if len(left) == 0 || time.Now().After(deadline) {
			return len(left)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// Find returns the first message of topic written since m for which match is true,
// scanning again for up to 15 s; it fails the test when none appears.
func Find(t testing.TB, rc *remoting.Client, topic string, m Marks, match func(*core.MessageExt) bool) *core.MessageExt {
	t.Helper()
	var found *core.MessageExt
	for deadline := time.Now().Add(15 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		if Scan(t, rc, topic, m, func(msg *core.MessageExt) bool {
			if match(msg) {
				found = msg
			}
			return found != nil
		}) {
			return found
		}
	}
	t.Fatalf("readback: no matching message in %s", topic)
	return nil
}
