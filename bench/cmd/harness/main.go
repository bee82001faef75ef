// Command harness runs producerd's side-by-side benchmark against the running RocketMQ
// test cluster and writes bench/results/RESULTS.md plus SVG charts.
//
// It holds the cluster's exclusive lock (.rmq/cluster.lock, LOCK_EX) for the whole run,
// because the failover scenario SIGSTOPs broker-b (and other tests signal brokers too).
// Each driver runs as its own process, one at a time; the harness reads the producer
// process's CPU (utime+stime in /proc/PID/stat, plus its plugin child processes) at the
// driver's "MARK start"/"MARK end" lines and its peak RSS (VmHWM). For driver 1 the
// producer is the producerd daemon the harness starts (`producerd run`); the load
// client's own CPU and RSS are reported separately.
//
// bench/run.sh builds everything and runs it; see bench/README.md.
package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/producerd/producerd/devbroker"
)

// harness is one run.
type harness struct {
	cl      *cluster
	topic   string
	binDir  string
	javaJar string
	rawDir  string
	outDir  string
	dry     bool
	scale   float64

	dev           *devbroker.Cluster // the growth points' dev broker, in this process
	daemon        *daemonProc
	daemonExited  <-chan error
	daemonMissing string
	// floor is ingress-echo, the gRPC hop without a daemon (sync-1's floor rows).
	floor         *daemonProc
	floorExited   <-chan error
	floorMissing  string
	hostMissing   string
	profileDaemon bool
	quietSpent    time.Duration // total quiet-gate wait so far
	restarts      int           // cluster restarts for an empty store (freshStore)
	storeShare    float64       // -store-restart

	stopper stopper

	mu   sync.Mutex
	pids map[int]bool // child processes running now
}

func (h *harness) track(pid int) {
	h.mu.Lock()
	h.pids[pid] = true
	h.mu.Unlock()
}

func (h *harness) untrack(pid int) {
	h.mu.Lock()
	delete(h.pids, pid)
	h.mu.Unlock()
}

// killChildren SIGKILLs the child processes the harness started and still runs (by
// their recorded PIDs).
func (h *harness) killChildren() {
	h.mu.Lock()
	defer h.mu.Unlock()
	for pid := range h.pids {
		_ = syscall.Kill(pid, syscall.SIGKILL)
	}
}

func logf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "[harness %s] %s\n", time.Now().Format("15:04:05"), fmt.Sprintf(format, args...))
}

// options are the harness's flags.
type options struct {
	state, lockPath, binDir, javaJar, producerd, outDir, topic string
	scale                                                      float64
	only, drivers                                              string
	dry                                                        bool
	profile                                                    string
	rounds, pathsRounds, growthRounds                          int
	storeShare                                                 float64
	hostMissing, invocation                                    string
	growth                                                     bool
	growthConc                                                 int
	growthRate                                                 float64
	growthTopics, growthGroups                                 string
}

