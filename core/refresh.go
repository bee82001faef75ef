package core

import (
	"context"
	"sync"
	"time"

	"github.com/producerd/producerd/remoting"
)

// The scheduled refresh asks the NameServer for at most RouteRefreshBatch routes in one
// batch (remoting.Client.InvokeNameServerBatch) and has at most routeRefreshWorkers
// batches in flight: at most RouteRefreshParallel fetches.
const (
	RouteRefreshBatch    = 16
	routeRefreshWorkers  = 8
	RouteRefreshParallel = routeRefreshWorkers * RouteRefreshBatch
)

// refresher runs the scheduled route refresh at a fixed rate, as Java's
// scheduleAtFixedRate does: a cycle starts every period whatever the previous one took.
// Within a cycle the topics known at its start are fetched evenly spread over the period
// (topic i at start + i·period/n), so a NameServer sees n/period requests a second
// instead of a burst of n every period; with 10,000 topics and the default 30s, 334 a
// second.
//
// The fetches go out in bunches (refreshBunch): with thousands of topics one request
// every few hundred microseconds costs a write and a read system call and two goroutine
// wake-ups each, while a bunch sent as one batch shares them (one write carries its
// frames, the answers arrive together, one goroutine waits for them all). workers
// goroutines, each with one bunch at a time, live as long as run, so a bunch does not
// start a goroutine and grow its stack.
type refresher[T any] struct {
	initial, period time.Duration
	workers, batch  int                                  // bunches in flight, topics in a bunch at most
	topics          func() []T                           // the topics to refresh, read at each cycle start
	fetch           func(ctx context.Context, bunch []T) // a bunch's refresh; ctx ends with stop
	stop            <-chan struct{}
}

// refreshBunchSpan bounds a bunch to the topics of this much of a cycle, so that no
// one-second window sees more than a tenth above the cycle's mean rate.
const refreshBunchSpan = 100 * time.Millisecond

// refreshBunch is how many of n topics refreshed every period go out together: the
// topics of refreshBunchSpan, at least 1 and at most batch.
func refreshBunch(n int, period time.Duration, batch int) int {
	if period <= 0 {
		return 1
	}
	return max(1, min(batch, int(int64(n)*int64(refreshBunchSpan)/int64(period))))
}

// run refreshes until stop closes, then waits for the fetches in flight.
func (r *refresher[T]) run() {
	ctx, cancel := context.WithCancel(context.Background())
	work := make(chan []T)
	var workers sync.WaitGroup
	for range max(1, r.workers) {
		workers.Go(func() {
			for bunch := range work {
				r.fetch(ctx, bunch)
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
		bunch := refreshBunch(len(names), r.period, max(1, r.batch))
		for i := 0; i < len(names); i += bunch {
			if i > 0 && !sleepUntil(start.Add(r.period*time.Duration(i)/time.Duration(len(names)))) {
				return
			}
			select {
			case work <- names[i:min(i+bunch, len(names))]: // blocks while every worker waits for answers
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

// refreshTopics fetches the routes of a bunch of topics again in one NameServer batch,
// skipping those forgotten since the cycle started and those with a fetch in flight
// already. A failed fetch keeps the topic's cached route. Each topic's fetchMu is held
// until the batch is answered, as one topic's was until its answer: a send that needs
// the topic fetched waits for the batch (at most APITimeout) instead of asking again.
func (c *Client) refreshTopics(ctx context.Context, bunch []refreshEntry) {
	todo := make([]refreshEntry, 0, len(bunch))
	for _, e := range bunch {
		if !e.ts.forgotten.Load() && e.ts.fetchMu.TryLock() {
			todo = append(todo, e)
		}
	}
	if len(todo) == 0 {
		return
	}
	// The bunch's requests in two arrays, not two allocations each.
	cmds, fields, reqs := make([]remoting.Command, len(todo)), make([]remoting.Field, len(todo)), make([]*remoting.Command, len(todo))
	for i, e := range todo {
		routeRequest(&cmds[i], fields[i:], e.name)
		reqs[i] = &cmds[i]
	}
	resps, errs := make([]*remoting.Command, len(todo)), make([]error, len(todo))
	addr := c.rc.InvokeNameServerBatch(ctx, reqs, time.Now().Add(c.cfg.APITimeout), resps, errs)
	failed, firstTopic, firstErr := 0, "", error(nil)
	for i, e := range todo {
		pr, err := c.routeAnswer(e.name, resps[i], addr, errs[i])
		if err == nil {
			c.install(e.name, e.ts, pr, false, addr)
		}
		e.ts.fetchMu.Unlock()
		if err != nil && !isTopicNotExist(err) && ctx.Err() == nil {
			if failed++; failed == 1 {
				firstTopic, firstErr = e.name, err
			}
		}
	}
	if failed > 0 {
		// One line for the bunch: a NameServer that is down fails all of it alike.
		c.log.Warn("route refresh failed; keeping the cached routes", "topic", firstTopic, "error", firstErr, "failed", failed, "of", len(todo))
	}
}
