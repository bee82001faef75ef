package host

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os/exec"
	"sync"
	"time"

	"github.com/hashicorp/go-plugin"

	"github.com/producerd/producerd/host/internal/pluginclient"
	"github.com/producerd/producerd/internal/strategywire"
	"github.com/producerd/producerd/plugins/sdk"
)

// conn is one generation's session on a running plugin process (see proc): its own
// stream, decisions, outcomes and circuit breaker. The process may be shared with
// other generations, of this host and of other hosts on the same Pool.
type conn struct {
	sess  *pluginclient.Session
	info  pluginclient.Info
	pid   int
	local *localApply // set when the strategy declares LocalApply

	brk breaker // of this session's decisions

	killOnce sync.Once
}

// kill ends the session; the process it runs on is the pool's (proc) and stays.
func (c *conn) kill() {
	c.killOnce.Do(func() {
		if c.sess != nil {
			_ = c.sess.Close()
		}
	})
}

// running is one started plugin process: the go-plugin client, the strategy service,
// what the plugin declared, and the pool's own control session (liveness round trips
// and the trial decision of every start; it never carries a group's decisions).
type running struct {
	client *plugin.Client
	cmd    *exec.Cmd
	remote *pluginclient.Remote
	info   pluginclient.Info
	pid    int
	ctl    *pluginclient.Session

	stopOnce sync.Once
}

// stop ends the control session and the process: hard (SIGKILL first) for a plugin
// that failed, graceful (go-plugin's shutdown, then a kill after 2 s) otherwise. It
// returns once the process has exited.
func (r *running) stop(hard bool) {
	r.stopOnce.Do(func() {
		if r.ctl != nil {
			_ = r.ctl.Close()
		}
		if hard && r.cmd != nil && r.cmd.Process != nil {
			_ = r.cmd.Process.Kill()
		}
		r.client.Kill()
	})
}

// healthCheckTopic is the synthetic topic of the probe decision of a health check.
const healthCheckTopic = "__producerd_health_check__"

// launch starts the plugin process and brings it to the point where it decides: the
// trust check of its path (checkTrust), a minimal environment (pluginEnv), handshake
// (with AutoMTLS and the optional SHA-256 pin), Describe (the plugin builds its
// strategy from the settings), Configure for a version-1 plugin, the control session,
// and a health check (a sync round trip and a trial decision).
func (p *proc) launch(ctx context.Context) (_ *running, err error) {
	ctx, cancel := context.WithTimeout(ctx, p.cfg.StartTimeout)
	defer cancel()
	path, args := p.spec.executable()
	if !p.spec.builtin() && !p.spec.AllowInsecurePath {
		if err := checkTrust(path); err != nil {
			return nil, err
		}
	}
	cmd := exec.Command(path, args...)
	cmd.Env = pluginEnv(p.spec.Env)
	setProcAttr(cmd)
	cc := &plugin.ClientConfig{
		HandshakeConfig:  strategywire.Handshake,
		Plugins:          pluginclient.PluginSet(),
		Cmd:              cmd,
		SkipHostEnv:      true, // cmd.Env is the whole environment (with go-plugin's)
		AllowedProtocols: []plugin.Protocol{plugin.ProtocolGRPC},
		AutoMTLS:         true,
		StartTimeout:     p.cfg.StartTimeout,
		Logger:           p.log.Named("plugin"),
	}
	if p.spec.SHA256 != "" {
		sum, _ := hex.DecodeString(p.spec.SHA256) // validated by resolve
		cc.SecureConfig = &plugin.SecureConfig{Checksum: sum, Hash: sha256.New()}
	}
	r := &running{client: plugin.NewClient(cc), cmd: cmd}
	defer func() {
		if err != nil {
			r.stop(true)
		}
	}()
	proto, err := r.client.Client()
	if err != nil {
		if errors.Is(err, plugin.ErrChecksumsDoNotMatch) {
			return nil, fmt.Errorf("%w: %s", ErrChecksumMismatch, path)
		}
		return nil, fmt.Errorf("start plugin %s: %w", path, err)
	}
	if cmd.Process != nil {
		r.pid = cmd.Process.Pid
	}
	raw, err := proto.Dispense(strategywire.PluginName)
	if err != nil {
		return nil, fmt.Errorf("plugin %s: %w", path, err)
	}
	remote, ok := raw.(*pluginclient.Remote)
	if !ok {
		return nil, fmt.Errorf("plugin %s: dispensed %T", path, raw)
	}
	r.remote = remote
	r.info, err = remote.Describe(ctx, p.spec.Settings)
	if err != nil {
		return nil, fmt.Errorf("plugin %s: %w", path, err)
	}
	if r.info.ProtocolVersion < 2 {
		if err := remote.Configure(ctx, p.spec.Settings); err != nil {
			return nil, fmt.Errorf("plugin %s: %w", path, err)
		}
	}
	r.ctl, err = remote.Open(ctx, r.info, pluginclient.SessionOptions{
		DecisionTimeout: p.spec.DecisionTimeout,
		UrgentTimeout:   p.cfg.UrgentTimeout,
		SyncTimeout:     p.cfg.StallRestart,
	})
	if err != nil {
		return nil, fmt.Errorf("plugin %s: %w", path, err)
	}
	if err := r.ctl.Sync(ctx); err != nil {
		return nil, fmt.Errorf("%w: %s: sync: %w", ErrHealthCheck, path, err)
	}
	// Even a strategy the host applies locally answers one decision itself: every
	// kind of strategy gets the same trial before it goes live.
	if err := trialDecision(ctx, r.ctl.Select, r.info.Descriptor.NeedsMessage); err != nil {
		return nil, fmt.Errorf("%w: %s: %w", ErrHealthCheck, path, err)
	}
	return r, nil
}

