package daemon

import (
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"
	"unsafe"
)

// TestTopicTracker: past max_topics a new topic is refused as errBusy; a topic idle for
// topic_idle is forgotten (its metrics dropped) to make room (finding 10).
func TestTopicTracker(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var forgotten []string
		tr := newTopicTracker(2, time.Minute, func(topic string) { forgotten = append(forgotten, topic) })
		for _, topic := range []string{"a", "b", "a"} {
			if err := tr.admit("g", topic); err != nil {
				t.Fatalf("%s: %v", topic, err)
			}
		}
		err := tr.admit("g", "c")
		if want := time.Now().Add(time.Minute); !tr.noIdleBefore.Equal(want) {
			t.Fatalf("after a scan: no topic idle before %v, want %v", tr.noIdleBefore, want)
		}
		var tm *tooManyTopicsError
		if !errors.As(err, &tm) || !errors.Is(err, errBusy) || !strings.Contains(err.Error(), "limits.max_topics") {
			t.Fatalf("third topic: %v", err)
		}
		time.Sleep(30 * time.Second)
		if err := tr.admit("g", "a"); err != nil { // a is fresh again, b is not
			t.Fatal(err)
		}
		// Refused without a scan: b cannot be idle before noIdleBefore.
		before := tr.noIdleBefore
		tr.last["b"].at.Store(0) // a scan now would forget b
		if err := tr.admit("g", "d"); err == nil || tr.noIdleBefore != before || len(forgotten) != 0 {
			t.Fatalf("refusal before noIdleBefore scanned: %v, forgotten %v", err, forgotten)
		}
		tr.store(tr.last["b"], before.Add(-time.Minute))
		time.Sleep(31 * time.Second)
		if err := tr.admit("g", "c"); err != nil {
			t.Fatalf("after b went idle: %v", err)
		}
		if fmt.Sprint(forgotten) != "[b]" || tr.count() != 2 {
			t.Fatalf("forgotten %v, tracked %d", forgotten, tr.count())
		}
	})
}

// TestTopicTrackerWallClockStep: idleness follows the time elapsed on the monotonic
// clock, not the wall clock's reading. The tracker's clock returns what time.Now does
// after the system clock was stepped (by NTP, or by hand): an hour forward 10 s after
// two topics were sent to makes neither idle (limits.topic_idle is a minute), so a
// third is refused; an hour back 2 minutes after makes both idle, so they are forgotten
// to make room. On wall-clock readings the first forgot both and the second forgot
// neither for the next hour.
func TestTopicTrackerWallClockStep(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name          string
		elapsed, step time.Duration
		admitted      bool   // the third topic
		forgotten     string // to make room for it
	}{
		{"forward", 10 * time.Second, time.Hour, false, "[]"},
		{"back", 2 * time.Minute, -time.Hour, true, "[a b]"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			var forgotten []string
			tr := newTopicTracker(2, time.Minute, func(topic string) { forgotten = append(forgotten, topic) })
			t0 := time.Now()
			now := t0
			tr.now = func() time.Time { return now }
			for _, topic := range []string{"a", "b"} {
				if err := tr.admit("g", topic); err != nil {
					t.Fatalf("%s: %v", topic, err)
				}
			}
			now = stepped(t, t0.Add(tc.elapsed), tc.step)
			err := tr.admit("g", "c")
			slices.Sort(forgotten)
			if got := fmt.Sprint(forgotten); (err == nil) != tc.admitted || got != tc.forgotten {
				t.Fatalf("%v elapsed, wall clock stepped %v: topic c admitted %v (%v), forgotten %s; want admitted %v, forgotten %s",
					tc.elapsed, tc.step, err == nil, err, got, tc.admitted, tc.forgotten)
			}
		})
	}
}

// stepped returns t, a time with a monotonic clock reading, with its wall-clock reading
// moved by step and its monotonic reading kept: what time.Now returns after the system
// clock was stepped. The time package has no way to make one, so the monotonic reading
// is copied over t.Add(step)'s (time.Time is {wall uint64; ext int64; loc}; with a
// monotonic reading, ext is that reading); the result is checked to fail loudly if that
// layout changes.
func stepped(tb testing.TB, t time.Time, step time.Duration) time.Time {
	tb.Helper()
	type timeFields struct {
		wall uint64
		ext  int64
	}
	s := t.Add(step)
	(*timeFields)(unsafe.Pointer(&s)).ext = (*timeFields)(unsafe.Pointer(&t)).ext
	if !s.Equal(t) || s.Round(0).Sub(t.Round(0)) != step {
		tb.Fatalf("stepped %v by %v: %v, equal on the monotonic clock %v, wall %v apart", t, step, s, s.Equal(t), s.Round(0).Sub(t.Round(0)))
	}
	return s
}

// TestTopicTrackerConcurrent: admissions of tracked topics (read lock) race with new
// topics and idle scans (write lock) without exceeding max_topics.
func TestTopicTrackerConcurrent(t *testing.T) {
	const limit = 50
	var forgotten atomic.Int64
	tr := newTopicTracker(limit, time.Millisecond, func(string) { forgotten.Add(1) })
	var wg sync.WaitGroup
	for w := range 8 {
		wg.Go(func() {
			for i := range 2000 {
				_ = tr.admit("g", fmt.Sprint("t", (w*7+i)%(2*limit)))
			}
		})
	}
	wg.Wait()
	if n := tr.count(); n > limit || n == 0 {
		t.Fatalf("%d topics tracked, want 1..%d", n, limit)
	}
}

// TestTopicLimitIngress: against the daemon, a client cannot make it track more topics
// than limits.max_topics, and an invalid topic name takes no slot (finding 10).
func TestTopicLimitIngress(t *testing.T) {
	c := startCluster(t)
	h := startText(t, c, httpConfig(c.NameServerAddr(), instanceName(t), "max_topics = 3"))
	url := "http://" + h.httpAddr + "/v1/messages"
	if code, _ := post(t, url, `{"topic":"bad topic","body":"x"}`); code != http.StatusBadRequest {
		t.Fatalf("invalid topic: %d", code)
	}
	for i := range 3 {
		if code, body := post(t, url, fmt.Sprintf(`{"topic":"Many%d","body":"x"}`, i)); code != 200 {
			t.Fatalf("topic %d: %d %s", i, code, body)
		}
	}
	code, body := post(t, url, `{"topic":"Many3","body":"x"}`)
	if code != http.StatusTooManyRequests || !strings.Contains(body, "max_topics") {
		t.Fatalf("fourth topic: %d %s", code, body)
	}
	if code, _ := post(t, url, `{"topic":"Many0","body":"again"}`); code != 200 {
		t.Fatalf("a tracked topic: %d", code)
	}
}

// BenchmarkTopicTrackerAdmit: a message to one of 100,000 tracked topics in turn, the
// tracker full (limits.max_topics = 100,000), GOMAXPROCS goroutines:
// go test -run '^$' -bench TopicTrackerAdmit ./internal/daemon/
func BenchmarkTopicTrackerAdmit(b *testing.B) {
	const n = 100_000
	names := make([]string, n)
	tr := newTopicTracker(n, time.Hour, nil)
	for i := range names {
		names[i] = fmt.Sprint("growth-", i)
		if err := tr.admit("g", names[i]); err != nil {
			b.Fatal(err)
		}
	}
	var next atomic.Int64
	b.SetParallelism(1)
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if err := tr.admit("g", names[next.Add(7919)%n]); err != nil {
				b.Error(err)
				return
			}
		}
	})
}
