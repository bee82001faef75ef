package wasmabi_test

import (
	"errors"
	"fmt"
	"reflect"
	"testing"
	"time"

	"github.com/producerd/producerd/plugins/sdk"
	"github.com/producerd/producerd/plugins/sdk/sdktest"
	"github.com/producerd/producerd/plugins/sdk/wasmguest/wasmabi"
)

func sampleSelection() *sdk.Selection {
	s := sdktest.NewRoute("orders", sdktest.QueuesOf(2, "broker-a", "broker-b", "broker-c")).Retry("broker-b", 2)
	s.Message = &sdk.MessageInfo{Keys: []string{"k1", "", "键"}, Tags: "tagA", ShardingKey: "order-😀", Size: 4096}
	return s
}

func TestSelectRoundTrip(t *testing.T) {
	sel := sampleSelection()
	for _, tc := range []struct {
		name       string
		withQueues bool
		msg        bool
	}{{"bare", false, false}, {"queues", true, false}, {"message", false, true}, {"both", true, true}} {
		t.Run(tc.name, func(t *testing.T) {
			s := *sel
			if !tc.msg {
				s.Message = nil
			}
			b := wasmabi.AppendSelect(nil, &s, 1234567, 17, tc.withQueues)
			var p wasmabi.Select
			if err := wasmabi.ParseSelect(b, &p); err != nil {
				t.Fatal(err)
			}
			if p.Now != 1234567 || p.Slot != 17 || p.RouteVersion != s.RouteVersion || p.Attempt != 2 ||
				p.Remaining != s.Remaining || string(p.LastBroker) != "broker-b" {
				t.Fatalf("parsed %+v", p)
			}
			if p.HasQueues() != tc.withQueues || p.HasMessage() != tc.msg {
				t.Fatalf("flags %b", p.Flags)
			}
			if tc.withQueues {
				if string(p.Topic) != "orders" || !reflect.DeepEqual(p.Queues(nil), s.Queues) {
					t.Fatalf("topic %q queues %v", p.Topic, p.Queues(nil))
				}
			} else if len(p.Topic) != 0 || p.Queues(nil) != nil {
				t.Fatalf("topic %q sent without the queue list", p.Topic)
			}
			var m sdk.MessageInfo
			if p.Message(&m, false) != tc.msg || tc.msg && !reflect.DeepEqual(m, *s.Message) {
				t.Fatalf("message %+v", m)
			}
		})
	}
}

func TestOtherRoundTrips(t *testing.T) {
	outcomes := []sdk.Outcome{
		{Topic: "t", Broker: "broker-a", Queue: 3, Latency: 5 * time.Millisecond, Kind: sdk.OutcomeOK},
		{Broker: "broker-b", Latency: -time.Second, Kind: sdk.OutcomeBrokerError, Code: 17, Isolation: true},
		{Kind: sdk.OutcomeKind(200), Latency: 1 << 62},
	}
	now, got, err := wasmabi.DecodeObserve(wasmabi.AppendObserve(nil, 99, outcomes), nil, nil)
	if err != nil || now != 99 || !reflect.DeepEqual(got, outcomes) {
		t.Fatalf("observe: %v %v %+v", now, err, got)
	}

	until := time.Unix(1_800_000_000, 123)
	rows := []sdk.BrokerHealth{
		{Broker: "broker-a", Available: true, Latency: time.Millisecond, Weight: 300},
		{Broker: "broker-b", Until: until, Latency: 3 * time.Second},
		{Broker: "broker-c", Until: time.Unix(0, 0)}, // the epoch is not the zero time
	}
	gotRows, err := wasmabi.DecodeHealth(wasmabi.AppendHealth(nil, rows))
	if err != nil || len(gotRows) != 3 || !gotRows[1].Until.Equal(until) || gotRows[2].Until.IsZero() ||
		!gotRows[0].Until.IsZero() || gotRows[0] != rows[0] {
		t.Fatalf("health: %v %+v", err, gotRows)
	}
	now, seeded, err := wasmabi.DecodeSeed(wasmabi.AppendSeed(nil, 5, rows[:1]))
	if err != nil || now != 5 || len(seeded) != 1 || seeded[0] != rows[0] {
		t.Fatalf("seed: %v %v %+v", now, err, seeded)
	}
	if now, err := wasmabi.DecodeNow(wasmabi.AppendNow(nil, -7)); err != nil || now != -7 {
		t.Fatalf("now: %v %v", now, err)
	}

	d := sdk.Descriptor{Name: "x", NeedsMessage: true, UrgentLatency: time.Second}
	desc, err := wasmabi.DecodeDescribe(wasmabi.AppendDescribe(nil, d, wasmabi.FlagObserver|wasmabi.FlagLocalApply))
	if err != nil || desc.Descriptor != d || !desc.Has(wasmabi.FlagObserver|wasmabi.FlagNeedsMessage) || desc.Has(wasmabi.FlagLocalApply) {
		t.Fatalf("describe: %v %+v", err, desc)
	}
}

