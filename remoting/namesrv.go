package remoting

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"time"
)

// nameServers is the NameServer list and the sticky choice among it (spec §9.2).
type nameServers struct {
	mu     sync.Mutex
	list   []string // shuffled
	chosen string   // "" when none
	index  int
}

func (ns *nameServers) init() { ns.index = rand.IntN(999) }

// SetNameServers replaces the NameServer list. Blank entries and duplicates are dropped. When
// the set changed (size or membership; order does not count) the new list is shuffled and
// stored, and the chosen NameServer is forgotten if it is no longer listed.
func (c *Client) SetNameServers(addrs []string) {
	clean := make([]string, 0, len(addrs))
	for _, a := range addrs {
		a = strings.TrimSpace(a)
		if a != "" && !slices.Contains(clean, a) {
			clean = append(clean, a)
		}
	}
	ns := &c.ns
	ns.mu.Lock()
	defer ns.mu.Unlock()
	if sameSet(clean, ns.list) {
		return
	}
	rand.Shuffle(len(clean), func(i, j int) { clean[i], clean[j] = clean[j], clean[i] })
	ns.list = clean
	if ns.chosen != "" && !slices.Contains(clean, ns.chosen) {
		ns.chosen = ""
	}
}

func sameSet(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for _, x := range a {
		if !slices.Contains(b, x) {
			return false
		}
	}
	return true
}

// NameServers returns a copy of the NameServer list, in its shuffled order.
func (c *Client) NameServers() []string {
	c.ns.mu.Lock()
	defer c.ns.mu.Unlock()
	return slices.Clone(c.ns.list)
}

// pick returns the chosen NameServer, choosing the next one in rotation when there is none.
func (ns *nameServers) pick() (addr string, n int) {
	ns.mu.Lock()
	defer ns.mu.Unlock()
	n = len(ns.list)
	if n == 0 {
		return "", 0
	}
	if ns.chosen == "" {
		ns.index++
		if ns.index < 0 {
			ns.index = 0
		}
		ns.chosen = ns.list[ns.index%n]
	}
	return ns.chosen, n
}

// drop forgets addr as the chosen NameServer (if it still is), so the next pick moves on.
func (ns *nameServers) drop(addr string) {
	ns.mu.Lock()
	if ns.chosen == addr {
		ns.chosen = ""
	}
	ns.mu.Unlock()
}

// InvokeNameServer sends req to the chosen NameServer and waits for the response, like
// InvokeSync, and returns the address that answered. The choice is sticky while it works. When
// the connection cannot be opened, the next NameServer in the (shuffled) list is tried, up to
// one attempt per listed address within ctx. A timeout or broken connection on the chosen
// NameServer is returned, and the next call moves on to the next one.
func (c *Client) InvokeNameServer(ctx context.Context, req *Command) (resp *Command, addr string, err error) {
	return c.invokeNameServer(ctx, req, time.Time{})
}

// InvokeNameServerUntil is InvokeNameServer ending at deadline as well as with ctx (the
// zero time: ctx's deadline, else DefaultTimeout), which spares a caller a derived
// context and its timer per request.
func (c *Client) InvokeNameServerUntil(ctx context.Context, req *Command, deadline time.Time) (resp *Command, addr string, err error) {
	return c.invokeNameServer(ctx, req, deadline)
}

func (c *Client) invokeNameServer(ctx context.Context, req *Command, deadline time.Time) (resp *Command, addr string, err error) {
	for attempt := 0; ; attempt++ {
		var n int
		addr, n = c.ns.pick()
		if n == 0 {
			return nil, "", ErrNoNameServer
		}
		resp, err = c.invokeSyncUntil(ctx, addr, req, deadline, nil)
		var retry bool
		if retry, err = c.nameServerOutcome(ctx, addr, err, deadline, attempt, n); !retry {
			return resp, addr, err
		}
	}
}

// nameServerOutcome applies the NameServer rotation to the outcome err of a request
// to addr, the attempt-th (from 0) of n NameServers. A connection that cannot be opened
// drops addr and asks for the next NameServer (retry) while untried ones remain and time
// is left; after the last the error says how many were tried. A timeout or a broken
// connection drops addr for the next request.
func (c *Client) nameServerOutcome(ctx context.Context, addr string, err error, deadline time.Time, attempt, n int) (retry bool, _ error) {
	switch {
	case err == nil:
	case errors.Is(err, ErrConnect):
		c.ns.drop(addr)
		tried := attempt + 1
		if tried < n && ctx.Err() == nil && (deadline.IsZero() || time.Now().Before(deadline)) {
			return true, err
		}
		return false, fmt.Errorf("%w: no name server reachable (%d tried), last: %w", ErrConnect, tried, err)
	case nameServerAtFault(err):
		c.ns.drop(addr)
	}
	return false, err
}

// nameServerAtFault says whether a request's error drops its NameServer (nameServerOutcome).
func nameServerAtFault(err error) bool {
	return errors.Is(err, ErrTimeout) || errors.Is(err, ErrConnClosed) || errors.Is(err, ErrSend)
}
