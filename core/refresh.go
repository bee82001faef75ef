package core

import (
	"context"
	"sync"
	"time"
)

// RouteRefreshParallel bounds the route fetches one client has in flight during its
// scheduled refresh.
const RouteRefreshParallel = 8

// refresher runs the scheduled route refresh at a fixed rate, as Java's
// scheduleAtFixedRate does: a cycle starts every period whatever the previous one took.
// Within a cycle the topics known at its start are fetched evenly spread over the period
// (topic i at start + i·period/n), at most parallel at a time, so a NameServer sees
// n/period requests a second instead of a burst of n every period; with 10,000 topics and
// the default 30s, 334 a second.
//
// The fetches go out in small bunches (refreshBunch): with thousands of topics one
// request every few hundred microseconds costs a write and a read system call and two
// goroutine wake-ups each, while a bunch written back to back shares them (the
// connection's writer coalesces the frames, the answers arrive together). parallel
// workers live as long as run, so a fetch does not start a goroutine and grow its stack.
type refresher[T any] struct {
	initial, period time.Duration
	parallel        int
	topics          func() []T                         // the topics to refresh, read at each cycle start
	fetch           func(ctx context.Context, topic T) // one topic's refresh; ctx ends with stop
	stop            <-chan struct{}
}

// refreshBunchSpan bounds a bunch to the topics of this much of a cycle, so that no
// one-second window sees more than a tenth above the cycle's mean rate.
const refreshBunchSpan = 100 * time.Millisecond

// refreshBunch is how many of n topics refreshed every period go out together: the
// topics of refreshBunchSpan, at least 1 and at most parallel (as many as the workers).
func refreshBunch(n int, period time.Duration, parallel int) int {
	if period <= 0 {
		return 1
	}
	return max(1, min(parallel, int(int64(n)*int64(refreshBunchSpan)/int64(period))))
}

// run refreshes until stop closes, then waits for the fetches in flight.
func (r *refresher[T]) run() {
	parallel := max(1, r.parallel)
	ctx, cancel := context.WithCancel(context.Background())
	work := make(chan T)
	var workers sync.WaitGroup
	for range parallel {
		workers.Go(func() {
			for topic := range work {
				r.fetch(ctx, topic)
			}
		})
	}
	defer workers.Wait()
	defer cancel() // before the Wait above: fetches in flight end early
	defer close(work)
	t := time.NewTimer(r.initial)
	defer t.Stop()
	sleepUntil := func(at time.Time) bool {
		t.Reset(time.Until(at))
		select {
		case <-t.C:
			return true
		case <-r.stop:
			return false
		}
	}
	start := time.Now().Add(r.initial)
	for {
		if !sleepUntil(start) {
			return
		}
		names := r.topics()
		bunch := refreshBunch(len(names), r.period, parallel)
		for i, topic := range names {
			if i > 0 && i%bunch == 0 && !sleepUntil(start.Add(r.period*time.Duration(i)/time.Duration(len(names)))) {
				return
			}
			select {
			case work <- topic: // blocks while every worker waits for an answer
			case <-r.stop:
				return
			}
		}
		start = start.Add(r.period)
		if now := time.Now(); start.Before(now) {
			// Fetches waited on slow answers past a whole period: start the next cycle
			// now, never several at once to catch up.
			start = now
		}
	}
}

// refreshEntry is a topic the scheduled refresh fetches, with its state: a fetch does
// not look the topic up again (with 100,000 topics a lookup is several cache misses).
type refreshEntry struct {
	name string
	ts   *topicState
}

// refreshEntries returns every known topic.
func (c *Client) refreshEntries() []refreshEntry {
	out := make([]refreshEntry, 0, c.topics.Len())
	c.topics.Range(func(name string, ts *topicState) bool {
		out = append(out, refreshEntry{name, ts})
		return true
	})
	return out
}

// refreshTopic fetches one topic's route again, unless a fetch of it is in flight
// already or the topic was forgotten since the cycle started.
func (c *Client) refreshTopic(ctx context.Context, e refreshEntry) {
	ts := e.ts
	if ts.forgotten.Load() {
		return
	}
	if !ts.fetchMu.TryLock() {
		return // a fetch is in flight already
	}
	defer ts.fetchMu.Unlock()
	// Bunched: the refresh's workers fetch several topics at once (refreshBunch).
	_, err := c.updateRoute(ctx, e.name, ts, true)
	if err != nil && !isTopicNotExist(err) && ctx.Err() == nil {
		c.log.Warn("route refresh failed; keeping the cached route", "topic", e.name, "error", err)
	}
}
