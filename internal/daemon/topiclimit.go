package daemon

import (
	"fmt"

	"sync"
	"sync/atomic"
	"time"

	"github.com/producerd/producerd/core"
)

// topicTracker bounds the topics one group sends to: each costs a route the client
// refreshes and metric series. A message to a new topic past limits.max_topics is
// refused (RESOURCE_EXHAUSTED) unless a topic not sent to for limits.topic_idle can be
// forgotten to make room; forgetting drops the topic's metric series.
//
// Forgetting also drops the topic's cached route and round-robin counter in core
// (Producer.ForgetTopic). Every admission costs O(1): a full tracker looks for idle
// topics only once one can be idle (noIdleBefore), so refusals at 100,000 tracked
// topics do not scan them. A message to a tracked topic takes the read lock and one map
// lookup (with 100,000 topics sent to in turn, each one is cache misses).
type topicTracker struct {
	mu   sync.RWMutex
	max  int
	idle time.Duration
	last map[string]*lastSeen
	// noIdleBefore is the oldest last-seen time at the last scan plus idle: times only
	// grow, so no tracked topic is idle before it.
	noIdleBefore time.Time
	onForget     func(topic string)
	// base is when the tracker was made: last-seen times are kept as durations since
	// it, so they stay on the monotonic clock (a wall clock stepped by NTP would make
	// every topic idle at once, or none for as long as the step).
	base time.Time
	// now is time.Now; a test steps its wall-clock reading.
	now func() time.Time
}

// lastSeen is when a tracked topic was last sent to, in nanoseconds since the
// tracker's base: updated under the read lock, read by the idle scan under the write
// lock.
type lastSeen struct{ at atomic.Int64 }

func (t *topicTracker) store(l *lastSeen, now time.Time) { l.at.Store(int64(now.Sub(t.base))) }

func (t *topicTracker) seen(l *lastSeen) time.Time { return t.base.Add(time.Duration(l.at.Load())) }

func newTopicTracker(maxTopics int, idle time.Duration, onForget func(string)) *topicTracker {
	return &topicTracker{max: maxTopics, idle: idle, last: make(map[string]*lastSeen), onForget: onForget,
		base: time.Now(), now: time.Now}
}

// tooManyTopicsError refuses a message to a new topic; it is errBusy to callers (a
// retry succeeds once a topic went idle).
type tooManyTopicsError struct {
	group, topic string
	max          int
	idle         time.Duration
}

func (e *tooManyTopicsError) Error() string {
	return fmt.Sprintf("daemon: group %s already tracks %d topics (limits.max_topics); topic %q is refused until one was idle for %v (limits.topic_idle)",
		e.group, e.max, e.topic, e.idle)
}

func (e *tooManyTopicsError) Unwrap() error { return errBusy }

// admit records a message to topic, or refuses it.
func (t *topicTracker) admit(group, topic string) error {
	now := t.now()
	t.mu.RLock()
	if e := t.last[topic]; e != nil {
		// Under the read lock: the idle scan (write lock) cannot forget the topic
		// between this lookup and the update.
		t.store(e, now)
		t.mu.RUnlock()
		return nil
	}
	t.mu.RUnlock()
	t.mu.Lock()
	if e := t.last[topic]; e != nil || len(t.last) < t.max {
		if e == nil {
			e = new(lastSeen)
			t.last[topic] = e
		}
		t.store(e, now)
		t.mu.Unlock()
		return nil
	}
	var forgotten []string
	if !now.Before(t.noIdleBefore) {
		oldest := now
		for name, e := range t.last {
			if at := t.seen(e); now.Sub(at) >= t.idle {
				delete(t.last, name)
				forgotten = append(forgotten, name)
			} else if at.Before(oldest) {
				oldest = at
			}
		}
		t.noIdleBefore = oldest.Add(t.idle)
	}
	ok := len(t.last) < t.max
	if ok {
		e := new(lastSeen)
		t.store(e, now)
		t.last[topic] = e
	}
	t.mu.Unlock()
	for _, name := range forgotten {
		if t.onForget != nil {
			t.onForget(name)
		}
	}
	if !ok {
		return &tooManyTopicsError{group: group, topic: topic, max: t.max, idle: t.idle}
	}
	return nil
}

// count returns how many topics are tracked.
func (t *topicTracker) count() int {
	t.mu.RLock()
	defer t.mu.RUnlock()
	return len(t.last)
}

// admitTopic checks the topic's name first (an invalid name must not take a slot), then
// records it for g.
func (d *Daemon) admitTopic(g *group, topic string) error {
	if err := core.ValidateTopic(topic); err != nil {
		return err
	}
	return g.topics.admit(g.name, topic)
}
