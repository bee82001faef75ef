package simulate

import (
	"cmp"
	"fmt"
	"io"
	"maps"
	"math"
	"slices"
	"strings"
	"text/tabwriter"
	"time"
)

// Report is what Run measured, per strategy. Offsets are scenario time, from the start
// of the load.
type Report struct {
	Scenario    string
	Description string
	// Summary describes the cluster and the load in one line.
	Summary string
	Brokers []string
	// Duration is the scenario time that was run (Planned, or less with
	// Options.Duration).
	Duration, Planned time.Duration
	Load              Load
	Producer          Producer
	// Windows are the fault windows that started within Duration (cut at Duration).
	Windows []Window
	Results []Result
	// SampleInterval is how often the strategies' health tables were sampled.
	SampleInterval time.Duration
	// Wall is the wall time of the whole run, every strategy included.
	Wall time.Duration
}

// Window is one planned fault window.
type Window struct {
	Broker   string
	From, To time.Duration
	What     string
}

// Result is one strategy's run.
type Result struct {
	Strategy string
	Plugin   string
	// Where is "in-process" or "plugin process".
	Where string
	// Sent counts sends started; OK those that returned a result; Failed the others.
	Sent, OK, Failed int
	// LateStarts counts sends that started more than 10 ms after their slot in the
	// open-loop schedule (the load generator was not scheduled in time, or waited for
	// a slot); Blocked counts sends that waited because Load.Concurrency sends were in
	// flight. Both should be small: the offered load is then what the scenario says.
	LateStarts, Blocked int
	// Attempts counts every attempt of every send; Retries = Attempts - Sent.
	Attempts, Retries int
	// P50, P99 and Max are send latencies (the call of core.Producer.Send, all attempts
	// and failed sends included, a failed send at the time it took to fail).
	P50, P99, Max time.Duration
	// Share is each broker's share of the attempts over the whole run (Report.Brokers
	// order); it sums to 1 when there were attempts.
	Share []float64
	// Seconds are per-second buckets, by start time.
	Seconds []Second
	// Failures counts failed sends by reason ("timeout (budget spent)", "SYSTEM_BUSY", ...).
	Failures map[string]int
	// HealthReported is true when the strategy published a broker health table;
	// Isolations are the spans in which it isolated a broker, from samples taken every
	// SampleInterval (so each end is accurate to one interval).
	HealthReported bool
	Isolations     []Isolation
	// Applied are the fault events as the simulator applied them.
	Applied []Applied
	// Fallbacks counts decisions the strategy's plugin did not make (the host's
	// in-process fallback did); Crashes counts plugin failures. Both should be 0.
	Fallbacks, Crashes uint64
	// OffMode is how long (sampled) the strategy did not decide where the scenario
	// said (a plugin down and replaced by the host's fallback).
	OffMode time.Duration
	// Wall is the wall time of this strategy's run, start-up and shut-down included.
	Wall time.Duration
}

// Second is one second of a run.
type Second struct {
	// Attempts counts attempts that started in this second, per broker.
	Attempts []int
	// Sent and OK count sends that started in this second.
	Sent, OK int
	// P50 and P99 are the latencies of those sends (0 when none).
	P50, P99 time.Duration
	// Isolated is true for a broker the strategy isolated in any sample of this second.
	Isolated []bool
}

// Share returns broker i's share of this second's attempts, and false when there were
// none.
func (s Second) Share(i int) (float64, bool) {
	total := 0
	for _, n := range s.Attempts {
		total += n
	}
	if total == 0 {
		return 0, false
	}
	return float64(s.Attempts[i]) / float64(total), true
}

// Isolation is a span in which a strategy isolated a broker.
type Isolation struct {
	Broker   string
	From, To time.Duration
}

// Applied is one fault event as applied: Planned is its scenario time, At when it
// happened.
type Applied struct {
	Planned, At time.Duration
	Broker      string
	What        string
}

