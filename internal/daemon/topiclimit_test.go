package daemon

import (
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"
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
