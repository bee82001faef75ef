package core_test

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/producerd/producerd/core"
	"github.com/producerd/producerd/devbroker"
	"github.com/producerd/producerd/internal/testwait"
	"github.com/producerd/producerd/plugins/sdk"
	"github.com/producerd/producerd/remoting"
)

// TestJavaStringHashCode compares with values printed by a real JDK (java 21,
// String.hashCode and SelectMessageQueueByHash's formula over 8 and 3 queues), for
// ASCII, Latin-1, CJK, surrogate pairs and the Integer.MIN_VALUE hashes.
func TestJavaStringHashCode(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		utf8hex    string
		hash       int32
		idx8, idx3 int
	}{
		{"", 0, 0, 0},
		{"61", 97, 1, 1},
		{"68656c6c6f", 99162322, 2, 1},
		{"4161", 2112, 0, 0},
		{"4242", 2112, 0, 0},
		{"706f6c7967656e656c7562726963616e7473", -2147483648, 0, 2},
		{"6f726465722d3432", 1234255197, 5, 0},
		{"6b65792d30", 101943362, 2, 2},
		{"6b65792d3939", -1134722738, 2, 2},
		{"636166c3a9", 3045921, 1, 0},
		{"e697a5e69cace8aa9e", 25921943, 7, 2},
		{"f09f9880", 1772899, 3, 1},
		{"656d6f6a69f09f9a806b6579", 1939299606, 6, 0},
		{"c3bfc480efbfbf", 318526, 6, 1},
		{"4779645a475f", -2147483648, 0, 2},
	} {
		b, err := hex.DecodeString(tc.utf8hex)
		if err != nil {
			t.Fatal(err)
		}
		key := string(b)
		t.Run(fmt.Sprintf("%q", key), func(t *testing.T) {
			if got := core.JavaStringHashCode(key); got != tc.hash {
				t.Errorf("hashCode = %d, want %d", got, tc.hash)
			}
			if got := core.JavaHashIndex(key, 8); got != tc.idx8 {
				t.Errorf("index of 8 = %d, want %d", got, tc.idx8)
			}
			if got := core.JavaHashIndex(key, 3); got != tc.idx3 {
				t.Errorf("index of 3 = %d, want %d", got, tc.idx3)
			}
		})
	}
}

// TestFNVHashIndex checks the FNV-1a 32-bit values rocketmq-client-go's hash selector uses.
func TestFNVHashIndex(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		key string
		sum uint32
	}{{"", 0x811c9dc5}, {"a", 0xe40c292c}, {"foobar", 0xbf9cf968}} {
		for _, n := range []int{1, 3, 8} {
			if got, want := core.FNVHashIndex(tc.key, n), int(tc.sum%uint32(n)); got != want {
				t.Errorf("FNVHashIndex(%q, %d) = %d, want %d", tc.key, n, got, want)
			}
		}
	}
}

// devQueues is the Java publish queue list of topic T on the default dev cluster.
func devQueues(n int) []sdk.Queue {
	var qs []sdk.Queue
	for _, b := range []string{"broker-a", "broker-b"} {
		for i := range n {
			qs = append(qs, sdk.Queue{Broker: b, ID: int32(i)})
		}
	}
	return qs
}