func main() {
	var o options
	flag.StringVar(&o.state, "state", "../.rmq/cluster.json", "cluster state file written by cluster.sh")
	flag.StringVar(&o.lockPath, "lock", "", "cluster lock file (default: cluster.lock next to -state)")
	flag.StringVar(&o.binDir, "bin", "bin", "directory of the built drivers")
	flag.StringVar(&o.javaJar, "java-jar", "java/target/java-driver.jar", "the Java driver's jar")
	flag.StringVar(&o.producerd, "producerd", "bin/producerd", "the producerd binary (driver 1)")
	flag.StringVar(&o.outDir, "out", "results", "where RESULTS.md and the charts go (raw logs in OUT/raw)")
	flag.StringVar(&o.topic, "topic", "IT_Bench", "topic (8 queues on each broker)")
	flag.Float64Var(&o.scale, "scale", 1, "multiply every duration and message count (e.g. 0.3 for a quick try; failover is not scaled)")
	flag.StringVar(&o.only, "scenarios", "", "comma-separated scenario ids to run (default all)")
	flag.StringVar(&o.drivers, "drivers", "core,java,clientgo,daemon", "drivers to run")
	flag.BoolVar(&o.dry, "dry", false, "print the commands only")
	flag.StringVar(&o.profile, "profile", "plugin", "CPU profiles into OUT/raw: plugin (core in the plugin-overhead scenarios), "+
		"all (also core and the daemon, through its admin /debug/pprof, in the headline scenarios: this adds profiling cost to their numbers), none")
	flag.IntVar(&o.rounds, "rounds", 2, "rounds of every scenario but failover, the strategy paths and growth (driver order reversed every other round); "+
		"the report shows each cell's best round, since other people's load on the machine only ever slows a cell down")
	flag.IntVar(&o.pathsRounds, "paths-rounds", 6, "rounds of the strategy-paths scenario (each strategy's paths interleaved in one driver run, "+
		"the first slice to another path every round); its ratios are medians of per-round ratios")
	flag.Float64Var(&o.storeShare, "store-restart", 0.35, "restart the cluster (an empty store, then a 20 s broker warm-up) before a scenario "+
		"or a strategy-paths cell once the store's file system is more than this share full (0: never)")
	flag.StringVar(&o.hostMissing, "host-missing", "", "reason the host strategies are unavailable (set by run.sh when package host does not compile)")
	flag.StringVar(&o.invocation, "invocation", "", "how the harness was invoked, for RESULTS.md")
	flag.BoolVar(&o.growth, "growth", false, "also run the growth table (scenarios growth-topics and growth-groups: the daemon on a dev broker "+
		"at 1..100k topics and 1..20 producer groups, about 4 min a round at -scale 1); -scenarios growth-topics,growth-groups runs only them")
	flag.IntVar(&o.growthRounds, "growth-rounds", 3, "rounds of the growth tables (points in reverse order every other round); "+
		"their ratios to the first point are medians of per-round ratios")
	flag.IntVar(&o.growthConc, "growth-conc", 16, "sync senders of every growth point")
	flag.Float64Var(&o.growthRate, "growth-rate", 0, "messages per second of every growth point (0: as fast as the senders go)")
	flag.StringVar(&o.growthTopics, "growth-topics", defaultGrowthTopics, "the growth-topics table's points (topic counts; the first is the base)")
	flag.StringVar(&o.growthGroups, "growth-groups", defaultGrowthGroups, "the growth-groups table's points (producer group counts; the first is the base)")
	flag.Parse()
	if err := run(o); err != nil {
		logf("ERROR: %v", err)
		os.Exit(1)
	}
}