// attach opens g's own session on the running process and checks it: a sync round
// trip, the broker health its fallback learned while the plugin was down (after a
// crash), and one trial decision, so every generation's session is proven before it
// decides.
func (p *proc) attach(r *running, g *generation) (_ *conn, err error) {
	ctx, cancel := context.WithTimeout(p.ctx, p.cfg.StartTimeout)
	defer cancel()
	c := &conn{info: r.info, pid: r.pid}
	opts := pluginclient.SessionOptions{
		DecisionTimeout: g.spec.DecisionTimeout,
		UrgentTimeout:   g.h.cfg.UrgentTimeout,
		SyncTimeout:     g.h.cfg.StallRestart,
	}
	if r.info.Descriptor.LocalApply {
		c.local = newLocalApply()
		opts.OnHealth = c.local.update
	}
	if c.sess, err = r.remote.Open(ctx, r.info, opts); err != nil {
		return nil, fmt.Errorf("plugin (pid %d): session for %q: %w", r.pid, g.spec.Name, err)
	}
	defer func() {
		if err != nil {
			c.kill()
		}
	}()
	if err := c.sess.Sync(ctx); err != nil {
		return nil, fmt.Errorf("%w (pid %d): session for %q: sync: %w", ErrHealthCheck, r.pid, g.spec.Name, err)
	}
	if g.fbHR != nil && r.info.Features.HealthSeeder && g.crashes.Load() > 0 {
		if rows := g.fbHR.Health(); len(rows) > 0 {
			c.sess.Seed(rows)
		}
	}
	if err := trialDecision(ctx, c.sess.Select, r.info.Descriptor.NeedsMessage); err != nil {
		return nil, fmt.Errorf("%w (pid %d): session for %q: %w", ErrHealthCheck, r.pid, g.spec.Name, err)
	}
	return c, nil
}

// trialDecision asks a new strategy (plugin, WebAssembly module or in-process) for one
// decision on a synthetic two-queue route before it goes live. A fresh process may miss
// the decision timeout once or twice; an error (a panic included) or an index outside
// the route fails at once.
func trialDecision(ctx context.Context, selectFn func(context.Context, *sdk.Selection) (int, error), needsMessage bool) error {
	sel := &sdk.Selection{
		Topic:        healthCheckTopic,
		RouteVersion: 1,
		Queues:       []sdk.Queue{{Broker: "health-check-a"}, {Broker: "health-check-b"}},
		Remaining:    time.Second,
	}
	if needsMessage {
		sel.Message = &sdk.MessageInfo{ShardingKey: "health-check", Keys: []string{"health-check"}}
	}
	var err error
	for range 20 {
		var i int
		i, err = selectFn(ctx, sel)
		switch {
		case err == nil && (i < 0 || i >= len(sel.Queues)):
			return fmt.Errorf("probe decision: index %d outside [0, %d)", i, len(sel.Queues))
		case err == nil:
			return nil
		case !errors.Is(err, strategywire.ErrDecisionTimeout):
			return fmt.Errorf("probe decision: %w", err)
		}
	}
	return fmt.Errorf("probe decision: %w", err)
}

