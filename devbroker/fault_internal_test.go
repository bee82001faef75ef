package devbroker

import (
	"testing"
	"time"

	"github.com/producerd/producerd/remoting"
)

func TestLatencySample(t *testing.T) {
	t.Parallel()
	ms := time.Millisecond
	pct := []Percentile{{P: 50, D: 2 * ms}, {P: 90, D: 10 * ms}, {P: 100, D: 50 * ms}}
	tests := []struct {
		name string
		l    Latency
		u    []float64 // successive draws
		want time.Duration
	}{
		{"zero", Latency{}, nil, 0},
		{"fixed", Latency{Fixed: 5 * ms}, nil, 5 * ms},
		{"jitter", Latency{Fixed: 5 * ms, Jitter: 10 * ms}, []float64{0.5}, 10 * ms},
		{"below the first point", Latency{Percentiles: pct}, []float64{0.1}, 2 * ms},
		{"on a point", Latency{Percentiles: pct}, []float64{0.9}, 10 * ms},
		{"interpolated", Latency{Percentiles: pct}, []float64{0.7}, 6 * ms},
		{"top segment", Latency{Percentiles: pct}, []float64{0.95}, 30 * ms},
		{"all parts", Latency{Fixed: ms, Jitter: 2 * ms, Percentiles: pct}, []float64{0.5, 0.7}, 8 * ms},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			i := 0
			rnd := func() float64 { v := tt.u[i]; i++; return v }
			got := tt.l.sample(rnd)
			if d := got - tt.want; d < -time.Microsecond || d > time.Microsecond {
				t.Errorf("sample = %v, want %v", got, tt.want)
			}
			if i != len(tt.u) {
				t.Errorf("used %d draws, want %d", i, len(tt.u))
			}
		})
	}
}

func TestPickError(t *testing.T) {
	t.Parallel()
	f := Fault{Errors: []InjectedError{{Code: remoting.SystemBusy, Rate: 0.25}, {Code: remoting.SystemError, Rate: 0.5}}}
	for _, tt := range []struct {
		u    float64
		want remoting.ResponseCode
		ok   bool
	}{{0, remoting.SystemBusy, true}, {0.24, remoting.SystemBusy, true}, {0.25, remoting.SystemError, true}, {0.74, remoting.SystemError, true}, {0.75, 0, false}} {
		e, ok := f.pickError(func() float64 { return tt.u })
		if ok != tt.ok || e.Code != tt.want {
			t.Errorf("u=%v: %v %v, want %v %v", tt.u, e.Code, ok, tt.want, tt.ok)
		}
	}
}

func TestRouteJSONEscaping(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		standard bool
		in, want string
	}{
		{false, `a"b\c`, `"a\"b\\c"`},
		{false, "é\x01", "\"é\\u0001\""},
		{true, "é😀", `"\u00e9\ud83d\ude00"`},
	} {
		w := jsonWriter{standard: tt.standard}
		w.str(tt.in)
		if string(w.b) != tt.want {
			t.Errorf("str(%q, standard=%v) = %s, want %s", tt.in, tt.standard, w.b, tt.want)
		}
	}
}
