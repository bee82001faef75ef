package main

import (
	"bufio"
	"cmp"
	"fmt"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"time"
)

// machine describes where the run happened.
type machine struct {
	Date, CPU, Kernel, Go, Java, Commit, LoadAvg, ClientGo string
	Cores                                                  int
	MemGiB                                                 float64
	Brokers                                                string
	Elapsed                                                time.Duration
	Invocation                                             string
}

func machineInfo(cl *cluster) *machine {
	m := &machine{Date: time.Now().UTC().Format("2006-01-02 15:04 MST"), Cores: runtime.NumCPU(), Go: runtime.Version(), LoadAvg: loadAvg()}
	if f, err := os.Open("/proc/cpuinfo"); err == nil {
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			if k, v, ok := strings.Cut(sc.Text(), ":"); ok && strings.TrimSpace(k) == "model name" {
				m.CPU = strings.TrimSpace(v)
				break
			}
		}
		f.Close()
	}
	if b, err := os.ReadFile("/proc/meminfo"); err == nil {
		var kb float64
		fmt.Sscanf(strings.TrimPrefix(strings.SplitN(string(b), "\n", 2)[0], "MemTotal:"), "%f", &kb)
		m.MemGiB = kb / (1 << 20)
	}
	m.Kernel = cmdOut("uname", "-sr")
	m.Java = firstLine(cmdOut("java", "-version"))
	m.Commit = cmdOut("git", "-C", "..", "rev-parse", "--short", "HEAD")
	if st := cmdOut("git", "-C", "..", "status", "--porcelain"); st != "" {
		m.Commit += fmt.Sprintf(" + uncommitted work tree (%d paths changed)", len(strings.Split(st, "\n")))
	}
	if b, err := os.ReadFile("go.mod"); err == nil {
		for _, l := range strings.Split(string(b), "\n") {
			if f := strings.Fields(l); len(f) >= 2 && f[0] == "github.com/apache/rocketmq-client-go/v2" {
				m.ClientGo = f[1]
			}
		}
	}
	var bs []string
	for _, b := range cl.Brokers {
		bs = append(bs, fmt.Sprintf("%s %s (pid %d)", b.Name, b.Addr, b.PID))
	}
	m.Brokers = fmt.Sprintf("NameServer %s; %s", cl.NameServer, strings.Join(bs, "; "))
	return m
}

func cmdOut(name string, args ...string) string {
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil && len(out) == 0 {
		return "?"
	}
	return strings.TrimSpace(string(out))
}

func firstLine(s string) string { return strings.SplitN(s, "\n", 2)[0] }

type report struct {
	h       *harness
	env     *machine
	scen    []scenario
	results []*cellResult
	// rounds of the side-by-side scenarios and of the growth tables.
	rounds, growthRounds int
}

// all returns every round of a cell.
func (r *report) all(scenario, driver, variant string) []*cellResult {
	var out []*cellResult
	for _, c := range r.results {
		if c.Cell.Scenario == scenario && c.Cell.Driver == driver && (variant == "*" || c.Cell.Variant == variant) {
			out = append(out, c)
		}
	}
	return out
}

// find returns a cell's best round (highest msgs/s), or any round when none succeeded.
func (r *report) find(scenario, driver, variant string) *cellResult {
	var best *cellResult
	for _, c := range r.all(scenario, driver, variant) {
		switch {
		case best == nil:
			best = c
		case ok(c) && (!ok(best) || c.Res.MsgsPerSec > best.Res.MsgsPerSec):
			best = c
		}
	}
	return best
}

// median returns a cell's median round by msgs/s (of an even count, the lower of the
// middle two), or any round when none succeeded.
func (r *report) median(scenario, driver, variant string) *cellResult {
	all := r.all(scenario, driver, variant)
	good := slices.DeleteFunc(slices.Clone(all), func(c *cellResult) bool { return !ok(c) })
	if len(good) == 0 {
		if len(all) == 0 {
			return nil
		}
		return all[0]
	}
	slices.SortFunc(good, func(a, b *cellResult) int { return cmp.Compare(a.Res.MsgsPerSec, b.Res.MsgsPerSec) })
	return good[(len(good)-1)/2]
}

