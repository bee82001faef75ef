package remoting

import (
	"context"
	"errors"
	"slices"
	"time"
)

// InvokeNameServerBatch sends every request of reqs to the chosen NameServer and waits
// for their answers, as InvokeNameServerUntil does for one: resps[i] and errs[i] (both
// as long as reqs) receive reqs[i]'s answer or error, and addr is the NameServer asked.
// The frames are queued back to back and the connection's writer is woken once, after
// the last, so that one write carries the batch and its answers come back together: a
// batch costs a write, a read or two and one goroutine wake-up where as many requests
// one by one cost that each (the route refresh's bunches, at 100,000 topics thousands
// a second).
//
// The NameServer rotation applies to the batch as a whole: when the chosen NameServer's
// connection cannot be opened (no request was sent) the batch moves on to the next one,
// and a timeout or a broken connection drops the chosen one for the next request.
func (c *Client) InvokeNameServerBatch(ctx context.Context, reqs []*Command, deadline time.Time, resps []*Command, errs []error) (addr string) {
	if len(reqs) == 0 {
		return ""
	}
	for attempt := 0; ; attempt++ {
		var n int
		addr, n = c.ns.pick()
		if n == 0 {
			for i := range reqs {
				resps[i], errs[i] = nil, ErrNoNameServer
			}
			return ""
		}
		c.invokeBatch(ctx, addr, reqs, deadline, resps, errs)
		// The batch's outcome: when no request could be sent (every error ErrConnect)
		// that error; else the first failure that tells on the NameServer (a timeout,
		// a broken connection), which drops it; else none.
		var failed error
		if !slices.ContainsFunc(errs, func(err error) bool { return !errors.Is(err, ErrConnect) }) {
			failed = errs[0]
		} else if i := slices.IndexFunc(errs, nameServerAtFault); i >= 0 {
			failed = errs[i]
		}
		retry, err := c.nameServerOutcome(ctx, addr, failed, deadline, attempt, n)
		if retry {
			continue
		}
		if err != failed {
			for i := range errs {
				if errors.Is(errs[i], ErrConnect) {
					errs[i] = err // says how many NameServers were tried
				}
			}
		}
		return addr
	}
}

// invokeBatch sends reqs to addr as held sync calls (conn.enqueue), wakes the writer of
// each connection used (one, unless it broke in between) once they are all queued, and
// collects the answers in order. A request that cannot be sent because the connection
// cannot be opened fails the ones after it alike, without another dial each. When the
// deadline passes or ctx ends the answers not in yet are given up.
func (c *Client) invokeBatch(ctx context.Context, addr string, reqs []*Command, deadline time.Time, resps []*Command, errs []error) {
	calls := make([]*call, len(reqs))
	var conns []*conn
	var unreachable error
	for i, req := range reqs {
		resps[i], errs[i] = nil, nil
		cl := syncCalls.Get().(*call)
		c.prepare(ctx, cl, kindSync, addr, req, deadline)
		if unreachable != nil {
			errs[i] = unreachable
			c.finish(cl, nil, unreachable)
			continue
		}
		cl.held = true
		cn, err := c.submit(ctx, cl, req)
		if err != nil {
			if errors.Is(err, ErrConnect) || ctx.Err() != nil {
				unreachable = err
			}
			errs[i] = err
			c.finish(cl, nil, err)
			continue
		}
		calls[i] = cl
		if !slices.Contains(conns, cn) {
			conns = append(conns, cn)
		}
	}
	for _, cn := range conns {
		cn.wake(cn.wsig)
	}

	// One timer for the batch (expiry: only when the calls' deadline comes before
	// ctx's); the calls share the deadline rule, so the latest is within microseconds
	// of the others.
	var last time.Time
	for _, cl := range calls {
		if cl != nil && cl.deadline.After(last) {
			last = cl.deadline
		}
	}
	expired, stop := expiry(ctx, last)
	defer stop()
	over := false // the wait ended: what is not in now is given up
	for i, cl := range calls {
		if cl == nil {
			continue
		}
		answered := false
		if !over {
			select {
			case <-cl.done:
				answered = true
			case <-ctx.Done():
				over = true
			case <-expired:
				over = true
			}
		} else {
			select {
			case <-cl.done:
				answered = true
			default:
			}
		}
		if answered {
			resps[i], errs[i] = cl.resp, cl.err
		} else {
			resps[i], errs[i] = c.giveUp(ctx, cl.cn, cl, false)
		}
		c.finish(cl, resps[i], errs[i])
	}
}
