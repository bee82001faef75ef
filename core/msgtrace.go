package core

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-hclog"
)

// Message trace, compatible with the Java client's AsyncTraceDispatcher: every stored
// attempt becomes a "Pub" record; records are batched and sent, off the send path, to
// the trace topic as messages whose KEYS are the traced message ids, where
// `mqadmin queryMsgTraceById` and rocketmq-dashboard find them.
// (shared/spec/rocketmq-message-trace.md §3-§6)

// DefaultTraceTopic is the trace topic the Java client and the tools use by default.
const DefaultTraceTopic = "RMQ_SYS_TRACE_TOPIC"

// Record separators of the trace encoding (Java TraceConstants).
const (
	traceContentSep = '\u0001'
	traceFieldSep   = '\u0002'
)

// Java MessageType ordinals written in a Pub record.
const (
	TraceNormalMsg    = 0
	TraceTransHalfMsg = 1
	TraceDelayMsg     = 3
)

// Trace dispatch limits (Java 5.3.x: a batch of 10 records, a message of at most
// 128 000 characters, a queue of 2048 records, dropped when full).
const (
	traceBatch      = 10
	traceMaxBody    = 128000
	traceQueueLen   = 2048
	traceFlushEvery = time.Second
)

// TraceRecord is one Pub record: a stored attempt of a send.
type TraceRecord struct {
	Time        time.Time // the attempt's start
	Region      string
	Group       string // without namespace
	Topic       string // without namespace
	MsgID       string // UNIQ_KEY
	Tags        string
	Keys        []string
	StoreHost   string // the broker address the attempt used
	BodyLength  int    // as sent (compressed when it was)
	Cost        time.Duration
	MsgType     int
	OffsetMsgID string
	Success     bool // SEND_OK
}

// nullable renders an empty string as Java renders a null String: "null".
func nullable(s string) string {
	if s == "" {
		return "null"
	}
	return s
}

// AppendTo appends the record's 14-field encoding, ending with \u0002.
func (r *TraceRecord) AppendTo(b []byte) []byte {
	field := func(s string) { b = append(b, s...); b = append(b, traceContentSep) }
	field("Pub")
	field(strconv.FormatInt(r.Time.UnixMilli(), 10))
	field(r.Region)
	field(r.Group)
	field(r.Topic)
	field(r.MsgID)
	field(nullable(r.Tags))
	field(nullable(strings.Join(r.Keys, " ")))
	field(r.StoreHost)
	field(strconv.Itoa(r.BodyLength))
	field(strconv.FormatInt(r.Cost.Milliseconds(), 10))
	field(strconv.Itoa(r.MsgType))
	field(r.OffsetMsgID)
	b = append(b, strconv.FormatBool(r.Success)...)
	return append(b, traceFieldSep)
}

// DecodeTraceRecords decodes the Pub records of a trace message body (other record
// types are skipped), as the Java TraceDataEncoder reads the 14-field shape.
func DecodeTraceRecords(body []byte) ([]TraceRecord, error) {
	var out []TraceRecord
	for _, rec := range strings.Split(string(body), string(traceFieldSep)) {
		if rec == "" {
			continue
		}
		f := strings.Split(rec, string(traceContentSep))
		if f[0] != "Pub" {
			continue
		}
		if len(f) != 14 {
			return out, fmt.Errorf("core: trace record with %d fields, want 14: %q", len(f), rec)
		}
		ts, err1 := strconv.ParseInt(f[1], 10, 64)
		n, err2 := strconv.Atoi(f[9])
		cost, err3 := strconv.ParseInt(f[10], 10, 64)
		typ, err4 := strconv.Atoi(f[11])
		if err := errors.Join(err1, err2, err3, err4); err != nil {
			return out, fmt.Errorf("core: trace record %q: %w", rec, err)
		}
		r := TraceRecord{Time: time.UnixMilli(ts), Region: f[2], Group: f[3], Topic: f[4], MsgID: f[5], Tags: f[6],
			StoreHost: f[8], BodyLength: n, Cost: time.Duration(cost) * time.Millisecond, MsgType: typ, OffsetMsgID: f[12],
			Success: f[13] == "true"}
		if r.Tags == "null" {
			r.Tags = ""
		}
		if f[7] != "null" {
			r.Keys = strings.Fields(f[7])
		}
		out = append(out, r)
	}
	return out, nil
}

// traceRecord builds the record of a stored attempt (Java SendMessageTraceHookImpl). Its
// type is the one Java's sendKernelImpl gives (spec §3.1): a half message is
// Trans_Msg_Half; a message with DELAY (a delay level) or __STARTDELIVERTIME is Delay_Msg
// (checked last, so it wins); every other one is Normal_Msg, the 5.x timer messages
// (TIMER_DELIVER_MS, TIMER_DELAY_MS, TIMER_DELAY_SEC: DeliverAt and Delay) included, as
// the Java 5.3 producer records them, so the tools show the same type for the same
// message whichever producer sent it.
func (p *Producer) traceRecord(pr *prepared, res *SendResult, addr string, start time.Time, cost time.Duration) TraceRecord {
	r := TraceRecord{Time: start, Region: res.RegionID, Group: p.Group(), Topic: WithoutNamespace(p.cfg.Namespace, pr.topic),
		MsgID: res.MsgID, StoreHost: addr, BodyLength: len(pr.body), Cost: cost, MsgType: TraceNormalMsg,
		OffsetMsgID: res.OffsetMsgID, Success: res.Status == SendOK}
	r.Tags, r.Keys = pr.info.Tags, pr.info.Keys
	if pr.half {
		r.MsgType = TraceTransHalfMsg
	}
	if hasProperty(pr.props, PropertyDelay) || hasProperty(pr.props, "__STARTDELIVERTIME") {
		r.MsgType = TraceDelayMsg
	}
	return r
}

