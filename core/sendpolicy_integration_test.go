package core_test

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/producerd/producerd/core"
	"github.com/producerd/producerd/internal/rmqtest"
	"github.com/producerd/producerd/internal/rmqtest/readback"
	"github.com/producerd/producerd/internal/testwait"
	"github.com/producerd/producerd/plugins/sdk"
	"github.com/producerd/producerd/remoting"
)

// Issue 11 against Apache RocketMQ 5.3.3: the timeout policy with a slow broker (a proxy
// that delays send answers, as a broker with a slow store does) and a hung one (SIGSTOP),
// counted end to end with read-back; the batch UNIQ_KEY and blank property facts.

// slowProxy listens on 127.0.0.1 and forwards to target, holding back each answer to a send
// request (codes 10, 310, 320) by delay; every other frame (heartbeats included) passes at
// once. It stands for a broker whose store is slow while its other executors work.
type slowProxy struct {
	ln     net.Listener
	target string
	delay  time.Duration
	wg     sync.WaitGroup
	delays atomic.Int64
}

func startSlowProxy(t *testing.T, target string, delay time.Duration) *slowProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &slowProxy{ln: ln, target: target, delay: delay}
	p.wg.Add(1)
	go p.accept()
	t.Cleanup(func() { ln.Close(); p.wg.Wait() })
	return p
}

func (p *slowProxy) accept() {
	defer p.wg.Done()
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		s, err := net.Dial("tcp", p.target)
		if err != nil {
			c.Close()
			continue
		}
		var sends sync.Map // opaque -> true, for send requests
		var wmu sync.Mutex
		p.wg.Add(2)
		go func() { // client -> broker
			defer p.wg.Done()
			defer s.Close()
			forwardFrames(c, func(frame []byte, cmd *remoting.Command) {
				if code := remoting.RequestCode(cmd.Code); !cmd.IsResponse() &&
					(code == remoting.SendMessage || code == remoting.SendMessageV2 || code == remoting.SendBatchMessage) {
					sends.Store(cmd.Opaque, true)
				}
				s.Write(frame)
			})
		}()
		go func() { // broker -> client
			defer p.wg.Done()
			defer c.Close()
			var held sync.WaitGroup
			forwardFrames(s, func(frame []byte, cmd *remoting.Command) {
				write := func() { wmu.Lock(); c.Write(frame); wmu.Unlock() }
				if _, ok := sends.LoadAndDelete(cmd.Opaque); ok && cmd.IsResponse() {
					p.delays.Add(1)
					held.Add(1)
					time.AfterFunc(p.delay, func() { defer held.Done(); write() })
					return
				}
				write()
			})
			held.Wait()
		}()
	}
}

// forwardFrames reads remoting frames from r and hands each (raw, with its length prefix)
// and its decoded command to f, until r fails.
func forwardFrames(r io.Reader, f func(frame []byte, cmd *remoting.Command)) {
	for {
		var lb [4]byte
		if _, err := io.ReadFull(r, lb[:]); err != nil {
			return
		}
		n := binary.BigEndian.Uint32(lb[:])
		if n < 4 || n > remoting.MaxFrameSize {
			return
		}
		frame := make([]byte, 4+n)
		copy(frame, lb[:])
		if _, err := io.ReadFull(r, frame[4:]); err != nil {
			return
		}
		cmd, err := remoting.DecodeFrame(frame[4:])
		if err != nil {
			return
		}
		f(frame, cmd)
	}
}

// viaProxy returns a dialer that reaches addr through the proxy and everything else directly.
func viaProxy(addr string, proxy *slowProxy) func(ctx context.Context, network, a string) (net.Conn, error) {
	return func(ctx context.Context, network, a string) (net.Conn, error) {
		if a == addr {
			a = proxy.ln.Addr().String()
		}
		var d net.Dialer
		return d.DialContext(ctx, network, a)
	}
}

// brokerBFirst puts every first attempt on broker-b, retries elsewhere.
func brokerBFirst() *recorder {
	return &recorder{index: func(s *sdk.Selection) (int, error) {
		for i, q := range s.Queues {
			if (s.Attempt == 0) == (q.Broker == "broker-b") {
				return i, nil
			}
		}
		return 0, nil
	}}
}