func run(o options) error {
	selected := map[string]bool{}
	for _, s := range strings.Split(o.only, ",") {
		if s = strings.TrimSpace(s); s != "" {
			selected[s] = true
		}
	}
	if o.growthRate < 0 {
		return fmt.Errorf("-growth-rate: %v is not a rate (0 for as fast as the senders go)", o.growthRate)
	}
	gTopics, err := parsePoints("growth-topics", o.growthTopics)
	if err != nil {
		return err
	}
	gGroups, err := parsePoints("growth-groups", o.growthGroups)
	if err != nil {
		return err
	}
	scen := append(scenarios(o.scale, o.profile, o.hostMissing == ""), growthScenarios(o.scale, o.growthConc, o.growthRate, o.profile == "all", gTopics, gGroups)...)
	runs := func(s scenario) bool {
		if len(selected) > 0 {
			return selected[s.ID] || s.Growth && o.growth
		}
		return !s.Growth || o.growth
	}
	sideBySide := slices.ContainsFunc(scen, func(s scenario) bool { return !s.Growth && runs(s) })
	cl, err := loadCluster(o.state)
	switch {
	case err != nil && sideBySide:
		return fmt.Errorf("no running cluster (start one with `bash testinfra/rocketmq/cluster.sh start`): %w", err)
	case err != nil:
		cl = &cluster{} // the growth points need only their dev broker
	}
	abs := func(p string) string { a, _ := filepath.Abs(p); return a }
	h := &harness{cl: cl, topic: o.topic, binDir: abs(o.binDir), javaJar: abs(o.javaJar), outDir: abs(o.outDir),
		rawDir: abs(filepath.Join(o.outDir, "raw")), dry: o.dry, scale: o.scale, pids: map[int]bool{}, hostMissing: o.hostMissing,
		profileDaemon: o.profile == "all", storeShare: o.storeShare}
	if err := os.MkdirAll(h.rawDir, 0o755); err != nil {
		return err
	}
	lockPath := o.lockPath
	if lockPath == "" {
		lockPath = filepath.Join(filepath.Dir(o.state), "cluster.lock")
	}
	if !o.dry && sideBySide {
		lf, err := lockExclusive(lockPath, 10*time.Minute)
		if err != nil {
			return err
		}
		defer lf.Close()
		logf("holding the exclusive cluster lock %s", lockPath)
	}

	// Whatever happens, a stopped broker gets SIGCONT and our children die.
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP)
	go func() {
		s := <-sigs
		logf("got %v: SIGCONT any stopped broker, kill our children, exit", s)
		h.stopper.cont()
		h.killChildren()
		os.Exit(2)
	}()
	defer h.stopper.cont()
	defer h.killChildren()

	env := machineInfo(cl)
	started := time.Now()
	want := map[string]bool{}
	for _, d := range strings.Split(o.drivers, ",") {
		want[strings.TrimSpace(d)] = true
	}
	if want["daemon"] && !o.dry && sideBySide {
		if _, err := os.Stat(o.producerd); err != nil {
			h.daemonMissing = "producerd binary not built (cmd/producerd did not compile): " + err.Error()
		} else if d, err := h.startDaemon(abs(o.producerd), "producerd", func(addr, unix, admin string) string {
			return daemonConfig(h.cl.NameServer, addr, unix, admin)
		}); err != nil {
			h.daemonMissing = "producerd did not start: " + err.Error()
		} else {
			h.daemon = d
		}
		if h.daemonMissing != "" {
			logf("driver 1 (daemon) unavailable: %s", h.daemonMissing)
		}
	} else if want["daemon"] && o.dry && sideBySide {
		h.daemon = &daemonProc{addr: "127.0.0.1:PORT"}
		h.floor = &daemonProc{addr: "127.0.0.1:PORT"}
	}
	if want["daemon"] && !o.dry && sideBySide && slices.ContainsFunc(scen, func(s scenario) bool { return runs(s) && s.ID == "sync-1" }) {
		if h.floor, h.floorExited, err = h.startFloor(); err != nil {
			h.floorMissing = err.Error()
			logf("the gRPC hop floor (ingress-echo) is unavailable: %v", err)
		}
	}
	hostMissing, dry := o.hostMissing, o.dry

	var results []*cellResult
	for _, s := range scen {
		if !runs(s) || s.Growth {
			continue
		}
		logf("=== scenario %s: %s", s.ID, s.Title)
		if !dry {
			if err := h.freshStore(o.state); err != nil {
				return err
			}
		}
		if s.Failover != nil {
			for _, c := range s.Cells {
				if want[c.Driver] {
					results = append(results, h.runFailover(c, s.Failover))
				}
			}
			continue
		}
		skip := map[string]bool{}
		rounds := o.rounds
		if s.Paths {
			rounds = o.pathsRounds
		}
		for round := 1; round <= max(1, rounds); round++ {
			for _, c := range roundOrder(s, round) {
				if !want[c.Driver] || skip[c.name()] {
					continue
				}
				key := c.name()
				if rounds > 1 {
					c.Round = round
				}
				if s.Paths && !dry {
					if err := h.freshStore(o.state); err != nil {
						return err
					}
				}
				r := h.runCell(c, nil)
				hostCell := strings.Contains(c.Strategy, "-inproc") || strings.Contains(c.Strategy, "-plugin")
				if hostCell && hostMissing != "" && r.Status != "ok" {
					r.Status, r.Note = "missing", "host package: "+hostMissing
				}
				results = append(results, splitPaths(r)...)
				if r.Status == "missing" {
					skip[key] = true // the same in every round
				}
			}
		}
	}
	if h.daemon != nil && !dry {
		h.stopDaemon(h.daemon, h.daemonExited)
	}
	h.daemon, h.daemonExited = nil, nil
	if h.floor != nil {
		h.stopDaemon(h.floor, h.floorExited)
		h.floor, h.floorExited = nil, nil
	}
	results = append(results, h.runGrowth(o, scen, runs)...)
	if dry {
		return nil
	}
	env.Elapsed = time.Since(started)
	env.Invocation = o.invocation
	raw, _ := json.MarshalIndent(results, "", "  ")
	_ = os.WriteFile(filepath.Join(h.rawDir, "results.json"), raw, 0o644)
	var ran []scenario
	for _, s := range scen {
		if runs(s) {
			ran = append(ran, s)
		}
	}
	rep := &report{h: h, env: env, scen: ran, results: results, rounds: max(1, o.rounds), growthRounds: max(1, o.growthRounds)}
	if err := rep.write(); err != nil {
		return err
	}
	logf("wrote %s in %v", filepath.Join(h.outDir, "RESULTS.md"), env.Elapsed.Round(time.Second))
	return nil
}

