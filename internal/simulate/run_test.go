package simulate

import (
	"bytes"
	"context"
	"encoding/xml"
	"errors"
	"io"
	"math"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/producerd/producerd/host"
)

// The test binary doubles as the out-of-process built-ins: the host re-executes it as
// "<test binary> plugin NAME", as it re-executes producerd.
func TestMain(m *testing.M) {
	if len(os.Args) == 3 && os.Args[1] == "plugin" {
		if err := host.ServeBuiltin(os.Args[2], nil); err != nil {
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// shortScenario runs 3 s of scenario time: broker-b slow from 1 s, broker-c answering
// SYSTEM_BUSY from 2 s, round-robin in-process and latency-fault as a plugin process.
const shortScenario = `
seed = 3
[cluster]
brokers = ["broker-a", "broker-b", "broker-c"]
queues = 2
[load]
rate = 40
duration = "3s"
concurrency = 32
message_size = ["64B", "5KiB"]
[producer]
send_timeout = "300ms"
attempt_timeout = "300ms"
[[fault]]
broker = "broker-b"
from = "1s"
to = "2s"
latency = "400ms"
[[fault]]
broker = "broker-c"
from = "2s"
to = "4s"
errors = [{ code = "SYSTEM_BUSY", rate = 0.5 }]
[[strategy]]
name = "rr <in-process>"
plugin = "builtin:roundrobin"
in_process = true
[[strategy]]
name = "lf & plugin"
plugin = "builtin:latencyfault"
settings = { preset = "rocketmq5" }
`

func TestRunShort(t *testing.T) {
	if testing.Short() {
		t.Skip("runs 6 s of real-time simulation")
	}
	sc, err := Parse("short.toml", []byte(shortScenario), ".")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	rep, err := Run(ctx, sc, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Results) != 2 || rep.Results[0].Strategy != "rr <in-process>" || rep.Results[1].Strategy != "lf & plugin" {
		t.Fatalf("results: %+v", rep.Results)
	}
	if len(rep.Windows) != 2 || rep.Windows[1].Broker != "broker-c" || rep.Windows[1].To != 3*time.Second {
		t.Errorf("windows (the second cut at the end of the load): %+v", rep.Windows)
	}
	for _, r := range rep.Results {
		checkResult(t, rep, r, 120)
		// Three events fall within the 3 s: b slow at 1 s, b healed and c erring at 2 s.
		if len(r.Applied) != 3 || r.Applied[0].Broker != "broker-b" || r.Applied[0].What != "+400ms" ||
			r.Applied[1].What != "healthy" || r.Applied[2].What != "SYSTEM_BUSY 50%" {
			t.Errorf("%s: applied %+v", r.Strategy, r.Applied)
		}
	}
	if rep.Results[0].HealthReported {
		t.Errorf("round-robin reported a health table")
	}
	if !rep.Results[1].HealthReported {
		t.Errorf("latency-fault reported no health table")
	}
	if rep.Results[1].Where != "plugin process" || rep.Results[1].Crashes != 0 {
		t.Errorf("latency-fault: %+v", rep.Results[1])
	}

	var table bytes.Buffer
	if err := WriteTable(&table, rep); err != nil {
		t.Fatal(err)
	}
	for _, s := range []string{"rr <in-process>", "lf & plugin", "broker-b", "success", "p99"} {
		if !strings.Contains(table.String(), s) {
			t.Errorf("table lacks %q:\n%s", s, table.String())
		}
	}
	var svg bytes.Buffer
	if err := WriteSVG(&svg, rep); err != nil {
		t.Fatal(err)
	}
	checkXML(t, svg.Bytes())
	if !strings.Contains(svg.String(), "lf &amp; plugin") {
		t.Errorf("the SVG does not name the strategy")
	}
	t.Logf("\n%s", table.String())
}

// TestRunCut runs the first second of a scenario for one strategy only.
func TestRunCut(t *testing.T) {
	if testing.Short() {
		t.Skip("runs 1 s of real-time simulation")
	}
	sc, err := Parse("short.toml", []byte(shortScenario), ".")
	if err != nil {
		t.Fatal(err)
	}
	rep, err := Run(context.Background(), sc, Options{Duration: time.Second, Strategies: []string{"lf & plugin"}, SampleInterval: 50 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	if rep.Duration != time.Second || rep.Planned != 3*time.Second || len(rep.Windows) != 0 || len(rep.Results) != 1 {
		t.Fatalf("report: %+v", rep)
	}
	checkResult(t, rep, rep.Results[0], 40)
	if len(rep.Results[0].Applied) != 0 {
		t.Errorf("applied %+v", rep.Results[0].Applied)
	}
	if _, err := Run(context.Background(), sc, Options{Strategies: []string{"nope"}}); !errors.Is(err, ErrNoStrategy) {
		t.Errorf("unknown strategy: %v", err)
	}
}

// checkResult asserts the structure of one strategy's result.
func checkResult(t *testing.T, rep *Report, r Result, sent int) {
	t.Helper()
	if r.Sent != sent || r.OK+r.Failed != r.Sent || r.Attempts < r.Sent || r.Retries != r.Attempts-r.Sent {
		t.Errorf("%s: sent %d ok %d failed %d attempts %d retries %d", r.Strategy, r.Sent, r.OK, r.Failed, r.Attempts, r.Retries)
	}
	if r.P50 <= 0 || r.P50 > r.P99 || r.P99 > r.Max {
		t.Errorf("%s: p50 %v p99 %v max %v", r.Strategy, r.P50, r.P99, r.Max)
	}
	if len(r.Share) != len(rep.Brokers) || math.Abs(sum(r.Share)-1) > 1e-9 {
		t.Errorf("%s: shares %v do not sum to 1", r.Strategy, r.Share)
	}
	if want := int(math.Ceil(rep.Duration.Seconds())); len(r.Seconds) != want {
		t.Fatalf("%s: %d seconds, want %d", r.Strategy, len(r.Seconds), want)
	}
	attempts, sends := 0, 0
	for i, s := range r.Seconds {
		var shares []float64
		for b := range rep.Brokers {
			if v, ok := s.Share(b); ok {
				shares = append(shares, v)
			}
		}
		if len(shares) > 0 && math.Abs(sum(shares)-1) > 1e-9 {
			t.Errorf("%s: second %d: shares %v do not sum to 1", r.Strategy, i, shares)
		}
		for _, n := range s.Attempts {
			attempts += n
		}
		sends += s.Sent
	}
	if attempts != r.Attempts || sends != r.Sent {
		t.Errorf("%s: seconds hold %d attempts and %d sends, totals %d and %d", r.Strategy, attempts, sends, r.Attempts, r.Sent)
	}
}

func sum(v []float64) float64 {
	t := 0.0
	for _, x := range v {
		t += x
	}
	return t
}

// checkXML fails unless b is one well-formed XML document with an <svg> root.
func checkXML(t *testing.T, b []byte) {
	t.Helper()
	d := xml.NewDecoder(bytes.NewReader(b))
	root := ""
	for {
		tok, err := d.Token()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("SVG is not well-formed XML: %v", err)
		}
		if se, ok := tok.(xml.StartElement); ok && root == "" {
			root = se.Name.Local
		}
	}
	if root != "svg" {
		t.Fatalf("root element %q, want svg", root)
	}
}

// TestSVGSynthetic draws a report with awkward names and empty data.
func TestSVGSynthetic(t *testing.T) {
	t.Parallel()
	rep := &Report{Scenario: `a<b>&"c"`, Brokers: []string{"x", "y"}, Duration: 3 * time.Second,
		Producer: Producer{SendTimeout: 50 * time.Millisecond},
		Windows:  []Window{{Broker: "x", From: time.Second, To: 2 * time.Second, What: "+1s & more"}},
		Results: []Result{
			{Strategy: "<none>", Seconds: make([]Second, 3)},
			{Strategy: "one", HealthReported: true, Isolations: []Isolation{{Broker: "y", From: 0, To: time.Second}},
				Seconds: []Second{{Attempts: []int{3, 1}, Sent: 4, OK: 3, P50: time.Millisecond, P99: 2 * time.Second}, {Attempts: []int{0, 0}}, {Attempts: []int{1, 0}, Sent: 1, OK: 1}}},
		}}
	for i := range rep.Results[0].Seconds {
		rep.Results[0].Seconds[i] = Second{Attempts: []int{0, 0}, Isolated: []bool{false, false}}
	}
	for i := range rep.Results[1].Seconds {
		rep.Results[1].Seconds[i].Isolated = []bool{false, i == 0}
	}
	var b bytes.Buffer
	if err := WriteSVG(&b, rep); err != nil {
		t.Fatal(err)
	}
	checkXML(t, b.Bytes())
	if err := WriteTable(io.Discard, rep); err != nil {
		t.Fatal(err)
	}
}