// TestTruncated: every prefix of a valid message is refused, never a panic.
func TestTruncated(t *testing.T) {
	full := wasmabi.AppendSelect(nil, sampleSelection(), 1, 2, true)
	var p wasmabi.Select
	for n := range len(full) {
		if err := wasmabi.ParseSelect(full[:n], &p); !errors.Is(err, wasmabi.ErrMalformed) {
			t.Fatalf("select prefix %d/%d: %v", n, len(full), err)
		}
	}
	obs := wasmabi.AppendObserve(nil, 1, []sdk.Outcome{sdktest.OK("b", 1)})
	for n := range len(obs) {
		if _, _, err := wasmabi.DecodeObserve(obs[:n], nil, nil); !errors.Is(err, wasmabi.ErrMalformed) {
			t.Fatalf("observe prefix %d: %v", n, err)
		}
	}
	if err := wasmabi.ParseSelect(append(full, 0), &p); !errors.Is(err, wasmabi.ErrMalformed) {
		t.Fatalf("trailing byte: %v", err)
	}
}

func TestHostileCounts(t *testing.T) {
	// A count of 2^32-1 outcomes in a 12-byte message must not allocate for them.
	b := []byte{0, 0, 0, 0, 0, 0, 0, 0, 0xFF, 0xFF, 0xFF, 0xFF}
	if _, _, err := wasmabi.DecodeObserve(b, nil, nil); !errors.Is(err, wasmabi.ErrMalformed) {
		t.Fatalf("observe: %v", err)
	}
	if _, err := wasmabi.DecodeHealth(b[8:]); !errors.Is(err, wasmabi.ErrMalformed) {
		t.Fatalf("health: %v", err)
	}
}

func FuzzParseSelect(f *testing.F) {
	f.Add(wasmabi.AppendSelect(nil, sampleSelection(), 1, 2, true))
	f.Add(wasmabi.AppendSelect(nil, sampleSelection(), 1, 2, false))
	f.Fuzz(func(t *testing.T, b []byte) {
		var p wasmabi.Select
		if wasmabi.ParseSelect(b, &p) != nil {
			return
		}
		var m sdk.MessageInfo
		p.Message(&m, false)
		for _, q := range p.Queues(nil) {
			_ = q.Broker
		}
	})
}

func FuzzDecode(f *testing.F) {
	f.Add(byte(0), wasmabi.AppendObserve(nil, 1, []sdk.Outcome{sdktest.OK("b", 1)}))
	f.Add(byte(1), wasmabi.AppendHealth(nil, []sdk.BrokerHealth{{Broker: "b", Until: time.Unix(5, 0)}}))
	f.Add(byte(2), wasmabi.AppendSeed(nil, 3, []sdk.BrokerHealth{{Broker: "b"}}))
	f.Add(byte(3), wasmabi.AppendDescribe(nil, sdk.Descriptor{Name: "n"}, 0))
	f.Fuzz(func(t *testing.T, which byte, b []byte) {
		switch which % 4 {
		case 0:
			_, _, _ = wasmabi.DecodeObserve(b, nil, nil)
		case 1:
			_, _ = wasmabi.DecodeHealth(b)
		case 2:
			_, _, _ = wasmabi.DecodeSeed(b)
		case 3:
			_, _ = wasmabi.DecodeDescribe(b)
		}
	})
}

