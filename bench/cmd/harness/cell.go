package main

import (
	"bufio"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/producerd/producerd/bench/internal/load"
)

// Variants of the daemon driver: over the ingress Unix socket instead of TCP, and
// against ingress-echo (the gRPC hop alone, no daemon behind it) over TCP and the socket.
const (
	variantUnix      = "unix"
	variantFloor     = "floor"
	variantFloorUnix = "floor-unix"
)

// floor reports whether c runs against ingress-echo instead of the daemon.
func (c *cell) floor() bool { return c.Variant == variantFloor || c.Variant == variantFloorUnix }

// overUnix reports whether c's load client dials the server's Unix socket.
func (c *cell) overUnix() bool { return c.Variant == variantUnix || c.Variant == variantFloorUnix }

// cell is one driver run of one scenario.
type cell struct {
	Scenario string
	Driver   string // core, java, clientgo, daemon
	Variant  string // e.g. the strategy, shown next to the driver
	// Interleave, for the core driver with a comma list of strategies: the slice each
	// strategy's producer gets in turn (core-driver -interleave; its PATH lines).
	Interleave time.Duration
	Mode       string
	Conc       int
	Size       int
	Batch      int
	N          int
	Duration   time.Duration
	Warmup     int
	Rate       float64
	Strategy   string
	Group      string // daemon: producer group
	// Topic overrides the harness's topic; Topics and Groups (daemon, growth points)
	// send to Topics numbered topics through Groups numbered groups (load.Name).
	Topic          string
	Topics, Groups int
	// WarmupTime bounds the warm-up (0: the driver's default, at most 30 s); Pause is
	// the driver's idle time between the warm-up and the measured phase.
	WarmupTime, Pause time.Duration
	Trace             bool
	Profile           bool
	// Round is 1, 2, ... when a scenario runs several rounds.
	Round int
	// noQuiet skips the quiet gate (a growth point's route warm-up, which is not
	// measured: the gate comes before the measured run that follows).
	noQuiet bool
	// addr is the ingress of the daemon the cell drives when it is not the shared one.
	addr string
}

func (c *cell) name() string {
	n := c.Scenario + "." + c.Driver
	if c.Variant != "" {
		n += "." + c.Variant
	}
	if c.Round > 1 {
		n += ".r" + strconv.Itoa(c.Round)
	}
	return n
}

// cellResult is what the harness learnt from one cell.
type cellResult struct {
	Cell    cell
	Command string
	// Status is "ok", "failed" or "missing"; Note says why.
	Status string
	Note   string
	// Res is the driver's result line. For the daemon, Res.CPU and Res.RSSMiB are
	// replaced by the daemon's (plus its plugin processes'), and the client's own are
	// kept in ClientCPU and ClientRSS.
	Res *load.Result
	// SelfCPU is the CPU the driver reported for itself (its own process only).
	SelfCPU float64
	// ProcCPU is the driver process's CPU in the measured phase read by the harness,
	// ChildCPU its children's (plugin processes).
	ProcCPU, ChildCPU float64
	// TotalCPU is the driver process's CPU over its whole life (start-up, JIT, warm-up
	// and shutdown included), from wait4.
	TotalCPU float64
	// ClientCPU and ClientRSS: the daemon driver's load client (driver 1 only).
	ClientCPU, ClientRSS float64
	// PluginCPU is the CPU of plugin processes during the phase (core host plugins,
	// daemon plugins), included in Res.CPU.
	PluginCPU float64
	LoadAvg   string
	// ServerCPU is the NameServer's and brokers' CPU during the phase; OtherCPU the
	// machine's busy CPU that neither they nor the measured processes used (other
	// people's work on the shared machine).
	ServerCPU, OtherCPU float64
	// QuietWait is how long the cell waited for a quiet machine, OthersBefore the other
	// processes' load (cores) in the last second before it started.
	QuietWait    time.Duration
	OthersBefore float64
	Trace        string
	Profile      string
	Failover     *failoverResult
	// Decisions and Fallbacks: the host's counts over the driver's life (warm-up
	// included) for the host strategies (the driver's STRATEGY line); -1 when not told.
	Decisions, Fallbacks int64
	// Paths are an interleaved cell's per-strategy figures (core-driver PATH lines), in
	// the order of its -strategy list, with each strategy's STRATEGY line.
	Paths  []pathResult
	Growth *growthStats
	// daemonChildren and daemonChildRSS: the daemon's child processes at the end mark
	// and the sum of their peak RSS (MiB).
	daemonChildren int
	daemonChildRSS float64
}