// SuccessRate returns OK/Sent (0 when nothing was sent).
func (r *Result) SuccessRate() float64 {
	if r.Sent == 0 {
		return 0
	}
	return float64(r.OK) / float64(r.Sent)
}

func (r *run) result(st Strategy, n int) *Result {
	nb := len(r.sc.Brokers)
	res := &Result{Strategy: st.Name, Plugin: st.Plugin, Where: st.Where(), LateStarts: int(r.late.Load()), Blocked: int(r.blocked.Load()),
		Failures: map[string]int{}, Share: make([]float64, nb)}
	nsec := int(math.Ceil(r.dur.Seconds()))
	res.Seconds = make([]Second, nsec)
	for i := range res.Seconds {
		res.Seconds[i] = Second{Attempts: make([]int, nb), Isolated: make([]bool, nb)}
	}
	bucket := func(d time.Duration) int { return min(max(int(d/time.Second), 0), nsec-1) }
	var all []time.Duration
	perSec := make([][]time.Duration, nsec)
	for _, s := range r.sends[:n] {
		if !s.sent {
			continue
		}
		res.Sent++
		sec := &res.Seconds[bucket(s.start)]
		sec.Sent++
		if s.ok {
			res.OK++
			sec.OK++
		} else {
			res.Failed++
			res.Failures[s.reason]++
		}
		all = append(all, s.latency)
		perSec[bucket(s.start)] = append(perSec[bucket(s.start)], s.latency)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	total := make([]int, nb)
	for _, a := range r.attempts {
		res.Seconds[bucket(a.start)].Attempts[a.broker]++
		total[a.broker]++
		res.Attempts++
	}
	res.Retries = max(res.Attempts-res.Sent, 0)
	for i := range total {
		if res.Attempts > 0 {
			res.Share[i] = float64(total[i]) / float64(res.Attempts)
		}
	}
	slices.Sort(all)
	res.P50, res.P99 = quantile(all, .50), quantile(all, .99)
	if len(all) > 0 {
		res.Max = all[len(all)-1]
	}
	for i, l := range perSec {
		slices.Sort(l)
		res.Seconds[i].P50, res.Seconds[i].P99 = quantile(l, .50), quantile(l, .99)
	}
	res.Applied = slices.Clone(r.applied)
	res.OffMode = time.Duration(r.notMode) * r.every
	// Isolation spans: a run of samples that isolate a broker, from its first sample to
	// the first sample that no longer does (or the end of the run).
	for b, name := range r.sc.Brokers {
		var from time.Duration
		in := false
		for _, s := range r.samples {
			res.HealthReported = res.HealthReported || s.reported
			if s.isolated[b] {
				res.Seconds[bucket(s.at)].Isolated[b] = true
			}
			switch {
			case s.isolated[b] && !in:
				from, in = s.at, true
			case !s.isolated[b] && in:
				res.Isolations = append(res.Isolations, Isolation{Broker: name, From: from, To: s.at})
				in = false
			}
		}
		if in {
			res.Isolations = append(res.Isolations, Isolation{Broker: name, From: from, To: r.dur})
		}
	}
	slices.SortStableFunc(res.Isolations, func(a, b Isolation) int { return cmp.Compare(a.From, b.From) })
	return res
}

// quantile returns the nearest-rank q-quantile of sorted (0 when empty).
func quantile(sorted []time.Duration, q float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	i := int(math.Ceil(q*float64(len(sorted)))) - 1
	return sorted[min(max(i, 0), len(sorted)-1)]
}

// fmtDur prints a latency with about three significant digits.
func fmtDur(d time.Duration) string {
	switch {
	case d <= 0:
		return "0"
	case d < time.Millisecond:
		return fmt.Sprintf("%.2fms", float64(d)/float64(time.Millisecond))
	case d < 10*time.Millisecond:
		return fmt.Sprintf("%.1fms", float64(d)/float64(time.Millisecond))
	case d < time.Second:
		return fmt.Sprintf("%dms", d.Milliseconds())
	}
	return fmt.Sprintf("%.2fs", d.Seconds())
}

// fmtAt prints a scenario offset such as "10.3s".
func fmtAt(d time.Duration) string { return fmt.Sprintf("%.1fs", d.Seconds()) }

// WriteTable writes the report for a terminal: the scenario, one row per strategy,
// failures, isolations and each broker's share of attempts over time.
func WriteTable(w io.Writer, rep *Report) error {
	ew := &errWriter{w: w}
	fmt.Fprintf(ew, "scenario %s: %s\n", rep.Scenario, rep.Summary)
	if rep.Duration < rep.Planned {
		fmt.Fprintf(ew, "run:      the first %v of %v (cut by -duration)\n", rep.Duration, rep.Planned)
	}
	fmt.Fprintf(ew, "producer: %s\n", producerText(rep.Producer))
	for _, win := range rep.Windows {
		fmt.Fprintf(ew, "fault:    %-10s %-24s %s–%s\n", win.Broker, win.What, fmtAt(win.From), fmtAt(win.To))
	}
	fmt.Fprintf(ew, "time:     real time, %v of scenario time per strategy; %v of wall time in all\n\n",
		rep.Duration, rep.Wall.Round(100*time.Millisecond))

	tw := tabwriter.NewWriter(ew, 0, 0, 2, ' ', 0)
	head := "strategy\twhere\tsent\tok\tsuccess\tretries\tp50\tp99\tmax"
	for _, b := range rep.Brokers {
		head += "\t" + b
	}
	fmt.Fprintln(tw, head)
	for _, r := range rep.Results {
		line := fmt.Sprintf("%s\t%s\t%d\t%d\t%.2f%%\t%d\t%s\t%s\t%s", r.Strategy, r.Where, r.Sent, r.OK, 100*r.SuccessRate(),
			r.Retries, fmtDur(r.P50), fmtDur(r.P99), fmtDur(r.Max))
		for _, s := range r.Share {
			line += fmt.Sprintf("\t%.1f%%", 100*s)
		}
		fmt.Fprintln(tw, line)
	}
	tw.Flush()
	fmt.Fprintf(ew, "(latency: every send, failed ones included; broker columns: share of all attempts)\n")

	fmt.Fprintf(ew, "\nfailures:\n")
	for _, r := range rep.Results {
		if r.Failed == 0 {
			fmt.Fprintf(ew, "  %-16s none\n", r.Strategy)
			continue
		}
		var parts []string
		for _, k := range slices.Sorted(maps.Keys(r.Failures)) {
			parts = append(parts, fmt.Sprintf("%d %s", r.Failures[k], k))
		}
		fmt.Fprintf(ew, "  %-16s %s\n", r.Strategy, strings.Join(parts, ", "))
	}
	fmt.Fprintf(ew, "\nisolations (from the strategy's broker health table, sampled every %v):\n", rep.SampleInterval)
	for _, r := range rep.Results {
		switch {
		case !r.HealthReported:
			fmt.Fprintf(ew, "  %-16s none: the strategy keeps no health table\n", r.Strategy)
		case len(r.Isolations) == 0:
			fmt.Fprintf(ew, "  %-16s none\n", r.Strategy)
		default:
			var parts []string
			for _, is := range r.Isolations {
				parts = append(parts, fmt.Sprintf("%s %s–%s", is.Broker, fmtAt(is.From), fmtAt(is.To)))
			}
			fmt.Fprintf(ew, "  %-16s %s\n", r.Strategy, strings.Join(parts, ", "))
		}
	}
	for _, r := range rep.Results {
		if r.Fallbacks > 0 || r.Crashes > 0 || r.OffMode > 0 {
			fmt.Fprintf(ew, "warning: %s: %d decisions fell back to the host's in-process strategy, %d plugin crashes, ~%v not running as configured\n",
				r.Strategy, r.Fallbacks, r.Crashes, r.OffMode)
		}
		if r.Blocked > 0 {
			fmt.Fprintf(ew, "warning: %s: %d sends waited for one of the %d concurrency slots: the offered load was lower than the scenario's\n",
				r.Strategy, r.Blocked, rep.Load.Concurrency)
		}
	}
	var late []string
	for _, r := range rep.Results {
		late = append(late, fmt.Sprintf("%s %d", r.Strategy, r.LateStarts))
	}
	fmt.Fprintf(ew, "\nsends started >%v behind schedule (load generator lag): %s\n", lateAfter, strings.Join(late, ", "))
	writeShares(ew, rep)
	return ew.err
}

func producerText(p Producer) string {
	s := "send_timeout " + orDefault(p.SendTimeout, "3s (default)")
	s += ", attempt_timeout " + orDefault(p.AttemptTimeout, "send_timeout/(1+retries) (default)")
	switch {
	case p.NoRetries:
		s += ", retries 0"
	case p.Retries == 0:
		s += ", retries 2 (default)"
	default:
		s += fmt.Sprintf(", retries %d", p.Retries)
	}
	return s
}

func orDefault(d time.Duration, def string) string {
	if d == 0 {
		return def
	}
	return d.String()
}

var levels = []rune("▁▂▃▄▅▆▇█")

// writeShares draws each broker's share of attempts over time, one column per second
// (or per few seconds for long runs), under a row marking each broker's fault windows.
func writeShares(w io.Writer, rep *Report) {
	if len(rep.Results) == 0 || len(rep.Results[0].Seconds) == 0 {
		return
	}
	nsec := len(rep.Results[0].Seconds)
	step := max(1, (nsec+59)/60)
	cols := (nsec + step - 1) / step
	fmt.Fprintf(w, "\nshare of attempts over time (1 column = %ds; ▁…█ = up to 12.5%%…100%%, · = none, x = isolated and none):\n", step)
	nameW := 0
	for _, r := range rep.Results {
		nameW = max(nameW, len(r.Strategy))
	}
	nameW = max(nameW, len("faults"))
	brokerW := 0
	for _, b := range rep.Brokers {
		brokerW = max(brokerW, len(b))
	}
	axis := make([]rune, cols)
	for c := range axis {
		axis[c] = ' '
		if (c*step)%10 == 0 {
			axis[c] = '|'
		}
	}
	fmt.Fprintf(w, "  %-*s %-*s %s  (| every 10s)\n", nameW, "", brokerW, "", string(axis))
	for _, b := range rep.Brokers {
		row := make([]rune, cols)
		faulty := false
		for c := range row {
			row[c] = ' '
			lo, hi := time.Duration(c*step)*time.Second, time.Duration((c+1)*step)*time.Second
			for _, win := range rep.Windows {
				if win.Broker == b && win.From < hi && win.To > lo {
					row[c], faulty = '^', true
				}
			}
		}
		if faulty {
			fmt.Fprintf(w, "  %-*s %-*s %s\n", nameW, "faults", brokerW, b, string(row))
		}
	}
	for _, r := range rep.Results {
		for bi, b := range rep.Brokers {
			row := make([]rune, cols)
			for c := range row {
				var att, tot int
				iso := false
				for s := c * step; s < min((c+1)*step, len(r.Seconds)); s++ {
					sec := r.Seconds[s]
					att += sec.Attempts[bi]
					for _, n := range sec.Attempts {
						tot += n
					}
					iso = iso || sec.Isolated[bi]
				}
				switch {
				case att > 0:
					share := float64(att) / float64(tot)
					row[c] = levels[min(len(levels)-1, max(0, int(math.Ceil(share*8))-1))]
				case iso:
					row[c] = 'x'
				default:
					row[c] = '·'
				}
			}
			label := ""
			if bi == 0 {
				label = r.Strategy
			}
			fmt.Fprintf(w, "  %-*s %-*s %s\n", nameW, label, brokerW, b, string(row))
		}
	}
}

// errWriter keeps the first write error.
type errWriter struct {
	w   io.Writer
	err error
}

func (e *errWriter) Write(p []byte) (int, error) {
	if e.err != nil {
		return 0, e.err
	}
	n, err := e.w.Write(p)
	e.err = err
	return n, err
}