// copiesSince counts, by UNIQ_KEY, the messages of topic written since m that carry one of
// keys, once every key has appeared.
func copiesSince(t *testing.T, rc *remoting.Client, topic string, m readback.Marks, keys []string) map[string]int {
	t.Helper()
	if n := readback.Missing(t, rc, topic, m, keys); n != 0 {
		t.Fatalf("%d of %d acknowledged messages are not stored", n, len(keys))
	}
	want := make(map[string]bool, len(keys))
	for _, k := range keys {
		want[k] = true
	}
	n := make(map[string]int)
	readback.Scan(t, rc, topic, m, func(msg *core.MessageExt) bool {
		if want[msg.UniqKey()] {
			n[msg.UniqKey()]++
		}
		return false
	})
	return n
}

// Finding 1, real cluster: broker-b answers sends after 1.3s and 2.5s (3s budget, 1s
// cap); sync, async and batch sends succeed on the first attempt and are stored once.
func TestIntegrationSlowBrokerStoredOnce(t *testing.T) {
	c := rmqtest.Require(t)
	const topic = "IT_Failover"
	b := c.Broker(t, "broker-b")
	for _, delay := range []time.Duration{1300 * time.Millisecond, 2500 * time.Millisecond} {
		t.Run(fmt.Sprintf("%dms", delay.Milliseconds()), func(t *testing.T) {
			proxy := startSlowProxy(t, b.Addr, delay)
			rec := brokerBFirst()
			p := newProducer(t, c, func(pc *core.ProducerConfig) {
				pc.Strategy = rec
				pc.Client.Remoting.Dialer = viaProxy(b.Addr, proxy)
			})
			ctx := context.Background()
			if _, err := p.Send(ctx, &core.Message{Topic: topic, Body: []byte("warm")}); err != nil {
				t.Fatal(err)
			}
			marks := readback.Mark(t, p.Client().Remoting(), c, topic, 4)
			var keys []string
			var wg sync.WaitGroup
			var mu sync.Mutex
			check := func(mode string, res *core.SendResult, err error, start time.Time) {
				defer wg.Done()
				if err != nil {
					t.Errorf("%s: %v", mode, err)
					return
				}
				if res.Attempts != 1 || res.Queue.Broker != "broker-b" {
					t.Errorf("%s: %d attempts, stored on %s; want 1 on broker-b", mode, res.Attempts, res.Queue.Broker)
				}
				t.Logf("%s: answered after %v", mode, time.Since(start).Round(time.Millisecond))
				mu.Lock()
				keys = append(keys, strings.Split(res.MsgID, ",")...)
				mu.Unlock()
			}
			wg.Add(3)
			go func() {
				start := time.Now()
				res, err := p.Send(ctx, &core.Message{Topic: topic, Body: []byte("sync")})
				check("sync", res, err, start)
			}()
			go func() {
				start := time.Now()
				res, err := p.SendFuture(ctx, &core.Message{Topic: topic, Body: []byte("async")}).Wait(ctx)
				check("async", res, err, start)
			}()
			go func() {
				start := time.Now()
				res, err := p.SendBatch(ctx, []*core.Message{{Topic: topic, Body: []byte("b1")}, {Topic: topic, Body: []byte("b2")}})
				check("batch", res, err, start)
			}()
			wg.Wait()
			if t.Failed() {
				return
			}
			if proxy.delays.Load() < 4 {
				t.Fatalf("the proxy delayed %d send answers; the sends did not go through it", proxy.delays.Load())
			}
			for k, n := range copiesSince(t, p.Client().Remoting(), topic, marks, keys) {
				if n != 1 {
					t.Errorf("message %s stored %d times", k, n)
				}
			}
			t.Logf("%d messages, each stored once", len(keys))
		})
	}
}