// args renders the common driver flags.
func (c *cell) args(h *harness) []string {
	topic := h.topic
	if c.Topic != "" {
		topic = c.Topic
	}
	ns := h.cl.NameServer
	if c.Topics > 0 && h.dev != nil {
		ns = h.dev.NameServerAddr()
	} else if ns == "" {
		ns = "none" // the daemon driver does not use it
	}
	a := []string{
		"-namesrv", ns, "-topic", topic, "-mode", c.Mode,
		"-n", strconv.Itoa(c.N), "-duration", c.Duration.String(), "-size", strconv.Itoa(c.Size),
		"-concurrency", strconv.Itoa(c.Conc), "-batch", strconv.Itoa(max(c.Batch, 1)),
		"-warmup", strconv.Itoa(c.Warmup), "-timeout", "3s", "-label", c.Scenario, "-handshake",
	}
	if c.Rate > 0 {
		a = append(a, "-rate", strconv.FormatFloat(c.Rate, 'f', -1, 64))
	}
	if c.Strategy != "" {
		a = append(a, "-strategy", c.Strategy)
	}
	if c.Group != "" {
		a = append(a, "-group", c.Group)
	}
	if c.Topics > 0 {
		a = append(a, "-topics", strconv.Itoa(c.Topics))
	}
	if c.Groups > 0 {
		a = append(a, "-groups", strconv.Itoa(c.Groups))
	}
	if c.WarmupTime > 0 {
		a = append(a, "-warmup-time", c.WarmupTime.String())
	}
	if c.Pause > 0 {
		a = append(a, "-pause", c.Pause.String())
	}
	if c.Interleave > 0 {
		a = append(a, "-interleave", c.Interleave.String())
	}
	return a
}

// command returns the driver's command line, or a reason it cannot run.
func (h *harness) command(c *cell) ([]string, string) {
	a := c.args(h)
	switch c.Driver {
	case "core", "clientgo":
		bin := filepath.Join(h.binDir, c.Driver+"-driver")
		if _, err := os.Stat(bin); err != nil {
			return nil, c.Driver + "-driver not built: " + err.Error()
		}
		return append([]string{bin}, a...), ""
	case "daemon":
		addr := c.addr
		if addr == "" && h.daemon == nil {
			return nil, h.daemonMissing
		} else if addr == "" && c.overUnix() {
			addr = "unix://" + h.daemon.unix
		} else if addr == "" {
			addr = h.daemon.addr
		}
		bin := filepath.Join(h.binDir, "daemon-driver")
		if _, err := os.Stat(bin); err != nil {
			return nil, "daemon-driver not built: " + err.Error()
		}
		return append([]string{bin, "-addr", addr}, a...), ""
	case "java":
		if _, err := os.Stat(h.javaJar); err != nil {
			return nil, "java driver not built: " + err.Error()
		}
		home := filepath.Join(h.rawDir, "java-home")
		return append([]string{"java", "-Xms256m", "-Xmx512m", "-Duser.home=" + home, "-jar", h.javaJar}, a...), ""
	}
	return nil, "unknown driver " + c.Driver
}