// supervise owns the plugin process for every generation that uses it: it starts it,
// opens each user's session, waits for it to fail, and restarts it with backoff until
// the crash-loop limit, a permanent failure, or the last user leaving. Every failure
// is counted once per user (Status.Crashes, Hooks.OnCrash), every restart likewise.
func (p *proc) supervise() {
	defer close(p.done)
	cfg := p.cfg
	var failures []time.Time // within CrashLoopWindow
	streak := 0
	for {
		r, err := p.launch(p.ctx)
		if r != nil {
			p.mu.Lock()
			p.run, p.mode, p.lastErr = r, ModePlugin, nil
			p.starts++
			for _, u := range p.users {
				u.fails, u.retryAt = 0, time.Time{}
			}
			p.mu.Unlock()
			if p.starts > 1 || len(failures) > 0 {
				p.log.Info("strategy plugin restarted", "pid", r.pid, "users", p.userCount())
			}
			up := time.Now()
			cause := p.watch(r)
			p.detachAll(r)
			if p.ctx.Err() != nil {
				r.stop(false)
				return
			}
			r.stop(true)
			if time.Since(up) >= cfg.CrashLoopWindow {
				streak = 0
			}
			err = cause
		}
		if p.ctx.Err() != nil {
			return
		}
		streak++
		now := time.Now()
		failures = append(failures, now)
		for len(failures) > 0 && now.Sub(failures[0]) > cfg.CrashLoopWindow {
			failures = failures[1:]
		}
		switch {
		case errors.Is(err, ErrChecksumMismatch), errors.Is(err, ErrUntrustedPlugin), errors.Is(err, sdk.ErrInvalidSettings), errors.Is(err, strategywire.ErrUnsupportedVersion):
			p.log.Error("strategy plugin cannot be used; deciding in-process until the next swap", "error", err, "users", p.userCount())
			p.end(ModeFailed, err)
			return
		case cfg.CrashLoopLimit > 0 && len(failures) >= cfg.CrashLoopLimit:
			err = fmt.Errorf("%w: %d failures within %v, last: %w", ErrCrashLoop, len(failures), cfg.CrashLoopWindow, err)
			p.log.Error("strategy plugin keeps failing; deciding in-process until the next swap", "error", err, "users", p.userCount())
			p.end(ModeCrashLoop, err)
			return
		}
		delay := time.Duration(0)
		if streak > 1 {
			delay = min(cfg.RestartBackoff<<min(streak-2, 30), cfg.MaxRestartBackoff)
		}
		p.log.Error("strategy plugin failed; deciding in-process while it restarts", "error", err, "restart_in", delay, "users", p.userCount())
		p.failed(err)
		if !p.sleep(delay) {
			return
		}
	}
}

// sleep waits d, or less when a generation joins the stopped process (it should not
// wait out a backoff meant for a crashing plugin it never saw); false when the last
// user left.
func (p *proc) sleep(d time.Duration) bool {
	if d <= 0 {
		return p.ctx.Err() == nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-p.kick:
		return true
	case <-p.ctx.Done():
		return false
	}
}

// install makes c g's decider. restarted says that g saw the process fail since it
// last decided through it (counted in Status.Restarts and Hooks.OnRestart). It returns
// the hook call, for the caller to make once it released its locks.
func (g *generation) install(c *conn, restarted bool) (hookCall func()) {
	d := c.info.Descriptor
	if d.Name == "" {
		d.Name = g.spec.Name
	}
	g.desc.Store(&d)
	g.stateMu.Lock()
	g.pid = c.pid
	g.stateMu.Unlock()
	g.conn.Store(c)
	g.setMode(ModePlugin, nil)
	if !restarted {
		return func() {}
	}
	g.restarts.Add(1)
	hook, name, pid := g.h.cfg.Hooks.OnRestart, g.spec.Name, c.pid
	if hook == nil {
		return func() {}
	}
	return func() { hook(name, pid) }
}