// TestObserveNameTable: an observe input carries each distinct name once, past the
// encoder's linear scan too, and a decoder refuses records that break the layout.
func TestObserveNameTable(t *testing.T) {
	var outcomes []sdk.Outcome
	for i := range 40 {
		outcomes = append(outcomes, sdk.Outcome{Topic: fmt.Sprintf("t%d", i%3), Broker: fmt.Sprintf("b%d", i%25), Queue: int32(i), Kind: sdk.OutcomeOK})
	}
	var enc wasmabi.ObserveEncoder
	for range 2 { // the encoder's table is reused
		b := enc.Append(nil, 7, wasmabi.ObservePolicy, outcomes)
		var o wasmabi.Observe
		if err := o.Decode(b, nil); err != nil || o.Now != 7 || o.Flags != wasmabi.ObservePolicy || !reflect.DeepEqual(o.Outcomes, outcomes) {
			t.Fatalf("round trip: %v %d %d %+v", err, o.Now, o.Flags, o.Outcomes)
		}
		if want := 16 + 28*(4+3) + 4 + 40*wasmabi.OutcomeRecordSize; len(b) > want {
			t.Fatalf("%d bytes, want at most %d: names repeat", len(b), want)
		}
	}
	good := wasmabi.AppendObserve(nil, 1, []sdk.Outcome{sdktest.OK("b", 1)})
	rec := len(good) - wasmabi.OutcomeRecordSize
	for name, mutate := range map[string]func(b []byte){
		"topic index":  func(b []byte) { b[rec] = 9 },
		"broker index": func(b []byte) { b[rec+2] = 9 },
		"isolation":    func(b []byte) { b[rec+9] = 2 },
		"padding":      func(b []byte) { b[rec+11] = 1 },
		"extra byte":   nil,
	} {
		b := append([]byte(nil), good...)
		if mutate == nil {
			b = append(b, 0)
		} else {
			mutate(b)
		}
		var o wasmabi.Observe
		if err := o.Decode(b, nil); !errors.Is(err, wasmabi.ErrMalformed) {
			t.Errorf("%s: %v", name, err)
		}
	}
}

// TestSamePolicy: only what package pick reads counts: the latency of an available
// broker does not, an unavailable one's (the cost of its exclusion) does.
func TestSamePolicy(t *testing.T) {
	base := []sdk.BrokerHealth{
		{Broker: "a", Available: true, Latency: time.Millisecond, Weight: 3},
		{Broker: "b", Until: time.Unix(100, 0), Latency: time.Second},
	}
	tests := []struct {
		name   string
		change func(rows []sdk.BrokerHealth) []sdk.BrokerHealth
		same   bool
	}{
		{"identical", func(r []sdk.BrokerHealth) []sdk.BrokerHealth { return r }, true},
		{"available latency", func(r []sdk.BrokerHealth) []sdk.BrokerHealth { r[0].Latency = time.Hour; return r }, true},
		{"unavailable latency", func(r []sdk.BrokerHealth) []sdk.BrokerHealth { r[1].Latency = time.Hour; return r }, false},
		{"weight", func(r []sdk.BrokerHealth) []sdk.BrokerHealth { r[0].Weight = 4; return r }, false},
		{"until", func(r []sdk.BrokerHealth) []sdk.BrokerHealth { r[1].Until = time.Unix(101, 0); return r }, false},
		{"availability", func(r []sdk.BrokerHealth) []sdk.BrokerHealth { r[1].Available = true; return r }, false},
		{"broker", func(r []sdk.BrokerHealth) []sdk.BrokerHealth { r[0].Broker = "c"; return r }, false},
		{"fewer rows", func(r []sdk.BrokerHealth) []sdk.BrokerHealth { return r[:1] }, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			rows := tc.change(append([]sdk.BrokerHealth(nil), base...))
			if got := wasmabi.SamePolicy(base, rows); got != tc.same {
				t.Errorf("SamePolicy = %v, want %v", got, tc.same)
			}
		})
	}
}