// runCell starts the driver, reads the process's (and, for driver 1, the daemon's)
// /proc entries at the driver's marks and parses its result line. onStart, when set,
// runs in its own goroutine once the measured phase started.
func (h *harness) runCell(c cell, onStart func(pid int)) *cellResult {
	r := &cellResult{Cell: c, LoadAvg: loadAvg(), Decisions: -1, Fallbacks: -1}
	if c.floor() {
		// The echo server stands in for the daemon: the load client dials it, and its
		// CPU is read where the daemon's would be.
		if h.floor == nil {
			r.Status, r.Note = "missing", h.floorMissing
			logf("%-28s MISSING: %s", c.name(), h.floorMissing)
			return r
		}
		daemon := h.daemon
		h.daemon = h.floor
		defer func() { h.daemon = daemon }()
	}
	argv, missing := h.command(&c)
	if missing != "" {
		r.Status, r.Note = "missing", missing
		logf("%-28s MISSING: %s", c.name(), missing)
		return r
	}
	if c.Trace {
		r.Trace = filepath.Join(h.rawDir, c.name()+".trace.csv")
		argv = append(argv, "-trace", r.Trace)
	}
	var daemonProfile string
	switch {
	case c.Profile && c.Driver == "daemon":
		if h.profileDaemon && h.daemon != nil && h.daemon.admin != "" {
			daemonProfile = filepath.Join(h.rawDir, c.name()+".daemon.cpu.pprof")
			r.Profile = daemonProfile
		}
	case c.Profile && c.Driver != "java":
		r.Profile = filepath.Join(h.rawDir, c.name()+".cpu.pprof")
		argv = append(argv, "-cpuprofile", r.Profile)
	}
	r.Command = shellJoin(argv)
	if !h.dry && !c.noQuiet {
		r.QuietWait, r.OthersBefore = h.waitQuiet()
	}
	if h.dry {
		fmt.Println(r.Command)
		r.Status = "dry"
		return r
	}
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Dir = h.rawDir
	stderr, err := os.Create(filepath.Join(h.rawDir, c.name()+".stderr.log"))
	if err != nil {
		r.Status, r.Note = "failed", err.Error()
		return r
	}
	defer stderr.Close()
	cmd.Stderr = stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		r.Status, r.Note = "failed", err.Error()
		return r
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		r.Status, r.Note = "failed", err.Error()
		return r
	}
	if err := cmd.Start(); err != nil {
		r.Status, r.Note = "failed", err.Error()
		return r
	}
	pid := cmd.Process.Pid
	h.track(pid)
	defer h.untrack(pid)

	// Bound the whole run: warm-up (≤30 s), phase, the drivers' own 15 s grace, start-up
	// and shutdown.
	limit := max(30*time.Second, c.WarmupTime) + c.Pause + c.Duration + 3*time.Second + 15*time.Second + 60*time.Second
	timer := time.AfterFunc(limit, func() {
		logf("%s: still running after %v, SIGKILL pid %d", c.name(), limit, pid)
		_ = syscall.Kill(pid, syscall.SIGKILL)
	})
	defer timer.Stop()

	var (
		start    marks
		end      marks
		gotEnd   bool
		line     string
		profDone chan error
	)
	sc := bufio.NewScanner(stdout)
	strategyLines := 0 // the driver prints its PATH lines, then one STRATEGY line per path
	for sc.Scan() {
		text := sc.Text()
		switch {
		case text == "MARK start":
			start = h.sample(pid, false)
			if onStart != nil {
				go onStart(pid)
			}
			if daemonProfile != "" {
				profDone = make(chan error, 1)
				go func() { profDone <- h.fetchDaemonProfile(daemonProfile, c.Duration) }()
			}
		case text == "MARK end":
			end = h.sample(pid, true)
			gotEnd = true
			stdin.Close()
		case strings.HasPrefix(text, "RESULT "):
			line = text
		case strings.HasPrefix(text, "STRATEGY "):
			if _, err := fmt.Sscanf(text, "STRATEGY decisions=%d fallbacks=%d", &r.Decisions, &r.Fallbacks); err != nil {
				logf("%s: unreadable %q: %v", c.name(), text, err)
			}
			if k := strategyLines; k < len(r.Paths) {
				r.Paths[k].Decisions, r.Paths[k].Fallbacks = r.Decisions, r.Fallbacks
			}
			strategyLines++
		case strings.HasPrefix(text, "PATH "):
			var pr pathResult
			if _, err := fmt.Sscanf(text, "PATH name=%s msgs=%d sec=%g msgs_per_s=%g errors=%d cpu_s=%g", &pr.Name, &pr.Msgs, &pr.Sec, &pr.MsgsPerSec, &pr.Errors, &pr.CPU); err != nil {
				logf("%s: unreadable %q: %v", c.name(), text, err)
				continue
			}
			pr.Decisions, pr.Fallbacks = -1, -1
			r.Paths = append(r.Paths, pr)
		}
	}
	stdin.Close()
	werr := cmd.Wait()
	if profDone != nil {
		select {
		case err := <-profDone:
			if err != nil {
				logf("%s: %v", c.name(), err)
			}
		case <-time.After(c.Duration + 30*time.Second):
		}
	}
	if ps := cmd.ProcessState; ps != nil {
		if ru, ok := ps.SysUsage().(*syscall.Rusage); ok {
			r.TotalCPU = tv(ru.Utime) + tv(ru.Stime)
		}
	}
	if line == "" || !gotEnd {
		r.Status = "failed"
		r.Note = fmt.Sprintf("no result (exit: %v); see raw/%s.stderr.log: %s", werr, c.name(), tailFile(stderr.Name(), 3))
		logf("%-28s FAILED: %s", c.name(), r.Note)
		return r
	}
	res, err := load.ParseResult(line)
	if err != nil {
		r.Status, r.Note = "failed", err.Error()
		return r
	}
	r.Res, r.Status = res, "ok"
	r.SelfCPU = res.CPU
	r.ProcCPU = end.cpu - start.cpu
	r.ChildCPU = end.childCPU - start.childCPU
	r.PluginCPU = r.ChildCPU
	// The harness's reading (process + its plugin children) is the producer CPU.
	res.CPU = r.ProcCPU + r.ChildCPU
	res.RSSMiB = end.rssMiB + end.childRSSMiB
	if c.Driver == "daemon" && h.daemon != nil {
		r.ClientCPU, r.ClientRSS = res.CPU, res.RSSMiB
		r.PluginCPU = end.daemonChildCPU - start.daemonChildCPU
		res.CPU = end.daemonCPU - start.daemonCPU + r.PluginCPU
		res.RSSMiB = end.daemonRSSMiB
		r.daemonChildren, r.daemonChildRSS = end.daemonChildren, end.daemonChildRSSMiB
	}
	r.ServerCPU = end.serverCPU - start.serverCPU
	measured := r.ProcCPU + r.ChildCPU
	if c.Driver == "daemon" && h.daemon != nil {
		measured += end.daemonCPU - start.daemonCPU + r.PluginCPU
	}
	r.OtherCPU = max(0, end.machineBusy-start.machineBusy-r.ServerCPU-measured)
	logf("%-28s %8.0f msgs/s  p50 %7.3f ms  p99 %8.3f ms  p99.9 %8.3f ms  err %d  cpu %.2fs (%.1f µs/msg)  rss %.0f MiB  servers %.1fs  others %.1fs",
		c.name(), res.MsgsPerSec, res.P50, res.P99, res.P999, res.Errors, res.CPU, res.CPUPerMsg(), res.RSSMiB, r.ServerCPU, r.OtherCPU)
	return r
}

