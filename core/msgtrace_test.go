package core

import (
	"reflect"
	"strings"
	"testing"
	"time"
)

// TestTraceRecordEncoding: the 14-field Pub shape of the Java TraceDataEncoder, with
// "null" for an absent tag or key, and the decoder reading it back.
func TestTraceRecordEncoding(t *testing.T) {
	t.Parallel()
	r := TraceRecord{Time: time.UnixMilli(1700000000123), Region: "DefaultRegion", Group: "g1", Topic: "T",
		MsgID: "7F0000010001000000000000000A0001", Keys: []string{"k1", "k2"}, StoreHost: "127.0.0.1:10911",
		BodyLength: 5, Cost: 12 * time.Millisecond, MsgType: TraceNormalMsg, OffsetMsgID: "7F00000100002A9F0000000000000010", Success: true}
	got := string(r.AppendTo(nil))
	want := strings.Join([]string{"Pub", "1700000000123", "DefaultRegion", "g1", "T", "7F0000010001000000000000000A0001",
		"null", "k1 k2", "127.0.0.1:10911", "5", "12", "0", "7F00000100002A9F0000000000000010", "true"}, "\u0001") + "\u0002"
	if got != want {
		t.Fatalf("encoded\n%q\nwant\n%q", got, want)
	}
	back, err := DecodeTraceRecords([]byte(got + got))
	if err != nil || len(back) != 2 {
		t.Fatalf("decode: %v %v", back, err)
	}
	back[0].Time = back[0].Time.UTC()
	r.Time = r.Time.UTC()
	if !reflect.DeepEqual(back[0], r) {
		t.Fatalf("decoded %+v\nwant %+v", back[0], r)
	}
}

func TestHasProperty(t *testing.T) {
	t.Parallel()
	props := "KEYS\u0001a\u0002DELAY\u00013\u0002UNIQ_KEY\u0001X\u0002"
	if !hasProperty(props, "DELAY") || hasProperty(props, "ELAY") || !hasProperty(props, "KEYS") || hasProperty(props, "TAGS") {
		t.Fatal("hasProperty")
	}
}

// TestTraceRecordMessageType: a Pub record's type is what the Java 5.3 producer writes
// for the same message (sendKernelImpl, spec §3.1): Delay_Msg for a delay level or
// __STARTDELIVERTIME, Trans_Msg_Half for a half message, Normal_Msg otherwise, the timer
// messages (DeliverAt, Delay) included.
func TestTraceRecordMessageType(t *testing.T) {
	t.Parallel()
	p := &Producer{cfg: ProducerConfig{Group: "g", MaxMessageSize: DefaultMaxMessageSize, MaxDelayLevel: MaxDelayLevel}}
	tests := []struct {
		name string
		m    Message
		half bool
		want int
	}{
		{"normal", Message{}, false, TraceNormalMsg},
		{"delay level", Message{DelayLevel: 3}, false, TraceDelayMsg},
		{"__STARTDELIVERTIME", Message{Properties: map[string]string{"__STARTDELIVERTIME": "1700000000000"}}, false, TraceDelayMsg},
		{"timer deliver-at", Message{DeliverAt: time.Now().Add(time.Minute)}, false, TraceNormalMsg},
		{"timer delay", Message{Delay: 10 * time.Second}, false, TraceNormalMsg},
		{"half message", Message{}, true, TraceTransHalfMsg},
		{"ordered", Message{ShardingKey: "k"}, false, TraceNormalMsg},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := tt.m
			m.Topic, m.Body = "T", []byte("b")
			var pr prepared
			if err := p.encodeInto(&pr, &m, tt.half); err != nil {
				t.Fatal(err)
			}
			r := p.traceRecord(&pr, &SendResult{MsgID: pr.uniqKey, Status: SendOK}, "127.0.0.1:10911", time.Now(), time.Millisecond)
			if r.MsgType != tt.want {
				t.Errorf("MsgType %d, want %d", r.MsgType, tt.want)
			}
		})
	}
}