// Finding 1, real cluster: with broker-b SIGSTOPped every send still succeeds, each
// attempt on broker-b is abandoned after about the 1s cap, and every message is stored
// (read back after SIGCONT); copies left by abandoned attempts are counted.
func TestIntegrationHungBrokerFailover(t *testing.T) {
	c := rmqtest.RequireExclusive(t)
	const topic = "IT_Failover"
	rec := brokerBFirst()
	p := newProducer(t, c, func(pc *core.ProducerConfig) { pc.Strategy = rec })
	ctx := context.Background()
	if _, err := p.Send(ctx, &core.Message{Topic: topic, Body: []byte("warm")}); err != nil {
		t.Fatal(err)
	}
	marks := readback.Mark(t, p.Client().Remoting(), c, topic, 4)
	_, warm := rec.snapshot()
	c.Signal(t, "broker-b", syscall.SIGSTOP)
	resumed := false
	resume := func() {
		if !resumed {
			resumed = true
			c.Signal(t, "broker-b", syscall.SIGCONT)
		}
	}
	t.Cleanup(resume)

	const total = 20
	keys := make([]string, total)
	var maxLat atomic.Int64
	var wg sync.WaitGroup
	for i := range total {
		wg.Add(1)
		go func() {
			defer wg.Done()
			start := time.Now()
			var res *core.SendResult
			var err error
			if i%2 == 0 {
				res, err = p.Send(ctx, &core.Message{Topic: topic, Body: []byte(fmt.Sprint("hung-", i))})
			} else {
				res, err = p.SendFuture(ctx, &core.Message{Topic: topic, Body: []byte(fmt.Sprint("hung-", i))}).Wait(ctx)
			}
			lat := time.Since(start)
			if err != nil {
				t.Errorf("send %d with broker-b stopped: %v", i, err)
				return
			}
			if res.Queue.Broker != "broker-a" || res.Attempts != 2 {
				t.Errorf("send %d: stored on %s after %d attempts; want broker-a on the second", i, res.Queue.Broker, res.Attempts)
			}
			keys[i] = res.MsgID
			for cur := maxLat.Load(); int64(lat) > cur && !maxLat.CompareAndSwap(cur, int64(lat)); cur = maxLat.Load() {
			}
		}()
	}
	wg.Wait()
	resume()
	if t.Failed() {
		return
	}
	_, outs := rec.snapshot()
	var abandoned []time.Duration
	for _, o := range outs[len(warm):] {
		if o.Broker == "broker-b" {
			// A timeout (the probe went unanswered), or the connection closed under the
			// attempt (another attempt's unanswered probe closed the silent connection).
			if o.Kind == sdk.OutcomeOK || !o.Isolation {
				t.Errorf("broker-b outcome %+v; want an isolating failure", o)
			}
			abandoned = append(abandoned, o.Latency)
			if o.Latency > 1500*time.Millisecond {
				t.Errorf("broker-b attempt abandoned after %v; the cap is 1s", o.Latency)
			}
		}
	}
	copies := copiesSince(t, p.Client().Remoting(), topic, marks, keys)
	dup := 0
	for _, n := range copies {
		dup += n - 1
	}
	t.Logf("%d sends with broker-b SIGSTOPped: all stored, max latency %v, %d attempts on broker-b abandoned (latencies %v), %d duplicate copies after SIGCONT",
		total, time.Duration(maxLat.Load()).Round(time.Millisecond), len(abandoned), abandoned, dup)
}

// rawSend sends one SEND_MESSAGE_V2 or SEND_BATCH_MESSAGE built by hand (no validation)
// to queue 0 of topic on addr and returns the answer's offset message ids.
func rawSend(t *testing.T, rc *remoting.Client, addr, topic, props string, batch bool, body []byte) []string {
	t.Helper()
	code := remoting.SendMessageV2
	if batch {
		code = remoting.SendBatchMessage
	}
	ext := map[string]string{"a": "producerd_raw", "b": topic, "c": "TBW102", "d": "4", "e": "0", "f": "0",
		"g": fmt.Sprint(time.Now().UnixMilli()), "h": "0", "i": props, "j": "0", "k": "false", "m": fmt.Sprint(batch)}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	resp, err := rc.InvokeSync(ctx, addr, remoting.NewRequest(code, ext, body))
	if err == nil {
		err = remoting.ResponseError(addr, resp)
	}
	if err != nil {
		t.Fatal(err)
	}
	return strings.Split(resp.ExtFields["msgId"], ",")
}