// paired compares cell c with base round by round: value of c's round k over value of
// base's round k, for every round both measured. It returns the median of those ratios
// (NaN if there are none) and the ratios in round order. Pairing the rounds cancels most
// of the drift between rounds (the brokers' store, other people's load), which moves two
// cells run next to each other alike.
func (r *report) paired(c, base *cellResult, value func(*cellResult) float64) (float64, []float64) {
	if c == nil || base == nil {
		return math.NaN(), nil
	}
	bases := map[int]*cellResult{}
	for _, b := range r.all(base.Cell.Scenario, base.Cell.Driver, base.Cell.Variant) {
		bases[b.Cell.Round] = b
	}
	var each []float64
	for _, x := range r.all(c.Cell.Scenario, c.Cell.Driver, c.Cell.Variant) {
		if b := bases[x.Cell.Round]; b != nil {
			if q := value(x) / value(b); !math.IsNaN(q) && !math.IsInf(q, 0) {
				each = append(each, q)
			}
		}
	}
	return medianOf(each), each
}

// medianOf is the median of xs (the mean of the middle two for an even count), NaN for none.
func medianOf(xs []float64) float64 {
	if len(xs) == 0 {
		return math.NaN()
	}
	s := slices.Sorted(slices.Values(xs))
	if n := len(s); n%2 == 0 {
		return (s[n/2-1] + s[n/2]) / 2
	}
	return s[len(s)/2]
}

// ratiosNote lists per-round ratios: "per round 0.93 / 1.01 / 0.88".
func ratiosNote(each []float64) string {
	if len(each) < 2 {
		return ""
	}
	parts := make([]string, len(each))
	for i, q := range each {
		parts[i] = fmt.Sprintf("%.2f", q)
	}
	return strings.Join(parts, " / ")
}

// roundsNote lists the msgs/s of every round of a cell, the chosen one in bold.
func (r *report) roundsNote(best *cellResult) string {
	return r.roundsNoteOf(best, "rounds: ", func(c *cellResult) string { return fmt.Sprintf("%.0f", c.Res.MsgsPerSec) })
}

// roundsNoteOf lists every round of best's cell as what it returns (for a round that
// ran), the chosen one in bold, after title; "" for a cell of one round.
func (r *report) roundsNoteOf(best *cellResult, title string, what func(*cellResult) string) string {
	all := r.all(best.Cell.Scenario, best.Cell.Driver, best.Cell.Variant)
	if len(all) < 2 {
		return ""
	}
	var parts []string
	for _, c := range all {
		v := "failed"
		if ok(c) {
			v = what(c)
		}
		if c == best {
			v = "**" + v + "**"
		}
		parts = append(parts, v)
	}
	return title + strings.Join(parts, " / ")
}

func ok(c *cellResult) bool { return c != nil && c.Status == "ok" && c.Res != nil }

func thr(c *cellResult) float64 {
	if !ok(c) {
		return math.NaN()
	}
	return c.Res.MsgsPerSec
}

func cpuPer(c *cellResult) float64 {
	if !ok(c) || c.Res.Msgs == 0 {
		return math.NaN()
	}
	return c.Res.CPUPerMsg()
}

func ratio(a, b float64) string {
	if math.IsNaN(a) || math.IsNaN(b) || b == 0 {
		return "n/a"
	}
	return fmtRatio(a / b)
}

// judged is ratio for a target row: a / b judged against limit, shown with the decimals
// it takes to tell it from the limit (fmtRatioNear).
func judged(a, b, limit float64) string {
	if math.IsNaN(a) || math.IsNaN(b) || b == 0 {
		return "n/a"
	}
	return fmtRatioNear(a/b, limit)
}

