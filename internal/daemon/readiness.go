package daemon

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/producerd/producerd/core"
	"github.com/producerd/producerd/remoting"
)

// readiness is whether the daemon can send: a NameServer answered, and a probed topic
// (readiness.topics, else each group's create_topic_key) or a topic in use has a
// writable route. Until then /readyz answers 503 and grpc.health NOT_SERVING; /healthz
// stays liveness. Once ready the daemon stays ready (sends then use cached routes even
// while the NameServers are away), so the probe stops.
type readiness struct {
	ready  atomic.Bool
	mu     sync.Mutex
	reason string
	cancel context.CancelFunc
	done   chan struct{}
}

func (r *readiness) state() (bool, string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.ready.Load(), r.reason
}

func (d *Daemon) setReady(ok bool, reason string) {
	d.readiness.mu.Lock()
	changed := d.readiness.ready.Load() != ok || d.readiness.reason != reason
	d.readiness.ready.Store(ok)
	d.readiness.reason = reason
	d.readiness.mu.Unlock()
	if !changed {
		return
	}
	if ok {
		d.log.Info("ready: a NameServer answered and a writable route exists")
	} else {
		d.log.Warn("not ready", "reason", reason)
	}
	d.updateHealth()
}

// probeTopics are the topics whose route makes the daemon ready.
func (d *Daemon) probeTopics() []string {
	cfg := d.Config()
	if len(cfg.Readiness.Topics) > 0 {
		return cfg.Readiness.Topics
	}
	var out []string
	for _, p := range cfg.Producers {
		k := p.CreateTopicKey
		if k == "" {
			k = core.DefaultCreateTopicKey
		}
		if !strings.Contains(strings.Join(out, "\x00"), k) {
			out = append(out, k)
		}
	}
	return out
}

// probe asks a NameServer for the probe topics' routes; it reports readiness and, when
// not ready, why.
func (d *Daemon) probe(ctx context.Context) (bool, string) {
	gs := d.groupList()
	if len(gs) == 0 {
		return false, "no producer group"
	}
	timeout := d.Config().Client.APITimeout
	if timeout <= 0 {
		timeout = 3 * time.Second
	}
	rc := gs[0].prod.Client().Remoting()
	topics := d.probeTopics()
	answered := false
	var last error
	for _, topic := range topics {
		cctx, cancel := context.WithTimeout(ctx, timeout)
		resp, addr, err := rc.InvokeNameServer(cctx, remoting.NewRequest(remoting.GetRouteInfoByTopic, map[string]string{"topic": topic}, nil))
		cancel()
		if err != nil {
			last = err
			continue
		}
		answered = true
		if err := remoting.ResponseError(addr, resp); err != nil {
			last = err
			continue
		}
		route, err := core.ParseTopicRoute(resp.Body)
		if err != nil {
			last = fmt.Errorf("topic %s: %w", topic, err)
			continue
		}
		if writable(route) {
			return true, ""
		}
		last = fmt.Errorf("topic %s has no writable queue on a broker with a master", topic)
	}
	if !answered {
		return false, fmt.Sprintf("no NameServer answered: %v", last)
	}
	for _, g := range gs {
		for _, r := range g.prod.Client().Routes() {
			if len(r.Queues) > 0 {
				return true, ""
			}
		}
	}
	return false, fmt.Sprintf("no writable route for %s: %v", strings.Join(topics, ", "), last)
}

// writable reports whether a route has a writable queue on a broker with a master.
func writable(r *core.TopicRoute) bool {
	for _, q := range r.QueueDatas {
		if q.Perm&core.PermWrite == 0 || q.WriteQueueNums <= 0 {
			continue
		}
		for _, b := range r.BrokerDatas {
			if b.BrokerName == q.BrokerName && b.BrokerAddrs[0] != "" {
				return true
			}
		}
	}
	return false
}

// startReadiness probes once (bounded by the API timeout), then, while not ready,
// again every route refresh on a goroutine stopped by stopReadiness.
func (d *Daemon) startReadiness(ctx context.Context) {
	ok, reason := d.probe(ctx)
	d.setReady(ok, reason)
	if ok {
		return
	}
	interval := d.Config().Client.RouteRefresh
	if interval <= 0 {
		interval = core.DefaultRouteRefresh
	}
	pctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	d.readiness.cancel, d.readiness.done = cancel, make(chan struct{})
	go func() {
		defer close(d.readiness.done)
		t := time.NewTicker(interval)
		defer t.Stop()
		for {
			select {
			case <-pctx.Done():
				return
			case <-t.C:
			}
			ok, reason := d.probe(pctx)
			if pctx.Err() != nil {
				return
			}
			d.setReady(ok, reason)
			if ok {
				return
			}
		}
	}()
}

func (d *Daemon) stopReadiness() {
	if d.readiness.cancel != nil {
		d.readiness.cancel()
		<-d.readiness.done
	}
}

// readyz is 200 when the daemon is ready and not draining, else 503 with the reason.
func (d *Daemon) readyz(w http.ResponseWriter, _ *http.Request) {
	ok, reason := d.readiness.state()
	switch {
	case d.limit.isDraining():
		writeJSON(w, http.StatusServiceUnavailable, map[string]string{"status": "draining"})
	case !ok:
		writeJSON(w, http.StatusServiceUnavailable, map[string]string{"status": "not ready", "reason": reason})
	default:
		writeJSON(w, http.StatusOK, map[string]string{"status": "ready"})
	}
}
