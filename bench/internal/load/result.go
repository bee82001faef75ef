package load

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
)

// Result is what one driver run measured. Its line form ("RESULT key=value ...") is the
// same for every driver, the Java one included.
type Result struct {
	Driver string
	Label  string
	Mode   string
	Conc   int
	Size   int
	Batch  int
	// Msgs is the number of messages stored, Errors the number that failed.
	Msgs, Errors int
	// Slow counts operations (sends, batches) slower than one second.
	Slow int
	// Sec is the length of the measured phase.
	Sec float64
	// MsgsPerSec is Msgs/Sec.
	MsgsPerSec float64
	// Latencies of operations in milliseconds.
	P50, P99, P999, Max float64
	// CPU is the producer process's CPU seconds during the measured phase.
	CPU float64
	// RSSMiB is the producer process's peak RSS (VmHWM) in MiB.
	RSSMiB float64
	// Brokers counts stored messages per broker name.
	Brokers map[string]int
}

// String renders the result line.
func (r *Result) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "RESULT driver=%s label=%s mode=%s conc=%d size=%d batch=%d msgs=%d errors=%d slow=%d sec=%.3f msgs_per_s=%.0f p50_ms=%.3f p99_ms=%.3f p999_ms=%.3f max_ms=%.3f cpu_s=%.2f rss_mib=%.1f brokers=",
		orDash(r.Driver), orDash(r.Label), r.Mode, r.Conc, r.Size, r.Batch, r.Msgs, r.Errors, r.Slow, r.Sec, r.MsgsPerSec,
		r.P50, r.P99, r.P999, r.Max, r.CPU, r.RSSMiB)
	names := make([]string, 0, len(r.Brokers))
	for n := range r.Brokers {
		names = append(names, n)
	}
	slices.Sort(names)
	if len(names) == 0 {
		b.WriteString("-")
	}
	for i, n := range names {
		if i > 0 {
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, "%s:%d", n, r.Brokers[n])
	}
	return b.String()
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// ParseResult parses a result line, as printed by any driver.
func ParseResult(line string) (*Result, error) {
	rest, ok := strings.CutPrefix(strings.TrimSpace(line), "RESULT ")
	if !ok {
		return nil, fmt.Errorf("load: not a result line: %q", line)
	}
	r := &Result{Brokers: map[string]int{}}
	var errs []string
	num := func(k, v string, dst *float64) {
		f, err := strconv.ParseFloat(v, 64)
		if err != nil {
			errs = append(errs, k)
		}
		*dst = f
	}
	integer := func(k, v string, dst *int) {
		n, err := strconv.Atoi(v)
		if err != nil {
			errs = append(errs, k)
		}
		*dst = n
	}
	for _, kv := range strings.Fields(rest) {
		k, v, _ := strings.Cut(kv, "=")
		switch k {
		case "driver":
			r.Driver = v
		case "label":
			r.Label = v
		case "mode":
			r.Mode = v
		case "conc":
			integer(k, v, &r.Conc)
		case "size":
			integer(k, v, &r.Size)
		case "batch":
			integer(k, v, &r.Batch)
		case "msgs":
			integer(k, v, &r.Msgs)
		case "errors":
			integer(k, v, &r.Errors)
		case "slow":
			integer(k, v, &r.Slow)
		case "sec":
			num(k, v, &r.Sec)
		case "msgs_per_s":
			num(k, v, &r.MsgsPerSec)
		case "p50_ms":
			num(k, v, &r.P50)
		case "p99_ms":
			num(k, v, &r.P99)
		case "p999_ms":
			num(k, v, &r.P999)
		case "max_ms":
			num(k, v, &r.Max)
		case "cpu_s":
			num(k, v, &r.CPU)
		case "rss_mib":
			num(k, v, &r.RSSMiB)
		case "brokers":
			if v == "-" {
				continue
			}
			for _, bc := range strings.Split(v, ",") {
				name, c, _ := strings.Cut(bc, ":")
				n, err := strconv.Atoi(c)
				if err != nil {
					errs = append(errs, k)
					continue
				}
				r.Brokers[name] = n
			}
		}
	}
	if len(errs) > 0 {
		return nil, fmt.Errorf("load: bad result line fields %v: %q", errs, line)
	}
	return r, nil
}

// CPUPerMsg is the producer CPU per stored message in microseconds.
func (r *Result) CPUPerMsg() float64 {
	if r.Msgs == 0 {
		return 0
	}
	return r.CPU / float64(r.Msgs) * 1e6
}