func (r *report) write() error {
	path := filepath.Join(r.h.outDir, "RESULTS.md")
	old, _ := os.ReadFile(path)
	growth := oldGrowth(string(old))
	if slices.ContainsFunc(r.scen, func(s scenario) bool { return s.Growth }) {
		growth = r.growthSection()
	}
	if !slices.ContainsFunc(r.scen, func(s scenario) bool { return !s.Growth }) {
		// Only the growth table ran: keep the side-by-side results.
		return os.WriteFile(path, []byte(spliceGrowth(string(old), growth)), 0o644)
	}
	var b strings.Builder
	e := r.env
	p := func(format string, args ...any) { fmt.Fprintf(&b, format, args...) }
	p("# producerd side by side with the Java client and rocketmq-client-go\n\n")
	p("Generated by `bench/run.sh` (bench/cmd/harness) on %s; the whole run took %v. ", e.Date, e.Elapsed.Round(time.Second))
	p("Every number below comes from that one run; rerun with `make bench` (which calls `bench/run.sh`).\n\n")

	p("## Machine and setup\n\n")
	p("| | |\n|---|---|\n")
	p("| CPU | %s, %d cores |\n| memory | %.1f GiB |\n| kernel | %s |\n| Go | %s |\n| Java | %s |\n", e.CPU, e.Cores, e.MemGiB, e.Kernel, e.Go, e.Java)
	p("| RocketMQ | Apache RocketMQ 5.3.3 (testinfra/rocketmq/cluster.sh): %s; every process on this one machine, loopback only |\n", e.Brokers)
	p("| clients | Java `DefaultMQProducer` (rocketmq-client 5.3.3, `java -Xms256m -Xmx512m`), rocketmq-client-go %s, producerd core and daemon at commit %s |\n", e.ClientGo, e.Commit)
	p("| topic | %s, 8 queues on each broker (16 in all), tag `bench` and a unique key per message (so the broker indexes every message) |\n", r.h.topic)
	if r.h.restarts > 0 {
		p("| cluster restarts | %d: before a scenario (or a strategy-paths cell) the harness restarts the cluster once its store, in memory on /dev/shm, is over %.0f%% of that file system, and warms the brokers up for 20 s |\n", r.h.restarts, r.h.storeShare*100)
	}
	p("| load average at start | %s (other engineers' builds and tests share the 2 cores: the column *others' CPU s* is the machine's busy CPU during each cell that neither the producer, its load client nor the RocketMQ servers used) |\n\n", e.LoadAvg)
	p("Each driver is its own process, run one at a time. **Producer CPU** is utime+stime from `/proc/PID/stat` over the measured phase (between the driver's `MARK start` and `MARK end`), including plugin child processes; **peak RSS** is `VmHWM`. For the daemon the producer is the `producerd run` process (plus its strategy plugin processes); the gRPC load client's own CPU is listed separately. Warm-up (5000 messages in the same mode, 1000 in the failover runs, 15,000 in the strategy paths) is not measured. The machine is shared with other engineers' builds and tests, whose load only ever slows a cell down: before each cell the harness waits (at most 15 s) for a second in which other processes used under 0.3 cores; every scenario but failover, the strategy paths and the growth tables (their sections say how they ran) ran %d rounds (driver order reversed in every other round) and each row shows its best round by msgs/s (all rounds are in the notes). The column *others' CPU s* shows how much other load remained during the chosen round. Latency is per operation (a send, or a batch of 32), from the call to its result; async latency includes the wait in the client's window. Headers are JSON for every client (their default); in a batch every client gives each message a client message id (`UNIQ_KEY`, which the broker indexes next to the key), as Java's `MessageBatch` and producerd do: rocketmq-client-go leaves it out of batched messages, so its driver sets it; bodies of 16 KiB are zlib-compressed at level 5 by every client (their default threshold, 4 KiB).\n\n", r.rounds)

	// Headline table.
	var heads []scenario
	for _, s := range r.scen {
		if s.Headline {
			heads = append(heads, s)
		}
	}
	p("## Results (absolute numbers)\n\n")
	p("| scenario | driver | msgs/s | p50 ms | p99 ms | p99.9 ms | errors | producer CPU s | CPU µs/msg | peak RSS MiB | brokers+NameServer CPU s | others' CPU s | notes |\n")
	p("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|\n")
	for _, s := range heads {
		for _, c := range s.Cells {
			cr := r.find(s.ID, c.Driver, c.Variant)
			r.row(&b, s.ID, cr, c)
		}
	}
	p("\nScenarios: ")
	for i, s := range heads {
		if i > 0 {
			p("; ")
		}
		p("**%s** = %s", s.ID, s.Title)
	}
	p(". The daemon runs sync as unary `Ingress.Send`, async as one `Ingress.SendStream`, batch as unary `Ingress.SendBatch`.\n\n")

	// Ratios.
	p("## Ratios\n\n")
	p("Throughput ratio (higher is better for producerd) and producer-CPU-per-message ratio (lower is better for producerd).\n\n")
	p("| scenario | core/Java msgs/s | core/Java CPU per msg | core/client-go msgs/s | core/client-go CPU per msg | daemon/Java msgs/s | daemon/Java CPU per msg | daemon/client-go msgs/s | daemon/client-go CPU per msg |\n")
	p("|---|---:|---:|---:|---:|---:|---:|---:|---:|\n")
	for _, s := range heads {
		j, g, c, d := r.find(s.ID, "java", ""), r.find(s.ID, "clientgo", ""), r.find(s.ID, "core", ""), r.find(s.ID, "daemon", "")
		p("| %s | %s | %s | %s | %s | %s | %s | %s | %s |\n", s.ID,
			ratio(thr(c), thr(j)), ratio(cpuPer(c), cpuPer(j)), ratio(thr(c), thr(g)), ratio(cpuPer(c), cpuPer(g)),
			ratio(thr(d), thr(j)), ratio(cpuPer(d), cpuPer(j)), ratio(thr(d), thr(g)), ratio(cpuPer(d), cpuPer(g)))
	}
	p("\n")

	// The growth table, next to the side-by-side one (the last one measured when this run
	// had no growth points).
	if growth != "" {
		p("%s\n", growth)
	}

	// Targets.
	p("## Targets\n\n")
	p("| target | scenario | measured | verdict |\n|---|---|---|---|\n")
	for _, s := range heads {
		j, c := r.find(s.ID, "java", ""), r.find(s.ID, "core", "")
		tc, tj := thr(c), thr(j)
		known := !math.IsNaN(tc) && !math.IsNaN(tj)
		p("| core throughput ≥ Java | %s | %s vs %s msgs/s (%s) | %s |\n", s.ID, fmtNum(tc), fmtNum(tj), judged(tc, tj, 1), verdict(tc >= tj, known))
		cc, cj := cpuPer(c), cpuPer(j)
		known = !math.IsNaN(cc) && !math.IsNaN(cj)
		p("| core CPU/msg ≤ 0.5× Java | %s | %s vs %s µs/msg (%s) | %s |\n", s.ID, fmtNum(cc), fmtNum(cj), judged(cc, cj, 0.5), verdict(cc <= 0.5*cj, known))
	}
	for _, s := range heads {
		if s.Cells[0].Mode != "async" {
			continue
		}
		j, d := r.find(s.ID, "java", ""), r.find(s.ID, "daemon", "")
		td, tj := thr(d), thr(j)
		known := !math.IsNaN(td) && !math.IsNaN(tj)
		p("| daemon stream ≥ 0.8× Java | %s | %s vs %s msgs/s (%s) | %s |\n", s.ID, fmtNum(td), fmtNum(tj), judged(td, tj, 0.8), verdict(td >= 0.8*tj, known))
	}
	// The single-sender and many-sender targets of the daemon and core against the
	// other clients (issue 19).
	for _, t := range []struct {
		what, scen, drv, variant, peer string
		min                            float64
	}{
		{"core ≥ 1.2× client-go, one sync sender", "sync-1", "core", "", "clientgo", 1.2},
		{"daemon unary Send ≥ 0.85× Java, TCP", "sync-1", "daemon", "", "java", 0.85},
		{"daemon unary Send ≥ 0.95× Java, Unix socket", "sync-1", "daemon", variantUnix, "java", 0.95},
		{"daemon ≥ 1.0× Java", "sync-64", "daemon", "", "java", 1.0},
	} {
		d, j := r.find(t.scen, t.drv, t.variant), r.find(t.scen, t.peer, "")
		td, tj := thr(d), thr(j)
		p("| %s | %s | %s vs %s msgs/s (%s) | %s |\n", t.what, t.scen, fmtNum(td), fmtNum(tj), judged(td, tj, t.min), verdict(td >= t.min*tj, !math.IsNaN(td) && !math.IsNaN(tj)))
	}
	for _, s := range heads {
		c, g := r.find(s.ID, "core", ""), r.find(s.ID, "clientgo", "")
		tc, tg := thr(c), thr(g)
		p("| core ≥ 1.0× client-go | %s | %s vs %s msgs/s (%s) | %s |\n", s.ID, fmtNum(tc), fmtNum(tg), judged(tc, tg, 1), verdict(tc >= tg, !math.IsNaN(tc) && !math.IsNaN(tg)))
	}
	for _, v := range []string{"", variantUnix} {
		d, j := r.find("sync-1", "daemon", v), r.find("sync-1", "java", "")
		cd, cj := cpuPer(d), cpuPer(j)
		p("| daemon CPU/msg ≤ 1.0× Java (daemon process) | sync-1%s | %s vs %s µs/msg (%s) | %s |\n", map[string]string{"": "", variantUnix: " (Unix socket)"}[v],
			fmtNum(cd), fmtNum(cj), judged(cd, cj, 1), verdict(cd <= cj, !math.IsNaN(cd) && !math.IsNaN(cj)))
	}
	hop := r.hopNote()
	jf := r.find("failover", "java", "*")
	for _, drv := range []string{"core", "daemon"} {
		f := r.find("failover", drv, "*")
		if f == nil || f.Failover == nil || jf == nil || jf.Failover == nil {
			p("| failover: 0 failed, slow ≤ Java | failover (%s) | %s | n/a |\n", drv, missingNote(f))
			continue
		}
		pass := f.Failover.Failed == 0 && f.Failover.Slow <= jf.Failover.Slow
		p("| failover: 0 failed, slow ≤ Java | failover (%s) | %d failed, %d slower than 1 s (Java: %d failed, %d slow) | %s |\n",
			drv, f.Failover.Failed, f.Failover.Slow, jf.Failover.Failed, jf.Failover.Slow, verdict(pass, true))
	}
	p("\n%s", hop)

	// Plugin overhead.
	p("## Plugin overhead (producerd core as a library)\n\n")
	p("`default` is core's built-in in-process round-robin (no strategy); `*-inproc` run the built-in strategy through the host package in-process; `*-plugin` run it as an out-of-process plugin (this executable re-run as `core-driver plugin NAME`, go-plugin/gRPC), the product's default. `lf` = latency-fault (preset rocketmq5), `rr` = round-robin.\n\n")
	p("| scenario | strategy | msgs/s | p50 ms | p99 ms | errors | producer CPU µs/msg | of which plugin process CPU s | msgs/s vs default | CPU/msg vs default | notes |\n")
	p("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---|\n")
	for _, s := range r.scen {
		if !s.Plugin {
			continue
		}
		base := r.find(s.ID, "core", "default")
		for _, c := range s.Cells {
			cr := r.find(s.ID, c.Driver, c.Variant)
			if !ok(cr) {
				p("| %s | %s | | | | | | | | | %s |\n", s.ID, c.Variant, missingNote(cr))
				continue
			}
			p("| %s | %s | %.0f | %.3f | %.3f | %d | %.1f | %.2f | %s | %s | %s |\n", s.ID, c.Variant, cr.Res.MsgsPerSec, cr.Res.P50, cr.Res.P99,
				cr.Res.Errors, cr.Res.CPUPerMsg(), cr.PluginCPU, ratio(thr(cr), thr(base)), ratio(cpuPer(cr), cpuPer(base)), r.roundsNote(cr))
		}
	}
	p("\n")

	// Strategy paths.
	for _, s := range r.scen {
		if s.Paths {
			r.strategyPaths(&b, s)
		}
	}

	// Failover.
	p("## Failover\n\n")
	for _, s := range r.scen {
		if s.Failover != nil {
			p("%s. Load: sync, 8 senders paced to 2000 msgs/s in total, 3 s send timeout, 2 retries, for 30 s; broker-b (its recorded PID) gets SIGSTOP %v into the measured phase and SIGCONT %v later. ", s.Title, s.Failover.Before, s.Failover.Hold)
		}
	}
	p("*Affected* sends started during the stop and failed or took over 200 ms (they touched broker-b). *Avoid* is the time from SIGSTOP until the end of the last affected send: after it, traffic stayed off broker-b for the rest of the stop (a value near 10 s means it never did). *Return* is the time from SIGCONT until a send started after it was stored on broker-b. rocketmq-client-go has no broker avoidance; it runs with its defaults.\n\n")
	p("| driver | strategy | sends | failed | slower than 1 s | affected | avoid s | return s | broker-b share before / during / after | max latency ms | notes |\n")
	p("|---|---|---:|---:|---:|---:|---:|---:|---|---:|---|\n")
	var fo []*cellResult
	for _, c := range r.results {
		if c.Cell.Scenario != "failover" {
			continue
		}
		fo = append(fo, c)
		if c.Failover == nil {
			p("| %s | %s | | | | | | | | | %s |\n", driverName[c.Cell.Driver], c.Cell.Variant, missingNote(c))
			continue
		}
		f := c.Failover
		ret := "never"
		if f.ReturnSec >= 0 {
			ret = fmt.Sprintf("%.2f", f.ReturnSec)
		}
		p("| %s | %s | %d | %d | %d | %d | %.2f | %s | %.0f%% / %.0f%% / %.0f%% | %.0f | %s |\n", driverName[c.Cell.Driver], orDefault(c.Cell.Variant),
			f.Sends, f.Failed, f.Slow, f.Affected, f.AvoidSec, ret, f.ShareB[0]*100, f.ShareB[1]*100, f.ShareB[2]*100, c.Res.Max, c.Note)
	}
	p("\n")

	// Charts.
	series := []string{"java", "clientgo", "core", "daemon"}
	var groups []string
	var thrV, cpuV [][]float64
	for _, s := range heads {
		groups = append(groups, s.ID)
		tr, cr := make([]float64, len(series)), make([]float64, len(series))
		for i, d := range series {
			c := r.find(s.ID, d, "")
			tr[i], cr[i] = thr(c), cpuPer(c)
		}
		thrV, cpuV = append(thrV, tr), append(cpuV, cr)
	}
	caption := fmt.Sprintf("%s, %d cores; broker, NameServer and client on the same machine; %s", e.CPU, e.Cores, e.Date)
	if err := os.WriteFile(filepath.Join(r.h.outDir, "throughput.svg"), []byte(throughputSVG(groups, series, thrV, cpuV, caption)), 0o644); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(r.h.outDir, "failover.svg"), []byte(failoverSVG(fo)), 0o644); err != nil {
		return err
	}
	p("## RocketMQ 5 gRPC (official SDK through producerd vs the Apache RocketMQ Proxy)\n\n")
	p("`bench/run.sh` runs that comparison after the harness (internal/rmqv2 `TestCompareWithProxy`); its table is in [rmqv2-proxy.md](rmqv2-proxy.md).\n\n")
	p("## Charts\n\n![throughput and CPU per message](throughput.svg)\n\n![failover timeline](failover.svg)\n\n")
	p("Both SVGs are generated by `bench/cmd/harness` (svg.go) from this run's numbers.\n\n")

	// Commands.
	p("## Exact commands\n\n")
	p("```sh\n%s\n```\n\n", orDefault(e.Invocation))
	p("Builds (done by `bench/run.sh`):\n\n```sh\n")
	p("cd bench && go build -o bin/ ./cmd/core-driver ./cmd/clientgo-driver ./cmd/daemon-driver ./cmd/ingress-echo ./cmd/harness\n")
	p("cd bench && go build -o bin/producerd github.com/producerd/producerd/cmd/producerd   # driver 1, from ../cmd/producerd\n")
	p("cd bench/java && mvn -B -q package                                                        # target/java-driver.jar + target/lib/\n```\n\n")
	if d := r.h.daemon; d != nil {
		cfg, _ := os.ReadFile(d.config)
		p("Driver 1's daemon, started once for the whole run (its CPU and peak RSS are read per cell; VmHWM is reset through `/proc/PID/clear_refs` at each cell's start):\n\n```sh\n%s\n```\n\n", d.command)
		p("<details><summary>generated producerd.toml</summary>\n\n```toml\n%s```\n\n</details>\n\n", cfg)
	}
	p("Each cell (working directory `bench/results/raw`, where stderr logs, traces and CPU profiles are kept):\n\n```sh\n")
	for _, c := range r.results {
		if c.Command != "" {
			p("%s\n", c.Command)
		}
	}
	p("```\n\n")

	// Missing and failed.
	var notes []string
	if r.h.daemonMissing != "" {
		notes = append(notes, "Driver 1 (daemon): "+r.h.daemonMissing)
	}
	if r.h.hostMissing != "" {
		notes = append(notes, "Package host did not compile, so the host strategies (rr/lf -inproc/-plugin) are missing and core's failover uses plugins/latencyfault directly in-process: "+r.h.hostMissing)
	}
	for _, c := range r.results {
		if c.Status != "ok" {
			notes = append(notes, fmt.Sprintf("%s: %s: %s", c.Cell.name(), c.Status, c.Note))
		}
	}
	if len(notes) > 0 {
		p("## Missing or failed\n\n")
		for _, n := range notes {
			p("- %s\n", n)
		}
		p("\n")
	}
	return os.WriteFile(path, []byte(b.String()), 0o644)
}