// marks are the /proc readings at one mark.
type marks struct {
	cpu, childCPU          float64
	rssMiB, childRSSMiB    float64
	daemonCPU              float64
	daemonChildCPU         float64
	daemonRSSMiB           float64
	daemonChildren         int
	daemonChildRSSMiB      float64
	machineBusy, serverCPU float64
}

// sample reads the driver's (and the daemon's) CPU, and at the end mark their peak RSS;
// at the start mark it resets the daemon's peak RSS so that it is this cell's.
func (h *harness) sample(pid int, end bool) marks {
	var m marks
	m.machineBusy, _ = load.MachineBusy()
	for _, b := range h.cl.Brokers {
		c, _ := load.ProcCPU(b.PID)
		m.serverCPU += c
	}
	if h.cl.NameServerPID > 0 {
		c, _ := load.ProcCPU(h.cl.NameServerPID)
		m.serverCPU += c
	}
	if h.dev != nil { // the dev broker runs in this process
		c, _ := load.ProcCPU(0)
		m.serverCPU += c
	}
	m.cpu, _ = load.ProcCPU(pid)
	for _, ch := range load.Children(pid) {
		c, _ := load.ProcCPU(ch)
		m.childCPU += c
		if end {
			r, _ := load.PeakRSS(ch)
			m.childRSSMiB += float64(r) / (1 << 20)
		}
	}
	if end {
		r, _ := load.PeakRSS(pid)
		m.rssMiB = float64(r) / (1 << 20)
	}
	if d := h.daemon; d != nil {
		m.daemonCPU, _ = load.ProcCPU(d.pid)
		for _, ch := range load.Children(d.pid) {
			c, _ := load.ProcCPU(ch)
			m.daemonChildCPU += c
			if end {
				r, _ := load.PeakRSS(ch)
				m.daemonChildren++
				m.daemonChildRSSMiB += float64(r) / (1 << 20)
			}
		}
		if end {
			r, _ := load.PeakRSS(d.pid)
			m.daemonRSSMiB = float64(r) / (1 << 20)
		} else {
			_ = load.ResetPeakRSS(d.pid)
		}
	}
	return m
}

