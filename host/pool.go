package host

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"os"
	"slices"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"
)

// Pool runs strategy plugin processes, one per distinct plugin, shared by every
// generation of every Host configured with the Pool (Config.Pool) that runs it. Two
// specs share a process when they start the same executable (the same file: path,
// size and modification time) with the same arguments, SHA-256 pin, settings,
// environment and trust setting; name and decision timeout may differ.
//
// Each generation keeps its own session (stream) on the shared process, with its own
// decisions, outcomes, fallback, circuit breaker, probation, status and metrics. The
// process is reference-counted: the first generation that needs it starts it, the last
// one that leaves (retired by a swap, rolled back, or its Host closed) stops it and
// waits for it to exit. Its supervision exists once: a crash is detected once, counted
// for every user, and one restart re-opens every user's session; backoff and the
// crash-loop limit apply to the process (with the settings of the Host that started
// it). A process that stopped restarting (crash loop, permanent failure) leaves the
// Pool, so the next generation that asks for the plugin starts a fresh one.
//
// Inside the process the strategy is built once from the settings, so generations
// sharing a process share one Selector and its broker health (what one generation
// learns about a broker, the others see at its next health table).
//
// WebAssembly strategies are shared the same way: one loaded module (its instances
// and their strategy state) per module file, settings and decision timeout, released
// by the last generation that uses it. (Compiled code is cached by host/wasm anyway;
// the sharing saves the instances, ~20 MiB per generation.)
//
// A Pool is safe for concurrent use and needs no Close: it holds no process and no
// goroutine once its last user left.
type Pool struct {
	log hclog.Logger

	mu    sync.Mutex
	procs map[string]*proc
	of    map[*generation]*proc
	wasm  map[string]*wasmEntry // poolwasm.go
}

// NewPool returns an empty Pool. log receives the supervision events of its
// processes (start, crash, restart) and, tagged "plugin", the plugins' own log lines;
// nil discards them.
func NewPool(log hclog.Logger) *Pool {
	if log == nil {
		log = hclog.NewNullLogger()
	}
	return &Pool{log: log, procs: make(map[string]*proc), of: make(map[*generation]*proc), wasm: make(map[string]*wasmEntry)}
}

// ProcessStatus describes one plugin process of a Pool.
type ProcessStatus struct {
	// Name and Plugin are from the spec of the generation that started it.
	Name, Plugin string
	// PID is the process id while it runs, else 0.
	PID int
	// Mode is ModePlugin while it runs, ModeStarting before its first start, else
	// ModeFallback (restarting).
	Mode Mode
	// Users is the number of generations (of every Host on the Pool) using it.
	Users int
	// Starts counts its successful starts (1 + restarts).
	Starts int
	// LastError is its last failure since it last started ("" if none).
	LastError string
}

// Processes returns the Pool's plugin processes (those that still restart).
func (p *Pool) Processes() []ProcessStatus {
	p.mu.Lock()
	procs := make([]*proc, 0, len(p.procs))
	for _, pr := range p.procs {
		procs = append(procs, pr)
	}
	p.mu.Unlock()
	out := make([]ProcessStatus, 0, len(procs))
	for _, pr := range procs {
		out = append(out, pr.status())
	}
	slices.SortFunc(out, func(a, b ProcessStatus) int { return a.PID - b.PID })
	return out
}

// proc is one plugin process of a Pool and its users.
type proc struct {
	pool *Pool
	key  string
	spec Spec   // of the generation that started it
	cfg  Config // of that generation's Host: timeouts, backoff, crash-loop limit
	log  hclog.Logger

	ctx    context.Context // ends when the last user leaves
	cancel context.CancelFunc
	done   chan struct{} // the supervisor ended and the process is gone
	kick   chan struct{} // a generation joined while the process is down: start now
	joined chan struct{} // a generation joined while the process runs: open its session

	mu      sync.Mutex
	users   map[*generation]*user
	run     *running // nil while down
	mode    Mode
	lastErr error
	starts  int
}

// user is one generation's membership in a proc.
type user struct {
	conn    *conn      // its session while installed
	first   chan error // the result of the first start or session it waits for
	waiting bool       // first not sent yet
	down    bool       // it saw the process fail since it last decided through it
	fails   int        // its failed session openings in a row on this process
	retryAt time.Time  // when its session is tried again after a failure
}

func (u *user) report(err error) {
	if u.waiting {
		u.waiting = false
		u.first <- err
	}
}