// hopNote is the paragraph under the targets on the single sender's hop: what the
// daemon's sync-1 targets leave for the hop between the load client and core, what the
// hop took, and what the gRPC hop alone (ingress-echo) takes on this machine. With one
// sender, msgs/s is one over the round trip. "" when a cell is missing.
func (r *report) hopNote() string {
	us := func(c *cellResult) float64 { return 1e6 / thr(c) }
	j, c := r.find("sync-1", "java", ""), r.find("sync-1", "core", "")
	d, du := r.find("sync-1", "daemon", ""), r.find("sync-1", "daemon", variantUnix)
	f, fu := r.find("sync-1", "daemon", variantFloor), r.find("sync-1", "daemon", variantFloorUnix)
	for _, x := range []*cellResult{j, c, d, du, f, fu} {
		if !ok(x) {
			return ""
		}
	}
	return fmt.Sprintf("**The single sender's hop.** With one sender, msgs/s is one over the round trip. Java's round trip took %.0f µs and core's %.0f µs, "+
		"so the daemon's targets leave the hop between the load client and core (the daemon's round trip less core's) %.0f µs over TCP (0.85×) and %.0f µs over the Unix socket (0.95×). "+
		"The daemon's hop took %.0f µs and %.0f µs. The same load client against `ingress-echo` (bench/cmd/ingress-echo: the daemon's gRPC settings on one P, answering at once with no broker behind it) "+
		"took %.0f µs and %.0f µs a call: the gRPC hop alone, with nothing in it.\n\n",
		us(j), us(c), us(j)/0.85-us(c), us(j)/0.95-us(c), us(d)-us(c), us(du)-us(c), us(f), us(fu))
}