// roundOrder is the order of a scenario's cells in a round. Most scenarios reverse it
// every other round. The strategy paths rotate it: the strategies, and the paths within
// each strategy's interleaved cell, start one later every round, and after as many
// rounds as paths the paths go the other way round, so that over six rounds each path
// starts twice and follows each of the others.
func roundOrder(s scenario, round int) []cell {
	cells := slices.Clone(s.Cells)
	if !s.Paths {
		if round%2 == 0 {
			slices.Reverse(cells)
		}
		return cells
	}
	out := make([]cell, 0, len(cells))
	for i := range cells {
		c := cells[(i+round-1)%len(cells)]
		paths := strings.Split(c.Strategy, ",")
		if (round-1)/len(paths)%2 == 1 {
			slices.Reverse(paths) // the other direction: each path follows the other one
		}
		k := (round - 1) % len(paths)
		c.Strategy = strings.Join(append(paths[k:], paths[:k]...), ",")
		out = append(out, c)
	}
	return out
}

// runGrowth runs the selected growth scenarios, each point in every round, on a dev
// broker it starts in this process (and closes).
func (h *harness) runGrowth(o options, scen []scenario, runs func(scenario) bool) []*cellResult {
	var todo []scenario
	for _, s := range scen {
		if s.Growth && runs(s) {
			todo = append(todo, s)
		}
	}
	if len(todo) == 0 {
		return nil
	}
	bin, _ := filepath.Abs(o.producerd)
	if !h.dry {
		if err := h.startDev(todo); err != nil {
			logf("growth: %v", err)
			return nil
		}
		defer func() { h.dev.Close(); h.dev = nil }()
	}
	// A round runs every point of every table, in reverse order every other round, so
	// that drift in the machine's load hits all points alike; a point two tables share
	// (1 topic, 1 group: both tables' base) runs once a round and counts for both.
	var results []*cellResult
	for round := 1; round <= max(1, o.growthRounds); round++ {
		var cells []cell
		for _, s := range todo {
			cells = append(cells, s.Cells...)
		}
		if round%2 == 0 {
			slices.Reverse(cells)
		}
		logf("=== growth round %d of %d: %d points", round, max(1, o.growthRounds), len(cells))
		done := map[[2]int]*cellResult{}
		for _, c := range cells {
			if o.growthRounds > 1 {
				c.Round = round
			}
			pt := [2]int{c.Topics, c.Groups}
			if prev := done[pt]; prev != nil {
				r := *prev
				r.Cell.Scenario, r.Cell.Variant = c.Scenario, c.Variant
				results = append(results, &r)
				continue
			}
			r := h.runGrowthCell(c, bin)
			done[pt] = r
			results = append(results, r)
		}
	}
	return results
}