// uninstall hands decisions to the fallback, seeded with the plugin's last published
// health so that it avoids the same brokers.
func (g *generation) uninstall(c *conn) {
	g.conn.CompareAndSwap(c, nil)
	if g.fbHS != nil {
		if rows := c.sess.Health(); len(rows) > 0 {
			g.fbHS.Seed(rows)
		}
	}
	g.stateMu.Lock()
	g.pid = 0
	g.stateMu.Unlock()
}

// livenessEvery is how often a running plugin must answer a sync round trip (within
// Config.StallRestart); it catches a plugin whose session hangs while no decision is
// asked of it (a locally applied strategy).
const livenessEvery = time.Second

// watch opens the sessions of the users that have none (at once, and whenever one
// joins) and returns when the process must be replaced: it exited, its control session
// broke, the plugin stayed unresponsive, or a user's decisions kept failing for
// StallRestart; or when the last user left (nil). A user's session that breaks while
// the process runs is opened again, for that user alone.
func (p *proc) watch(r *running) error {
	t := time.NewTicker(100 * time.Millisecond)
	defer t.Stop()
	live := make(chan error, 1)
	lastLive := time.Now()
	probing := false
	p.attachPending(r)
	for {
		select {
		case <-p.ctx.Done():
			return nil
		case <-p.joined:
			p.attachPending(r)
		case <-r.ctl.Done():
			return fmt.Errorf("%w (pid %d): %w", ErrPluginExited, r.pid, r.ctl.Err())
		case err := <-live:
			probing = false
			if err != nil && p.ctx.Err() == nil && r.ctl.Err() == nil {
				return fmt.Errorf("%w (pid %d): no sync answer within %v: %w", ErrUnresponsive, r.pid, p.cfg.StallRestart, err)
			}
		case <-t.C:
			if r.client.Exited() {
				return fmt.Errorf("%w (pid %d)", ErrPluginExited, r.pid)
			}
			if err := p.checkSessions(r); err != nil {
				return err
			}
			if !probing && time.Since(lastLive) >= livenessEvery {
				probing, lastLive = true, time.Now()
				go func() {
					ctx, cancel := context.WithTimeout(p.ctx, p.cfg.StallRestart)
					defer cancel()
					live <- r.ctl.Sync(ctx)
				}()
			}
		}
	}
}

// checkSessions reports a user whose circuit stayed open for StallRestart (the
// process is restarted, for every user: it is one plugin), and opens again the
// sessions that broke while the process kept running and those due for a retry.
func (p *proc) checkSessions(r *running) error {
	var broken []*conn
	p.mu.Lock()
	for g, u := range p.users {
		c := u.conn
		if c == nil {
			continue
		}
		if since := c.brk.openSince.Load(); since != 0 && time.Since(time.Unix(0, since)) >= p.cfg.StallRestart {
			p.mu.Unlock()
			return fmt.Errorf("%w (pid %d): decisions of %q failing for %v", ErrUnresponsive, r.pid, g.spec.Name, p.cfg.StallRestart)
		}
		if c.sess.Err() != nil {
			g.uninstall(c)
			g.setMode(ModeFallback, c.sess.Err())
			u.conn = nil
			broken = append(broken, c)
		}
	}
	p.mu.Unlock()
	for _, c := range broken {
		c.kill()
	}
	if len(broken) > 0 {
		// A dying process breaks every session, the control one maybe last: only a
		// process that still answers keeps running.
		ctx, cancel := context.WithTimeout(p.ctx, p.cfg.StallRestart)
		err := r.ctl.Sync(ctx)
		cancel()
		if err != nil || !r.alive() {
			return fmt.Errorf("%w (pid %d): %d sessions broke, then the control session: %v", ErrPluginExited, r.pid, len(broken), err)
		}
		p.log.Warn("strategy plugin sessions broke while the plugin runs; opening them again", "sessions", len(broken), "pid", r.pid)
	}
	p.attachPending(r)
	return nil
}

// alive reports whether the process runs and its control session is up.
func (r *running) alive() bool { return r.ctl.Err() == nil && !r.client.Exited() }