// daemonVariantName names the daemon driver's variants in the results table.
var daemonVariantName = map[string]string{
	variantUnix:      "producerd daemon (gRPC, Unix socket)",
	variantFloor:     "gRPC hop alone (ingress-echo, no daemon)",
	variantFloorUnix: "gRPC hop alone (ingress-echo, Unix socket)",
}

func (r *report) row(b *strings.Builder, scen string, cr *cellResult, c cell) {
	name := driverName[c.Driver]
	if n, ok := daemonVariantName[c.Variant]; ok && c.Driver == "daemon" {
		name = n
	}
	if !ok(cr) {
		fmt.Fprintf(b, "| %s | %s | | | | | | | | | | | %s |\n", scen, name, missingNote(cr))
		return
	}
	res := cr.Res
	note := r.roundsNote(cr)
	switch {
	case c.floor():
		note = strings.TrimPrefix(note+fmt.Sprintf("; producer = ingress-echo; load client: %.2f s CPU, %.0f MiB", cr.ClientCPU, cr.ClientRSS), "; ")
	case c.Driver == "daemon":
		note = strings.TrimPrefix(note+fmt.Sprintf("; producer = daemon + plugin (plugin %.2f s); load client: %.2f s CPU, %.0f MiB", cr.PluginCPU, cr.ClientCPU, cr.ClientRSS), "; ")
	}
	if res.Errors > 0 {
		note = strings.TrimPrefix(note+"; see raw/"+cr.Cell.name()+".stderr.log for the errors", "; ")
	}
	fmt.Fprintf(b, "| %s | %s | %.0f | %.3f | %.3f | %.3f | %d | %.2f | %.1f | %.0f | %.2f | %.2f | %s |\n", scen, name, res.MsgsPerSec, res.P50, res.P99, res.P999,
		res.Errors, res.CPU, res.CPUPerMsg(), res.RSSMiB, cr.ServerCPU, cr.OtherCPU, note)
}