// join makes g a user of the process for its spec, starting it if none runs, and
// waits for g's session to decide, or for the first start attempt to fail (the
// error). g stays a user either way until g.ctx ends (generation.close), which makes
// it leave and closes g.supDone; the process then keeps restarting for it. ctx bounds
// only the wait.
func (p *Pool) join(ctx context.Context, g *generation) error {
	key := poolKey(g.spec)
	u := &user{first: make(chan error, 1), waiting: true}
	p.mu.Lock()
	pr := p.procs[key]
	fresh := pr == nil
	if fresh {
		pr = &proc{pool: p, key: key, spec: g.spec, cfg: g.h.cfg, mode: ModeStarting,
			log:    p.log.With("strategy", g.spec.Name, "plugin", g.spec.Plugin),
			done:   make(chan struct{}),
			kick:   make(chan struct{}, 1),
			joined: make(chan struct{}, 1),
			users:  make(map[*generation]*user),
		}
		pr.ctx, pr.cancel = context.WithCancel(context.Background())
		p.procs[key] = pr
	}
	pr.mu.Lock()
	pr.users[g] = u
	up := pr.run != nil
	pr.mu.Unlock()
	p.of[g] = pr
	if fresh {
		go pr.supervise() // after g is a user: its first start opens g's session
	}
	p.mu.Unlock()
	context.AfterFunc(g.ctx, func() {
		pr.leave(g)
		close(g.supDone)
	})
	switch {
	case fresh:
	case up:
		notify(pr.joined)
	default:
		notify(pr.kick)
	}
	select {
	case err := <-u.first:
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}

func notify(ch chan struct{}) {
	select {
	case ch <- struct{}{}:
	default:
	}
}

// leave ends g's use of the process: its session ends; when it was the last user,
// the process stops and leave returns once it has exited.
func (pr *proc) leave(g *generation) {
	p := pr.pool
	p.mu.Lock()
	delete(p.of, g)
	pr.mu.Lock()
	var c *conn
	if u := pr.users[g]; u != nil {
		c = u.conn
		delete(pr.users, g)
	}
	last := len(pr.users) == 0
	if last {
		if p.procs[pr.key] == pr {
			delete(p.procs, pr.key)
		}
	}
	pr.mu.Unlock()
	p.mu.Unlock()
	if c != nil {
		c.kill()
	}
	if last {
		pr.cancel()
		<-pr.done
	}
}

// users returns the number of generations using g's process (0 when g runs none).
func (p *Pool) users(g *generation) int {
	p.mu.Lock()
	pr := p.of[g]
	p.mu.Unlock()
	if pr == nil {
		return 0
	}
	return pr.userCount()
}

func (pr *proc) status() ProcessStatus {
	pr.mu.Lock()
	defer pr.mu.Unlock()
	st := ProcessStatus{Name: pr.spec.Name, Plugin: pr.spec.Plugin, Mode: pr.mode, Users: len(pr.users), Starts: pr.starts}
	if pr.run != nil {
		st.PID = pr.run.pid
	}
	if pr.lastErr != nil {
		st.LastError = pr.lastErr.Error()
	}
	return st
}

// poolKey identifies the process a spec runs in: what starts it (the executable file
// too, so a rebuilt plugin gets a new process at the next swap), what it is given
// (settings, environment values), and what is checked before it starts.
func poolKey(s Spec) string {
	path, args := s.executable()
	h := sha256.New()
	field := func(b []byte) {
		var n [8]byte
		binary.BigEndian.PutUint64(n[:], uint64(len(b)))
		h.Write(n[:])
		h.Write(b)
	}
	field([]byte(path))
	field(binary.BigEndian.AppendUint64(nil, uint64(len(args))))
	for _, a := range args {
		field([]byte(a))
	}
	if fi, err := os.Stat(path); err == nil {
		var id [16]byte
		binary.BigEndian.PutUint64(id[:8], uint64(fi.Size()))
		binary.BigEndian.PutUint64(id[8:], uint64(fi.ModTime().UnixNano()))
		field(id[:])
	} else {
		field(nil)
	}
	field([]byte(s.SHA256))
	field(bytes.TrimSpace(s.Settings))
	env := pluginEnv(s.Env)
	slices.Sort(env)
	field(binary.BigEndian.AppendUint64(nil, uint64(len(env))))
	for _, e := range env {
		field([]byte(e))
	}
	if s.AllowInsecurePath {
		field([]byte{1})
	} else {
		field([]byte{0})
	}
	return hex.EncodeToString(h.Sum(nil))
}