// attachPending opens a session for every user without one and installs it, unless
// the user left meanwhile. A user whose session cannot be opened while the process
// runs stays on its fallback (counted as a failure of its plugin) and is tried again
// with backoff; a process that is gone or hung is caught by watch.
func (p *proc) attachPending(r *running) {
	for {
		now := time.Now()
		p.mu.Lock()
		var g *generation
		for ug, u := range p.users {
			if u.conn == nil && !now.Before(u.retryAt) {
				g = ug
				break
			}
		}
		p.mu.Unlock()
		if g == nil || p.ctx.Err() != nil {
			return
		}
		c, err := p.attach(r, g)
		if err != nil && !r.alive() {
			return // the process failed: watch counts that once, for every user
		}
		var hookCall func()
		p.mu.Lock()
		u := p.users[g]
		switch {
		case u == nil: // it left meanwhile
			if c != nil {
				c.kill()
			}
		case err != nil:
			u.fails++
			u.retryAt = time.Now().Add(min(p.cfg.RestartBackoff<<min(u.fails-1, 30), p.cfg.MaxRestartBackoff))
			hookCall = p.countCrash(g, err)
			g.setMode(ModeFallback, err)
			u.down = true
			u.report(err)
			p.log.Error("strategy plugin session failed; that generation decides in-process", "strategy", g.spec.Name, "error", err, "retry_at", u.retryAt)
		default:
			u.conn, u.fails, u.retryAt = c, 0, time.Time{}
			hookCall = g.install(c, u.down)
			u.down = false
			u.report(nil)
		}
		p.mu.Unlock()
		if hookCall != nil {
			hookCall()
		}
	}
}

// detachAll hands every user's decisions to its fallback and ends its session: r is
// going away.
func (p *proc) detachAll(r *running) {
	var conns []*conn
	p.mu.Lock()
	if p.run == r {
		p.run = nil
	}
	for g, u := range p.users {
		if c := u.conn; c != nil {
			g.uninstall(c)
			u.conn = nil
			conns = append(conns, c)
		}
	}
	p.mu.Unlock()
	for _, c := range conns {
		c.kill()
	}
}

// failed records a failure of the process (a crash, a failed start, an unresponsive
// kill) for every user: counted, its mode set to fallback, and a user waiting for its
// first start told why.
func (p *proc) failed(err error) {
	var hookCalls []func()
	p.mu.Lock()
	p.mode, p.lastErr = ModeFallback, err
	for g, u := range p.users {
		hookCalls = append(hookCalls, p.countCrash(g, err))
		g.setMode(ModeFallback, err)
		u.down = true
		u.report(err)
	}
	p.mu.Unlock()
	runHooks(hookCalls)
}

// end records a failure that stops the restarts (mode ModeFailed or ModeCrashLoop):
// the process leaves the pool, so that the next generation that asks for this plugin
// starts a fresh one; its current users decide in-process until their next swap.
func (p *proc) end(mode Mode, err error) {
	var hookCalls []func()
	p.pool.mu.Lock()
	p.mu.Lock()
	if p.pool.procs[p.key] == p {
		delete(p.pool.procs, p.key)
	}
	p.mode, p.lastErr = mode, err
	for g, u := range p.users {
		hookCalls = append(hookCalls, p.countCrash(g, err))
		g.setMode(mode, err)
		if hook, name := g.h.cfg.Hooks.OnCrashLoop, g.spec.Name; mode == ModeCrashLoop && hook != nil {
			hookCalls = append(hookCalls, func() { hook(name, err) })
		}
		u.down = true
		u.report(err)
	}
	p.mu.Unlock()
	p.pool.mu.Unlock()
	runHooks(hookCalls)
}

// countCrash counts a failure of g's plugin and returns the OnCrash hook call, which
// the caller makes once it released its locks: a hook may read Status, which takes them.
func (p *proc) countCrash(g *generation, err error) (hookCall func()) {
	g.crashes.Add(1)
	hook, name := g.h.cfg.Hooks.OnCrash, g.spec.Name
	if hook == nil {
		return func() {}
	}
	return func() { hook(name, err) }
}

func runHooks(calls []func()) {
	for _, call := range calls {
		call()
	}
}

func (p *proc) userCount() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.users)
}