// hasProperty reports whether the encoded properties (name\x01value\x02...) set name.
func hasProperty(props, name string) bool {
	return strings.HasPrefix(props, name+"\x01") || strings.Contains(props, "\x02"+name+"\x01")
}

// MsgTracer sends trace records to the trace topic in batches, asynchronously: Record
// never blocks a send. Records beyond a queue of 2048 are dropped (counted). Safe for
// concurrent use; Close flushes.
type MsgTracer struct {
	prod    *Producer
	topic   string
	log     hclog.Logger
	records chan TraceRecord
	done    chan struct{}
	closed  atomic.Bool
	closeMu sync.RWMutex

	dropped atomic.Int64
	sent    atomic.Int64
	failed  atomic.Int64
}

// NewMsgTracer starts a tracer that sends with prod (a producer of its own, e.g. group
// "_INNER_TRACE_PRODUCER-<group>", without trace hooks) to topic (DefaultTraceTopic
// when empty).
func NewMsgTracer(prod *Producer, topic string, log hclog.Logger) *MsgTracer {
	if topic == "" {
		topic = DefaultTraceTopic
	}
	if log == nil {
		log = hclog.NewNullLogger()
	}
	t := &MsgTracer{prod: prod, topic: topic, log: log, records: make(chan TraceRecord, traceQueueLen), done: make(chan struct{})}
	go t.run()
	return t
}

// Record queues r; a full queue drops it.
func (t *MsgTracer) Record(r TraceRecord) {
	t.closeMu.RLock()
	defer t.closeMu.RUnlock()
	if t.closed.Load() {
		return
	}
	select {
	case t.records <- r:
	default:
		if t.dropped.Add(1)%1000 == 1 {
			t.log.Warn("message trace: queue full, records dropped", "dropped", t.dropped.Load())
		}
	}
}

// Stats returns the records dropped for a full queue, and the trace messages sent and
// failed.
func (t *MsgTracer) Stats() (dropped, sent, failed int64) {
	return t.dropped.Load(), t.sent.Load(), t.failed.Load()
}

// Close stops taking records, sends those queued within ctx, and closes the trace
// producer.
func (t *MsgTracer) Close(ctx context.Context) error {
	t.closeMu.Lock()
	if !t.closed.Swap(true) {
		close(t.records)
	}
	t.closeMu.Unlock()
	select {
	case <-t.done:
	case <-ctx.Done():
	}
	return t.prod.Close(ctx)
}

// run batches records: it sends when traceBatch are waiting or the oldest has waited
// traceFlushEvery, and at Close.
func (t *MsgTracer) run() {
	defer close(t.done)
	var batch []TraceRecord
	timer := time.NewTimer(traceFlushEvery)
	timer.Stop()
	for {
		select {
		case r, ok := <-t.records:
			if !ok {
				t.send(batch)
				return
			}
			if len(batch) == 0 {
				timer.Reset(traceFlushEvery)
			}
			batch = append(batch, r)
			if len(batch) >= traceBatch {
				timer.Stop()
				t.send(batch)
				batch = nil
			}
		case <-timer.C:
			t.send(batch)
			batch = nil
		}
	}
}

// send writes records as trace messages of at most traceMaxBody bytes, one per original
// topic as Java groups them, with KEYS = every message id and key of their records.
func (t *MsgTracer) send(records []TraceRecord) {
	byTopic := map[string][]TraceRecord{}
	var order []string
	for _, r := range records {
		if _, ok := byTopic[r.Topic]; !ok {
			order = append(order, r.Topic)
		}
		byTopic[r.Topic] = append(byTopic[r.Topic], r)
	}
	for _, topic := range order {
		var body []byte
		var keys []string
		seen := map[string]bool{}
		flush := func() {
			if len(body) == 0 {
				return
			}
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			_, err := t.prod.Send(ctx, &Message{Topic: t.topic, Body: body, Keys: keys})
			if err != nil {
				t.failed.Add(1)
				t.log.Warn("message trace: send failed", "trace_topic", t.topic, "topic", topic, "records", strings.Count(string(body), string(traceFieldSep)), "error", err)
			} else {
				t.sent.Add(1)
			}
			body, keys, seen = nil, nil, map[string]bool{}
		}
		for i := range byTopic[topic] {
			r := &byTopic[topic][i]
			body = r.AppendTo(body)
			for _, k := range append([]string{r.MsgID}, r.Keys...) {
				if k != "" && !seen[k] {
					seen[k] = true
					keys = append(keys, k)
				}
			}
			if len(body) >= traceMaxBody {
				flush()
			}
		}
		flush()
	}
}
