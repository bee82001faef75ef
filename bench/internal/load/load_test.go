package load

import (
	"bytes"
	"compress/zlib"
	"context"
	"errors"
	"flag"
	"hash/crc32"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

func TestBody(t *testing.T) {
	t.Parallel()
	// The Java driver (JavaDriver.body) yields the same bytes: same prefix, same CRC.
	if got, want := string(Body(40)), "cgqveqz gwncigy cpqjjgt qgpctmq cjiegaq "; got != want {
		t.Errorf("Body(40) = %q, want %q", got, want)
	}
	if got, want := crc32.ChecksumIEEE(Body(16384)), uint32(2424813183); got != want {
		t.Errorf("crc32(Body(16384)) = %d, want %d", got, want)
	}
	var z bytes.Buffer
	w, _ := zlib.NewWriterLevel(&z, 5)
	w.Write(Body(16384))
	w.Close()
	if r := float64(z.Len()) / 16384; r < 0.4 || r > 0.8 {
		t.Errorf("zlib ratio %.2f, want a text-like 0.4..0.8", r)
	}
}

func TestPercentile(t *testing.T) {
	t.Parallel()
	ms := func(v ...int64) []int64 {
		for i := range v {
			v[i] *= 1e6
		}
		return v
	}
	tests := []struct {
		name string
		in   []int64
		q    float64
		want float64
	}{
		{"empty", nil, 50, 0},
		{"one", ms(7), 99.9, 7},
		{"median of 4", ms(1, 2, 3, 4), 50, 2},
		{"p99 of 100", ms(seq(100)...), 99, 99},
		{"p99.9 of 1000", ms(seq(1000)...), 99.9, 999},
		{"max", ms(1, 2, 3), 100, 3},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := percentile(tt.in, tt.q); got != tt.want {
				t.Errorf("percentile(q=%v) = %v, want %v", tt.q, got, tt.want)
			}
		})
	}
}

func seq(n int) []int64 {
	out := make([]int64, n)
	for i := range out {
		out[i] = int64(i + 1)
	}
	return out
}

func TestResultRoundTrip(t *testing.T) {
	t.Parallel()
	in := &Result{Driver: "core", Label: "sync-64", Mode: "sync", Conc: 64, Size: 1024, Batch: 1, Msgs: 1000, Errors: 2,
		Slow: 1, Sec: 1.5, MsgsPerSec: 666.667, P50: 1.25, P99: 9.5, P999: 12.125, Max: 30, CPU: 0.42, RSSMiB: 21.5,
		Brokers: map[string]int{"broker-b": 400, "broker-a": 600}}
	line := in.String()
	if !strings.HasSuffix(line, "brokers=broker-a:600,broker-b:400") {
		t.Errorf("brokers not sorted: %s", line)
	}
	out, err := ParseResult(line)
	if err != nil {
		t.Fatal(err)
	}
	if out.String() != line {
		t.Errorf("round trip:\n got %s\nwant %s", out.String(), line)
	}
	if got := out.CPUPerMsg(); got < 419.999 || got > 420.001 {
		t.Errorf("CPUPerMsg = %v µs, want 420", got)
	}
	if _, err := ParseResult("RESULT msgs=x"); err == nil {
		t.Error("bad line parsed without error")
	}
}

func TestProcSelf(t *testing.T) {
	t.Parallel()
	if _, err := os.Stat("/proc/self/stat"); err != nil {
		t.Skip("no /proc")
	}
	if _, err := ProcCPU(0); err != nil {
		t.Error(err)
	}
	if rss, err := PeakRSS(0); err != nil || rss <= 0 {
		t.Errorf("PeakRSS = %d, %v", rss, err)
	}
	if _, err := ProcCPU(os.Getpid()); err != nil {
		t.Error(err)
	}
}

// fakeSender stores everything on "b1" except message indices divisible by 10, which
// fail.
type fakeSender struct {
	mu   sync.Mutex
	seen map[int]bool
}

func (f *fakeSender) outcome(i int) (string, error) {
	f.mu.Lock()
	f.seen[i] = true
	f.mu.Unlock()
	if i%10 == 0 {
		return "", errors.New("boom")
	}
	return "b1", nil
}

func (f *fakeSender) Send(_ context.Context, i int) (string, error) { return f.outcome(i) }

func (f *fakeSender) SendAsync(_ context.Context, i int, done func(string, error)) error {
	go func() { done(f.outcome(i)) }()
	return nil
}

func (f *fakeSender) SendBatch(_ context.Context, first, n int) (string, error) {
	return f.outcome(first)
}

func TestRunPhase(t *testing.T) {
	quiet(t)
	for _, mode := range []string{ModeSync, ModeAsync, ModeBatch} {
		t.Run(mode, func(t *testing.T) {
			fs := flag.NewFlagSet("x", flag.ContinueOnError)
			p := Register(fs)
			if err := fs.Parse([]string{"-mode", mode, "-n", "1000", "-concurrency", "4", "-batch", "10", "-duration", "10s"}); err != nil {
				t.Fatal(err)
			}
			f := &fakeSender{seen: map[int]bool{}}
			ops := (p.N + p.perOp() - 1) / p.perOp()
			rec := NewRecorder(ops, p.perOp())
			elapsed := runPhase(p, f, rec, ops, 0, p.Duration, 0)
			var res Result
			rec.Fill(&res, elapsed)
			wantErr := 100
			if mode == ModeBatch {
				wantErr = 1000 // every batch starts at a multiple of 10
			}
			if res.Msgs+res.Errors != 1000 || res.Errors != wantErr {
				t.Errorf("msgs %d errors %d, want %d errors of 1000", res.Msgs, res.Errors, wantErr)
			}
			if res.Msgs > 0 && res.Brokers["b1"] != res.Msgs {
				t.Errorf("brokers %v, want all %d on b1", res.Brokers, res.Msgs)
			}
			path := filepath.Join(t.TempDir(), "trace.csv")
			if err := rec.WriteTrace(path); err != nil {
				t.Fatal(err)
			}
			data, _ := os.ReadFile(path)
			if lines := strings.Count(string(data), "\n"); lines != ops+1 {
				t.Errorf("trace has %d lines, want %d", lines, ops+1)
			}
		})
	}
}

func TestPacer(t *testing.T) {
	t.Parallel()
	pc := newPacer(1000, 1, 0, 1) // one per ms
	start := time.Now()
	for range 20 {
		pc.wait()
	}
	if d := time.Since(start); d < 15*time.Millisecond {
		t.Errorf("20 paced operations at 1000/s took %v", d)
	}
	if (&pacer{}).every != 0 {
		t.Error("zero pacer must not wait")
	}
}

func TestValidate(t *testing.T) {
	t.Parallel()
	fs := flag.NewFlagSet("x", flag.ContinueOnError)
	p := Register(fs)
	if err := fs.Parse([]string{"-mode", "bogus", "-n", "0", "-size", "-1"}); err != nil {
		t.Fatal(err)
	}
	err := p.Validate()
	if err == nil {
		t.Fatal("want an error")
	}
	for _, want := range []string{"-mode", "-n", "-size"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not name %s", err, want)
		}
	}
}

// quiet sends the phase's "send failed" lines to a discarded pipe for the test.
func quiet(t *testing.T) {
	t.Helper()
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	old := os.Stderr
	os.Stderr = w
	done := make(chan struct{})
	go func() { io.Copy(io.Discard, r); close(done) }()
	t.Cleanup(func() {
		os.Stderr = old
		w.Close()
		<-done
		r.Close()
	})
}