// TestKeyedSendIgnoresStrategy: whatever the strategy answers, a keyed message goes to
// the queue Java's SelectMessageQueueByHash picks, through every send path; the strategy
// is not even asked.
func TestKeyedSendIgnoresStrategy(t *testing.T) {
	t.Parallel()
	dev := startDev(t, devbroker.Config{})
	rec := &recorder{needsMsg: true, index: func(*sdk.Selection) (int, error) { return 0, nil }}
	p := devProducer(t, dev, func(c *core.ProducerConfig) { c.Strategy = rec })
	qs := devQueues(4)
	for i := range 40 {
		key := fmt.Sprintf("key-%d", i)
		want := qs[core.JavaHashIndex(key, len(qs))]
		m := &core.Message{Topic: "T", Body: []byte("x"), ShardingKey: key}
		res, err := p.Send(context.Background(), m)
		if err != nil {
			t.Fatal(err)
		}
		if res.Queue != want {
			t.Fatalf("sync %s went to %v, want %v", key, res.Queue, want)
		}
		res, err = p.SendFuture(context.Background(), m).Wait(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		if res.Queue != want {
			t.Fatalf("async %s went to %v, want %v", key, res.Queue, want)
		}
	}
	if sels, _ := rec.snapshot(); len(sels) != 0 {
		t.Errorf("the strategy was asked %d times for keyed messages", len(sels))
	}
	// An unkeyed message still goes through the strategy.
	if _, err := p.Send(context.Background(), &core.Message{Topic: "T", Body: []byte("x")}); err != nil {
		t.Fatal(err)
	}
	if sels, _ := rec.snapshot(); len(sels) != 1 {
		t.Errorf("the strategy was asked %d times for one unkeyed message", len(sels))
	}
}

// keyOn returns a key whose Java hash picks a queue of broker among qs.
func keyOn(t *testing.T, qs []sdk.Queue, broker string) string {
	t.Helper()
	for i := range 1000 {
		k := fmt.Sprintf("k%d", i)
		if qs[core.JavaHashIndex(k, len(qs))].Broker == broker {
			return k
		}
	}
	t.Fatal("no key found")
	return ""
}

// TestKeyedStrictNoFailover: a keyed send whose broker hangs fails with
// ErrOrderedQueueFailed after one attempt, sync and async; relaxed ordering fails over.
func TestKeyedStrictNoFailover(t *testing.T) {
	t.Parallel()
	dev := startDev(t, devbroker.Config{})
	strict := devProducer(t, dev, func(c *core.ProducerConfig) {
		c.SendTimeout, c.AttemptTimeout = 2*time.Second, 200*time.Millisecond
	})
	relaxed := devProducer(t, dev, func(c *core.ProducerConfig) {
		c.SendTimeout, c.AttemptTimeout, c.Ordering = 2*time.Second, 200*time.Millisecond, core.OrderingRelaxed
	})
	// Warm the routes, then hang broker-a.
	for _, p := range []*core.Producer{strict, relaxed} {
		if _, err := p.Send(context.Background(), &core.Message{Topic: "T", Body: []byte("x")}); err != nil {
			t.Fatal(err)
		}
	}
	key := keyOn(t, devQueues(4), "broker-a")
	setFault(t, dev.Broker("broker-a"), devbroker.Fault{Hang: true})
	defer setFault(t, dev.Broker("broker-a"), devbroker.Fault{})
	m := &core.Message{Topic: "T", Body: []byte("x"), ShardingKey: key}

	_, err := strict.Send(context.Background(), m)
	var se *core.SendError
	if !errors.Is(err, core.ErrOrderedQueueFailed) || !errors.Is(err, remoting.ErrTimeout) || !errors.As(err, &se) {
		t.Fatalf("strict sync: %v, want ErrOrderedQueueFailed wrapping a timeout", err)
	}
	if se.Attempts != 1 || se.Brokers[0] != "broker-a" {
		t.Errorf("strict sync: %d attempts on %v, want 1 on broker-a", se.Attempts, se.Brokers)
	}
	if _, err := strict.SendFuture(context.Background(), m).Wait(context.Background()); !errors.Is(err, core.ErrOrderedQueueFailed) {
		t.Fatalf("strict async: %v, want ErrOrderedQueueFailed", err)
	}
	res, err := relaxed.Send(context.Background(), m)
	if err != nil || res.Queue.Broker != "broker-b" {
		t.Fatalf("relaxed: %v %v, want stored on broker-b", res, err)
	}
}

// TestKeyedStrictRetriesSameQueue: a refusal that stored nothing (SYSTEM_BUSY) is retried,
// on the same queue only.
func TestKeyedStrictRetriesSameQueue(t *testing.T) {
	t.Parallel()
	dev := startDev(t, devbroker.Config{})
	p := devProducer(t, dev, nil)
	qs := devQueues(4)
	key := keyOn(t, qs, "broker-a")
	setFault(t, dev.Broker("broker-a"), devbroker.Fault{Errors: []devbroker.InjectedError{{Code: remoting.SystemBusy, Rate: 1}}})
	_, err := p.Send(context.Background(), &core.Message{Topic: "T", Body: []byte("x"), ShardingKey: key})
	var se *core.SendError
	if !errors.As(err, &se) || !errors.Is(err, core.ErrOrderedQueueFailed) {
		t.Fatalf("send: %v", err)
	}
	if se.Attempts != 3 || se.Brokers[0] != "broker-a" || se.Brokers[1] != "broker-a" || se.Brokers[2] != "broker-a" {
		t.Errorf("attempts %d on %v, want 3 on broker-a", se.Attempts, se.Brokers)
	}
	if n := len(dev.Broker("broker-b").Messages("T")); n != 0 {
		t.Errorf("%d messages on broker-b", n)
	}
}

// TestKeyedQueueCountChange: when a topic's queue count changes under keyed traffic, the
// hook fires with the old and new counts and keys follow the new count.
func TestKeyedQueueCountChange(t *testing.T) {
	t.Parallel()
	dev := startDev(t, devbroker.Config{})
	var old, now atomic.Int64
	p := devProducer(t, dev, func(c *core.ProducerConfig) {
		c.Client.RouteRefresh = 20 * time.Millisecond
		c.Hooks.OnKeyedQueueCountChange = func(topic string, o, n int) { old.Store(int64(o)); now.Store(int64(n)) }
	})
	send := func() *core.SendResult {
		res, err := p.Send(context.Background(), &core.Message{Topic: "T", Body: []byte("x"), ShardingKey: "order-42"})
		if err != nil {
			t.Fatal(err)
		}
		return res
	}
	send()
	if err := dev.CreateTopic("T", 8); err != nil {
		t.Fatal(err)
	}
	if !testwait.Until(10*time.Second, func() bool {
		if now.Load() != 0 {
			return true
		}
		send()
		return false
	}) {
		t.Fatal("no queue count change reported")
	}
	if old.Load() != 8 || now.Load() != 16 {
		t.Errorf("change %d -> %d, want 8 -> 16", old.Load(), now.Load())
	}
	if res, qs := send(), devQueues(8); res.Queue != qs[core.JavaHashIndex("order-42", 16)] {
		t.Errorf("after the change order-42 went to %v", res.Queue)
	}
}

// TestMaxDelayLevel: levels above 18 are refused unless the producer is told the
// brokers' table is longer.
func TestMaxDelayLevel(t *testing.T) {
	t.Parallel()
	dev := startDev(t, devbroker.Config{})
	def := devProducer(t, dev, nil)
	long := devProducer(t, dev, func(c *core.ProducerConfig) { c.Group += "_long"; c.MaxDelayLevel = 24 })
	m := &core.Message{Topic: "T", Body: []byte("x"), DelayLevel: 20}
	var ve *core.ValidationError
	if _, err := def.Send(context.Background(), m); !errors.As(err, &ve) || ve.Rule != "delay.level" {
		t.Errorf("default producer, level 20: %v", err)
	}
	if _, err := long.Send(context.Background(), m); err != nil {
		t.Errorf("MaxDelayLevel 24, level 20: %v", err)
	}
}

// TestKeyedBatch: a batch whose messages share a key goes to that key's queue; a batch
// mixing keys is refused.
func TestKeyedBatch(t *testing.T) {
	t.Parallel()
	dev := startDev(t, devbroker.Config{})
	p := devProducer(t, dev, nil)
	qs := devQueues(4)
	for i := range 10 {
		key := fmt.Sprintf("batch-key-%d", i)
		res, err := p.SendBatch(context.Background(), []*core.Message{
			{Topic: "T", Body: []byte("1"), ShardingKey: key}, {Topic: "T", Body: []byte("2"), ShardingKey: key}})
		if err != nil {
			t.Fatal(err)
		}
		if want := qs[core.JavaHashIndex(key, len(qs))]; res.Queue != want {
			t.Errorf("%s: batch on %v, want %v", key, res.Queue, want)
		}
	}
	_, err := p.SendBatch(context.Background(), []*core.Message{
		{Topic: "T", Body: []byte("1"), ShardingKey: "a"}, {Topic: "T", Body: []byte("2"), ShardingKey: "b"}})
	var ve *core.ValidationError
	if !errors.As(err, &ve) || ve.Rule != "batch.sharding-key" {
		t.Errorf("mixed keys: %v", err)
	}
}