func batchRecord(body []byte, props string) []byte {
	rec := binary.BigEndian.AppendUint32(nil, uint32(22+len(body)+len(props)))
	rec = binary.BigEndian.AppendUint32(rec, 0) // magic
	rec = binary.BigEndian.AppendUint32(rec, 0) // body CRC
	rec = binary.BigEndian.AppendUint32(rec, 0) // flag
	rec = binary.BigEndian.AppendUint32(rec, uint32(len(body)))
	rec = append(rec, body...)
	rec = binary.BigEndian.AppendUint16(rec, uint16(len(props)))
	return append(rec, props...)
}

func view(t *testing.T, rc *remoting.Client, topic, offsetMsgID string) *core.MessageExt {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var m *core.MessageExt
	var err error
	if !testwait.Until(10*time.Second, func() bool {
		m, err = core.ViewMessage(ctx, rc, topic, offsetMsgID)
		return err == nil
	}) {
		t.Fatalf("view %s: %v", offsetMsgID, err)
	}
	return m
}

// Findings 5 and 7 against 5.3.3, read back: (a) a broker drops an empty-valued property
// and acknowledges the message, which is why producerd refuses it before sending; (b) a
// batch wrapper's UNIQ_KEY is stamped on every inner message of a normal topic, replacing
// each message's own id, which is why producerd's batch wrapper carries none, and
// producerd's batches read back with one UNIQ_KEY per message.
func TestIntegrationBlankPropertyAndBatchUniqKey(t *testing.T) {
	c := rmqtest.Require(t)
	const topic = "IT_Send"
	p := newProducer(t, c, nil)
	rc := p.Client().Remoting()
	addr := c.Broker(t, "broker-a").Addr

	// (a) The broker's behaviour that the refusal protects from.
	ids := rawSend(t, rc, addr, topic, "e\x01\x02f\x01v\x02WAIT\x01true\x02", false, []byte("blank"))
	got := view(t, rc, topic, ids[0])
	if _, kept := got.Properties["e"]; kept || got.Properties["f"] != "v" {
		t.Fatalf("stored properties %q; expected the broker to drop e and keep f", got.Properties)
	}
	_, err := p.Send(context.Background(), &core.Message{Topic: topic, Body: []byte("x"), Properties: map[string]string{"e": "", "f": "v"}})
	var ve *core.ValidationError
	if !errors.As(err, &ve) || ve.Rule != "property.blank" {
		t.Fatalf("producerd send with a blank property: %v; want property.blank", err)
	}

	// (b) A hand-made batch whose wrapper has a UNIQ_KEY, as Java 5.x before #9417 sent.
	inner := []string{"0A0000000000000000000000000000A1", "0A0000000000000000000000000000A2"}
	var body []byte
	for _, k := range inner {
		body = append(body, batchRecord([]byte("raw-"+k), "UNIQ_KEY\x01"+k+"\x02WAIT\x01true\x02")...)
	}
	const wrapper = "0A0000000000000000000000000000FF"
	ids = rawSend(t, rc, addr, topic, "WAIT\x01true\x02UNIQ_KEY\x01"+wrapper+"\x02", true, body)
	for i, id := range ids {
		if got := view(t, rc, topic, id).UniqKey(); got != inner[i] {
			t.Logf("5.3.3 stored inner message %d with UNIQ_KEY %s, not its own %s (the wrapper's is %s)", i, got, inner[i], wrapper)
		}
	}

	// producerd's batch: one UNIQ_KEY per message, as read back.
	res, err := p.SendBatch(context.Background(), []*core.Message{{Topic: topic, Body: []byte("p1")}, {Topic: topic, Body: []byte("p2")}})
	if err != nil {
		t.Fatal(err)
	}
	keys, offs := strings.Split(res.MsgID, ","), strings.Split(res.OffsetMsgID, ",")
	for i := range keys {
		if got := view(t, rc, topic, offs[i]).UniqKey(); got != keys[i] {
			t.Errorf("producerd batch message %d read back with UNIQ_KEY %s, want %s", i, got, keys[i])
		}
	}
}