// runFailover runs one failover cell: SIGSTOP broker-b in the middle of the load, then
// read the trace; afterwards wait until broker-b answers normally again.
func (h *harness) runFailover(c cell, f *failoverSpec) *cellResult {
	fr := &failoverResult{}
	done := make(chan error, 1)
	// The daemon's status (each group's strategy state and fault table) and metrics
	// (fallback decisions by reason) before and after the fault, next to the trace:
	// what to read when it did not avoid the stopped broker.
	strategies := func(when string) {
		if c.Driver != "daemon" || h.daemon == nil || h.dry {
			return
		}
		for _, q := range [][2]string{{"/v1/admin/status", "status"}, {"/metrics", "metrics"}} {
			path := filepath.Join(h.rawDir, c.name()+"."+q[1]+"-"+when+".txt")
			if err := h.fetchDaemon(path, q[0], 10*time.Second); err != nil {
				logf("%s: daemon %s %s: %v", c.name(), q[1], when, err)
			}
		}
	}
	strategies("before")
	r := h.runCell(c, h.failoverSchedule(f.Broker, f.Before, f.Hold, fr, done))
	strategies("after")
	h.stopper.cont()
	if r.Status == "ok" || r.Status == "failed" {
		select {
		case err := <-done:
			if err != nil {
				r.Status, r.Note = "failed", "failover schedule: "+err.Error()
			}
		case <-time.After(f.Before + f.Hold + 30*time.Second):
			r.Status, r.Note = "failed", "failover schedule did not finish"
		}
	}
	if r.Status == "ok" {
		if err := analyzeTrace(r.Trace, f.Broker, fr); err != nil {
			r.Status, r.Note = "failed", "trace: "+err.Error()
		} else {
			r.Failover = fr
			logf("%-28s failed %d, slow>1s %d, affected %d, avoid %.1fs, return %.1fs, share of %s before/during/after %.0f%%/%.0f%%/%.0f%%",
				c.name(), fr.Failed, fr.Slow, fr.Affected, fr.AvoidSec, fr.ReturnSec, f.Broker, fr.ShareB[0]*100, fr.ShareB[1]*100, fr.ShareB[2]*100)
		}
	}
	if r.Status != "missing" && r.Status != "dry" {
		if err := waitBrokerHealthy(h.cl.NameServer, h.topic, f.Broker, 60*time.Second); err != nil {
			logf("after %s: %v", c.name(), err)
		}
	}
	return r
}

// failoverSpec is the fault of a failover scenario.
type failoverSpec struct {
	Broker       string
	Before, Hold time.Duration
}

// scenario is a set of cells run back to back.
type scenario struct {
	ID, Title string
	// Headline scenarios are compared across drivers and checked against the targets.
	Headline bool
	Plugin   bool
	// Paths: the strategy-paths table (in-process, plugin process, wasm side by side).
	Paths bool
	// Growth scenarios run the daemon on a dev broker, one daemon per point (growth.go).
	Growth   bool
	Failover *failoverSpec
	Cells    []cell
}

