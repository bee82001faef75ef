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
type refresher struct {
	initial, period time.Duration
	parallel        int
	topics          func() []string                        // the topics to refresh, read at each cycle start
	fetch           func(ctx context.Context, name string) // one topic's refresh; ctx ends with stop
	stop            <-chan struct{}
}

// run refreshes until stop closes, then waits for the fetches in flight.
func (r *refresher) run() {
	sem := make(chan struct{}, max(1, r.parallel))
	var inflight sync.WaitGroup
	defer inflight.Wait()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel() // before the Wait above: fetches in flight end early
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
		for i, name := range names {
			if i > 0 && !sleepUntil(start.Add(r.period*time.Duration(i)/time.Duration(len(names)))) {
				return
			}
			select {
			case sem <- struct{}{}:
			case <-r.stop:
				return
			}
			inflight.Add(1)
			go func() {
				defer func() { <-sem; inflight.Done() }()
				r.fetch(ctx, name)
			}()
		}
		start = start.Add(r.period)
		if now := time.Now(); start.Before(now) {
			// Fetches waited on slow answers past a whole period: start the next cycle
			// now, never several at once to catch up.
			start = now
		}
	}
}

// topicNames returns every known topic.
func (c *Client) topicNames() []string {
	var names []string
	c.topics.Range(func(k, _ any) bool {
		names = append(names, k.(string))
		return true
	})
	return names
}

// refreshTopic fetches one topic's route again, unless a fetch of it is in flight already.
func (c *Client) refreshTopic(ctx context.Context, name string) {
	v, ok := c.topics.Load(name)
	if !ok {
		return
	}
	ts := v.(*topicState)
	if !ts.fetchMu.TryLock() {
		return // a fetch is in flight already
	}
	defer ts.fetchMu.Unlock()
	_, err := c.updateRoute(ctx, name, ts)
	if err != nil && !isTopicNotExist(err) && ctx.Err() == nil {
		c.log.Warn("route refresh failed; keeping the cached route", "topic", name, "error", err)
	}
}