func missingNote(c *cellResult) string {
	if c == nil {
		return "not run"
	}
	if c.Status == "ok" {
		return ""
	}
	return c.Status + ": " + c.Note
}

func orDefault(s string) string {
	if s == "" {
		return "default"
	}
	return s
}

// strategyPaths writes the table of one strategy on its three paths side by side, with
// issue 15's targets: a plugin process at least 90 % of in-process throughput (70 % for
// keyhash, which decides per message) and wasm at least 95 %. Each row is the cell's
// median round; the ratios are medians of per-round ratios against the in-process cell of
// the same round (paired), and the targets are checked on them.
func (r *report) strategyPaths(b *strings.Builder, s scenario) {
	p := func(format string, a ...any) { fmt.Fprintf(b, format, a...) }
	rounds := len(r.all(s.ID, "core", "rr-inproc"))
	p("## Strategy paths (in process, plugin process, wasm)\n\n")
	p("%s. Every strategy runs through the host package in the core driver: *inproc* in the driver's process, *plugin* as a go-plugin process (the driver re-run as `core-driver plugin NAME`), *wasm* as a WebAssembly module under wazero. rr = round-robin, lf = latency-fault (preset rocketmq5), ll = the least-latency example, kh = keyhash (it needs each message, so every decision crosses to the plugin or the module; the others publish a policy the host applies). *Decisions* and *fell back* count the host's decisions and fallback decisions over the driver's life, warm-up included.\n\n", s.Title)
	p("Each strategy's three paths run in one driver process, interleaved (`core-driver -interleave 600ms`): one producer per path on the same client and connections, and the measured phase handed to them in turn, 600 ms each, so that what drifts while the run goes on (the brokers' store and collector, other processes) falls on every path alike; the first 30 %% of every slice, when the window of sends in flight still holds the previous path's messages, and the whole first cycle, which ramps the window up after the warm-up, are left out. A path's msgs/s is the sends it started in its slices over their time, its CPU the driver's and its children's (plugin processes) in those slices. On the two shared cores a 600 ms slice's throughput moves by a third or more from one slice to the next with the brokers, so the scenario ran %d rounds, the paths starting one later every round and going the other way round after three; each row is the path's median round by msgs/s, and **vs inproc** is the median over the rounds of the path's msgs/s over the in-process path's in the same run (each round's ratio in the notes). The targets are checked on it. p50 and p99 are the whole run's.\n\n", rounds)
	p("| strategy | path | msgs/s | vs inproc | target | p50 ms | p99 ms | errors | CPU µs/msg | CPU/msg vs inproc | decisions | fell back | notes |\n")
	p("|---|---|---:|---:|---|---:|---:|---:|---:|---:|---:|---:|---|\n")
	for _, st := range []string{"rr", "lf", "ll", "kh"} {
		base := r.median(s.ID, "core", st+"-inproc")
		for _, path := range []string{"inproc", "plugin", "wasm"} {
			cr := r.median(s.ID, "core", st+"-"+path)
			if !ok(cr) {
				p("| %s | %s | | | | | | | | | | | %s |\n", st, path, missingNote(cr))
				continue
			}
			var least float64 // share of in-process throughput the path must reach
			switch {
			case path == "plugin" && st == "kh":
				least = 0.70
			case path == "plugin":
				least = 0.90
			case path == "wasm":
				least = 0.95
			}
			rel, each := r.paired(cr, base, thr)
			relCPU, _ := r.paired(cr, base, cpuPer)
			target, shown := "", fmtRatio(rel)
			if least > 0 {
				target = fmt.Sprintf("≥ %.2f× %s", least, verdict(rel >= least, !math.IsNaN(rel)))
				shown = fmtRatioNear(rel, least)
			}
			dec, fb := "", ""
			if cr.Decisions >= 0 {
				dec, fb = fmt.Sprint(cr.Decisions), fmt.Sprint(cr.Fallbacks)
			}
			note := r.roundsNote(cr)
			if path != "inproc" {
				if q := ratiosNote(each); q != "" {
					note += "; vs inproc per round: " + q
				}
			}
			p("| %s | %s | %.0f | %s | %s | %.3f | %.3f | %d | %.1f | %s | %s | %s | %s |\n", st, path, cr.Res.MsgsPerSec, shown, target,
				cr.Res.P50, cr.Res.P99, cr.Res.Errors, cr.Res.CPUPerMsg(), fmtRatio(relCPU), dec, fb, note)
		}
	}
	p("\n")
}

// fmtRatio renders a ratio as "0.93×", or "n/a" for NaN.
func fmtRatio(q float64) string {
	if math.IsNaN(q) {
		return "n/a"
	}
	return fmt.Sprintf("%.2f×", q)
}

// fmtRatioNear is fmtRatio with as many more decimals (up to six) as it takes to show q
// different from the target's limit it is judged against ("1.20×, missed" read as a
// contradiction).
func fmtRatioNear(q, limit float64) string {
	if math.IsNaN(q) || q == limit {
		return fmtRatio(q)
	}
	for d := 2; d < 6; d++ {
		if fmt.Sprintf("%.*f", d, q) != fmt.Sprintf("%.*f", d, limit) {
			return fmt.Sprintf("%.*f×", d, q)
		}
	}
	return fmt.Sprintf("%.6f×", q)
}

// verdict renders a target's outcome: n/a when a side was not measured.
func verdict(pass, known bool) string {
	if !known {
		return "n/a"
	}
	if pass {
		return "**met**"
	}
	return "**missed**"
}