// scenarios is the benchmark plan. Message counts cap the store growth on the brokers'
// tmpfs (about 1.3 KiB per 1 KiB message); durations bound each cell.
func scenarios(scale float64, profile string, host bool) []scenario {
	sc := func(n int) int { return max(1, int(float64(n)*scale)) }
	dur := func(d time.Duration) time.Duration {
		return time.Duration(float64(d) * scale).Round(100 * time.Millisecond)
	}
	const warm = 5000
	drivers := []string{"java", "clientgo", "core", "daemon"}
	headline := func(id, title, mode string, conc, size, batch, n int, d time.Duration) scenario {
		s := scenario{ID: id, Title: title, Headline: true}
		for _, drv := range drivers {
			c := cell{Scenario: id, Driver: drv, Mode: mode, Conc: conc, Size: size, Batch: batch, N: sc(n), Duration: dur(d), Warmup: sc(warm)}
			if drv == "daemon" {
				c.Group = daemonGroupRR
			}
			c.Profile = profile == "all" && (drv == "core" || drv == "daemon")
			s.Cells = append(s.Cells, c)
		}
		return s
	}
	sync1 := headline("sync-1", "sync send, 1 sender, 1 KiB", "sync", 1, 1024, 1, 40000, 10*time.Second)
	// The daemon's unary Send with one sender also over the ingress Unix socket.
	unix := sync1.Cells[len(sync1.Cells)-1]
	unix.Variant = variantUnix
	sync1.Cells = append(sync1.Cells, unix)
	// The same load client against ingress-echo, over TCP and the Unix socket: the gRPC
	// hop alone, the floor under the daemon's single-sender round trip.
	for _, v := range []string{variantFloor, variantFloorUnix} {
		f := unix
		f.Variant, f.Profile = v, false
		sync1.Cells = append(sync1.Cells, f)
	}
	out := []scenario{
		sync1,
		headline("sync-64", "sync send, 64 senders, 1 KiB", "sync", 64, 1024, 1, 150000, 10*time.Second),
		headline("async-1k", "async/pipelined, 256 in flight, 1 KiB", "async", 256, 1024, 1, 150000, 10*time.Second),
		headline("async-16k", "async/pipelined, 256 in flight, 16 KiB (zlib-compressed by every client)", "async", 256, 16384, 1, 30000, 10*time.Second),
		headline("batch-32", "sync batches of 32 x 1 KiB, 8 senders", "batch", 8, 1024, 32, 150000, 10*time.Second),
	}
	// Plugin overhead: core as a library with each strategy.
	strategies := []string{"default", "rr-inproc", "rr-plugin", "lf-inproc", "lf-plugin"}
	for _, m := range []struct {
		id, title, mode string
		conc            int
	}{{"plugin-sync-64", "plugin overhead: core, sync, 64 senders, 1 KiB", "sync", 64}, {"plugin-async", "plugin overhead: core, async, 256 in flight, 1 KiB", "async", 256}} {
		s := scenario{ID: m.id, Title: m.title, Plugin: true}
		for _, st := range strategies {
			s.Cells = append(s.Cells, cell{Scenario: m.id, Driver: "core", Variant: st, Strategy: st, Mode: m.mode, Conc: m.conc,
				Size: 1024, Batch: 1, N: sc(100000), Duration: dur(8 * time.Second), Warmup: sc(warm), Profile: profile != "none"})
		}
		out = append(out, s)
	}
	// Strategy paths (issue 15): each strategy in-process, as a plugin process and as a
	// wasm module, async 1 KiB at saturation (1024 in flight).
	// One driver per strategy runs its three paths interleaved (core-driver -interleave):
	// 600 ms each in turn, so that what drifts during the run falls on every path alike.
	sp := scenario{ID: "strategy-paths", Title: "strategy paths: core, async, 1024 in flight, 1 KiB", Paths: true}
	for _, st := range []string{"rr", "lf", "ll", "kh"} {
		sp.Cells = append(sp.Cells, cell{Scenario: sp.ID, Driver: "core", Variant: st, Strategy: st + "-inproc," + st + "-plugin," + st + "-wasm",
			Mode: "async", Conc: 1024, Size: 1024, Batch: 1, N: sc(5_000_000), Duration: dur(15 * time.Second), Warmup: sc(3 * warm),
			Interleave: 600 * time.Millisecond})
	}
	out = append(out, sp)
	// Failover: 30 s of paced sync load (8 senders, 2000 msgs/s in total); broker-b is
	// SIGSTOPped from 10 s to 20 s. Durations are not scaled below 30 s: the fault needs
	// them.
	lf := "lf-plugin"
	if !host {
		lf = "lf-lib"
	}
	fo := scenario{ID: "failover", Title: "failover: broker-b SIGSTOPped for 10 s in a 30 s sync load (8 senders, 2000 msgs/s)",
		Failover: &failoverSpec{Broker: "broker-b", Before: 10 * time.Second, Hold: 10 * time.Second}}
	for _, drv := range drivers {
		c := cell{Scenario: "failover", Driver: drv, Mode: "sync", Conc: 8, Size: 1024, Batch: 1, N: 1000000,
			Duration: 30 * time.Second, Warmup: 1000, Rate: 2000, Trace: true}
		switch drv {
		case "core":
			c.Strategy, c.Variant = lf, lf
		case "java":
			c.Strategy, c.Variant = "latency-fault", "latency-fault"
		case "daemon":
			c.Group, c.Variant = daemonGroupLF, "latency"
		}
		fo.Cells = append(fo.Cells, c)
	}
	out = append(out, fo)
	return slices.Clip(out)
}