func tv(t syscall.Timeval) float64 { return float64(t.Sec) + float64(t.Usec)/1e6 }

func loadAvg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "?"
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "?"
	}
	return strings.Join(f[:3], " ")
}

func tailFile(path string, n int) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return ""
	}
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, " | ")
}

func shellJoin(argv []string) string {
	out := make([]string, len(argv))
	for i, a := range argv {
		if a == "" || strings.ContainsAny(a, " \t\"'$\\*?;&|<>()") {
			a = "'" + strings.ReplaceAll(a, "'", `'\''`) + "'"
		}
		out[i] = a
	}
	return strings.Join(out, " ")
}

// Quiet gate: before a cell, wait until other people's processes used less than
// quietCores of CPU for a second, at most quietMaxWait per cell and quietBudget per run,
// so that cells start on a quiet machine when there is one.
const (
	quietCores   = 0.3
	quietMaxWait = 15 * time.Second
	quietBudget  = 4 * time.Minute
)

// waitQuiet applies the quiet gate; it returns how long it waited and the other load
// (cores) in the last window.
func (h *harness) waitQuiet() (time.Duration, float64) {
	start := time.Now()
	ours := func() float64 {
		var t float64
		for _, b := range h.cl.Brokers {
			c, _ := load.ProcCPU(b.PID)
			t += c
		}
		if h.cl.NameServerPID > 0 {
			c, _ := load.ProcCPU(h.cl.NameServerPID)
			t += c
		}
		if h.dev != nil {
			c, _ := load.ProcCPU(0)
			t += c
		}
		if d := h.daemon; d != nil && d.pid > 0 {
			c, _ := load.ProcCPU(d.pid)
			t += c
			for _, ch := range load.Children(d.pid) {
				c, _ := load.ProcCPU(ch)
				t += c
			}
		}
		return t
	}
	others := 0.0
	for {
		b0, _ := load.MachineBusy()
		o0 := ours()
		time.Sleep(time.Second)
		b1, _ := load.MachineBusy()
		others = max(0, (b1-b0)-(ours()-o0))
		waited := time.Since(start)
		if others < quietCores || waited >= quietMaxWait || h.quietSpent+waited >= quietBudget {
			h.quietSpent += waited
			if others >= quietCores {
				logf("machine still busy (others %.1f cores) after %v; starting anyway", others, waited.Round(time.Second))
			}
			return waited, others
		}
	}
}

// pathResult is one strategy's share of an interleaved cell (core-driver PATH line).
type pathResult struct {
	Name                 string
	Msgs, Errors         int
	Sec, MsgsPerSec, CPU float64
	Decisions, Fallbacks int64
}

// splitPaths turns an interleaved cell's result into one result per strategy, as if
// each had been a cell of its own with that strategy as its variant: its msgs/s and CPU
// from its slices, the latency of the whole cell.
func splitPaths(r *cellResult) []*cellResult {
	if len(r.Paths) == 0 || !ok(r) {
		return []*cellResult{r}
	}
	out := make([]*cellResult, 0, len(r.Paths))
	for _, p := range r.Paths {
		pr := *r
		pr.Cell.Variant, pr.Cell.Strategy = p.Name, p.Name
		res := *r.Res
		res.Msgs, res.Errors, res.Sec, res.MsgsPerSec, res.CPU = p.Msgs, p.Errors, p.Sec, p.MsgsPerSec, p.CPU
		pr.Res, pr.Paths = &res, nil
		pr.Decisions, pr.Fallbacks = p.Decisions, p.Fallbacks
		pr.PluginCPU = 0
		out = append(out, &pr)
	}
	return out
}
