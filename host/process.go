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

// conn is one running plugin process and its session.
type conn struct {
	client *plugin.Client
	cmd    *exec.Cmd
	sess   *pluginclient.Session
	info   pluginclient.Info
	pid    int
	local  *localApply // set when the strategy declares LocalApply

	brk breaker // of this process's decisions

	killOnce sync.Once
}

// kill ends the session and the process: hard (SIGKILL first) for a plugin that
// failed, graceful (go-plugin's shutdown, then a kill after 2 s) otherwise.
func (c *conn) kill(hard bool) {
	c.killOnce.Do(func() {
		if c.sess != nil {
			_ = c.sess.Close()
		}
		if hard && c.cmd != nil && c.cmd.Process != nil {
			_ = c.cmd.Process.Kill()
		}
		c.client.Kill()
	})
}

// healthCheckTopic is the synthetic topic of the probe decision of a health check.
const healthCheckTopic = "__producerd_health_check__"

// launch starts the plugin process and brings it to the point where it decides:
// the trust check of its path (checkTrust), a minimal environment (pluginEnv),
// handshake (with AutoMTLS and the optional SHA-256 pin), Describe, Configure, the
// session, and a health check (a sync round trip; plus a probe decision for strategies
// not applied locally).
func (g *generation) launch(ctx context.Context) (_ *conn, err error) {
	ctx, cancel := context.WithTimeout(ctx, g.h.cfg.StartTimeout)
	defer cancel()
	path, args := g.spec.executable()
	if !g.spec.builtin() && !g.spec.AllowInsecurePath {
		if err := checkTrust(path); err != nil {
			return nil, err
		}
	}
	cmd := exec.Command(path, args...)
	cmd.Env = pluginEnv(g.spec.Env)
	setProcAttr(cmd)
	cc := &plugin.ClientConfig{
		HandshakeConfig:  strategywire.Handshake,
		Plugins:          pluginclient.PluginSet(),
		Cmd:              cmd,
		SkipHostEnv:      true, // cmd.Env is the whole environment (with go-plugin's)
		AllowedProtocols: []plugin.Protocol{plugin.ProtocolGRPC},
		AutoMTLS:         true,
		StartTimeout:     g.h.cfg.StartTimeout,
		Logger:           g.log.Named("plugin"),
	}
	if g.spec.SHA256 != "" {
		sum, _ := hex.DecodeString(g.spec.SHA256) // validated by resolve
		cc.SecureConfig = &plugin.SecureConfig{Checksum: sum, Hash: sha256.New()}
	}
	c := &conn{client: plugin.NewClient(cc), cmd: cmd}
	defer func() {
		if err != nil {
			c.kill(true)
		}
	}()
	proto, err := c.client.Client()
	if err != nil {
		if errors.Is(err, plugin.ErrChecksumsDoNotMatch) {
			return nil, fmt.Errorf("%w: %s", ErrChecksumMismatch, path)
		}
		return nil, fmt.Errorf("start plugin %s: %w", path, err)
	}
	if cmd.Process != nil {
		c.pid = cmd.Process.Pid
	}
	raw, err := proto.Dispense(strategywire.PluginName)
	if err != nil {
		return nil, fmt.Errorf("plugin %s: %w", path, err)
	}
	remote, ok := raw.(*pluginclient.Remote)
	if !ok {
		return nil, fmt.Errorf("plugin %s: dispensed %T", path, raw)
	}
	c.info, err = remote.Describe(ctx, g.spec.Settings)
	if err != nil {
		return nil, fmt.Errorf("plugin %s: %w", path, err)
	}
	if c.info.ProtocolVersion < 2 {
		if err := remote.Configure(ctx, g.spec.Settings); err != nil {
			return nil, fmt.Errorf("plugin %s: %w", path, err)
		}
	}
	opts := pluginclient.SessionOptions{
		DecisionTimeout: g.spec.DecisionTimeout,
		UrgentTimeout:   g.h.cfg.UrgentTimeout,
		SyncTimeout:     g.h.cfg.StallRestart,
	}
	if c.info.Descriptor.LocalApply {
		c.local = newLocalApply()
		opts.OnHealth = c.local.update
	}
	c.sess, err = remote.Open(ctx, c.info, opts)
	if err != nil {
		return nil, fmt.Errorf("plugin %s: %w", path, err)
	}
	if err := c.sess.Sync(ctx); err != nil {
		return nil, fmt.Errorf("%w: %s: sync: %w", ErrHealthCheck, path, err)
	}
	// Even a strategy the host applies locally answers one decision itself: every
	// kind of strategy gets the same trial before it goes live.
	if err := trialDecision(ctx, c.sess.Select, c.info.Descriptor.NeedsMessage); err != nil {
		return nil, fmt.Errorf("%w: %s: %w", ErrHealthCheck, path, err)
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

// supervise owns the generation's plugin process: it installs a running one, waits
// for it to fail, and restarts it with backoff until the crash-loop limit, a permanent
// failure, or retirement. first is the process started by Start or Swap (nil when that
// start failed with firstErr).
func (g *generation) supervise(first *conn, firstErr error) {
	defer close(g.supDone)
	cfg := g.h.cfg
	c, err := first, firstErr
	var failures []time.Time // within CrashLoopWindow
	streak := 0
	for {
		if c != nil {
			g.install(c)
			up := time.Now()
			cause := g.watch(c)
			g.uninstall(c)
			if g.ctx.Err() != nil {
				c.kill(false)
				return
			}
			c.kill(true)
			if time.Since(up) >= cfg.CrashLoopWindow {
				streak = 0
			}
			err = cause
		}
		if g.ctx.Err() != nil {
			return
		}
		streak++
		now := time.Now()
		failures = append(failures, now)
		for len(failures) > 0 && now.Sub(failures[0]) > cfg.CrashLoopWindow {
			failures = failures[1:]
		}
		g.crashes.Add(1)
		if hook := cfg.Hooks.OnCrash; hook != nil {
			hook(g.spec.Name, err)
		}
		switch {
		case errors.Is(err, ErrChecksumMismatch), errors.Is(err, ErrUntrustedPlugin), errors.Is(err, sdk.ErrInvalidSettings), errors.Is(err, strategywire.ErrUnsupportedVersion):
			g.log.Error("strategy plugin cannot be used; deciding in-process until the next swap", "error", err)
			g.setMode(ModeFailed, err)
			return
		case cfg.CrashLoopLimit > 0 && len(failures) >= cfg.CrashLoopLimit:
			err = fmt.Errorf("%w: %d failures within %v, last: %w", ErrCrashLoop, len(failures), cfg.CrashLoopWindow, err)
			g.log.Error("strategy plugin keeps failing; deciding in-process until the next swap", "error", err)
			g.setMode(ModeCrashLoop, err)
			if hook := cfg.Hooks.OnCrashLoop; hook != nil {
				hook(g.spec.Name, err)
			}
			return
		}
		delay := time.Duration(0)
		if streak > 1 {
			delay = min(cfg.RestartBackoff<<min(streak-2, 30), cfg.MaxRestartBackoff)
		}
		g.log.Error("strategy plugin failed; deciding in-process while it restarts", "error", err, "restart_in", delay)
		g.setMode(ModeFallback, err)
		if !sleep(g.ctx, delay) {
			return
		}
		c, err = g.launch(g.ctx)
		if c != nil {
			g.restarts.Add(1)
			g.log.Info("strategy plugin restarted", "pid", c.pid)
			if hook := cfg.Hooks.OnRestart; hook != nil {
				hook(g.spec.Name, c.pid)
			}
		}
	}
}

func sleep(ctx context.Context, d time.Duration) bool {
	if d <= 0 {
		return ctx.Err() == nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}

// install makes c the decider. When the fallback decided meanwhile and learned broker
// health, the plugin starts from it.
func (g *generation) install(c *conn) {
	if g.fbHR != nil && c.info.Features.HealthSeeder && g.crashes.Load() > 0 {
		if rows := g.fbHR.Health(); len(rows) > 0 {
			c.sess.Seed(rows)
		}
	}
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

// watch returns when c must be replaced: the process exited, the session broke, or
// the plugin stayed unresponsive; or when the generation is retired (nil).
func (g *generation) watch(c *conn) error {
	t := time.NewTicker(100 * time.Millisecond)
	defer t.Stop()
	live := make(chan error, 1)
	lastLive := time.Now()
	probing := false
	for {
		select {
		case <-g.ctx.Done():
			return nil
		case <-c.sess.Done():
			return fmt.Errorf("%w (pid %d): %w", ErrPluginExited, c.pid, c.sess.Err())
		case err := <-live:
			probing = false
			if err != nil && g.ctx.Err() == nil && c.sess.Err() == nil {
				return fmt.Errorf("%w (pid %d): no sync answer within %v: %w", ErrUnresponsive, c.pid, g.h.cfg.StallRestart, err)
			}
		case <-t.C:
			if c.client.Exited() {
				return fmt.Errorf("%w (pid %d)", ErrPluginExited, c.pid)
			}
			if since := c.brk.openSince.Load(); since != 0 && time.Since(time.Unix(0, since)) >= g.h.cfg.StallRestart {
				return fmt.Errorf("%w (pid %d): decisions failing for %v", ErrUnresponsive, c.pid, g.h.cfg.StallRestart)
			}
			if !probing && time.Since(lastLive) >= livenessEvery {
				probing, lastLive = true, time.Now()
				go func() {
					ctx, cancel := context.WithTimeout(g.ctx, g.h.cfg.StallRestart)
					defer cancel()
					live <- c.sess.Sync(ctx)
				}()
			}
		}
	}
}
