package core_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/producerd/producerd/core"
	"github.com/producerd/producerd/internal/rmqtest"
	"github.com/producerd/producerd/internal/rmqtest/readback"
	"github.com/producerd/producerd/plugins/sdk"
)

var groupSeq atomic.Int64

func newProducer(t *testing.T, c *rmqtest.Cluster, mod func(*core.ProducerConfig)) *core.Producer {
	t.Helper()
	cfg := core.ProducerConfig{
		Group:  fmt.Sprintf("it_%s_%d", strings.NewReplacer("/", "_").Replace(t.Name()), groupSeq.Add(1)),
		Client: core.ClientConfig{NameServers: []string{c.NameServer}},
	}
	if mod != nil {
		mod(&cfg)
	}
	p, err := core.NewProducer(cfg)
	if err != nil {
		t.Fatalf("NewProducer: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := p.Close(ctx); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return p
}

// checkStored reads a sent message back from the broker and compares it with m.
func checkStored(t *testing.T, p *core.Producer, m *core.Message, offsetMsgID, uniq string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var got *core.MessageExt
	var err error
	for got == nil && ctx.Err() == nil { // the broker indexes asynchronously
		if got, err = core.ViewMessage(ctx, p.Client().Remoting(), m.Topic, offsetMsgID); err != nil {
			time.Sleep(20 * time.Millisecond)
		}
	}
	if got == nil {
		t.Fatalf("view message %s: %v", offsetMsgID, err)
	}
	compareStored(t, m, got, uniq)
}

func compareStored(t *testing.T, m *core.Message, got *core.MessageExt, uniq string) {
	t.Helper()
	if got.Topic != m.Topic || !bytes.Equal(got.Body, m.Body) {
		t.Errorf("stored topic %s body %d bytes, want %s %d bytes", got.Topic, len(got.Body), m.Topic, len(m.Body))
	}
	if got.Tags() != m.Tags || strings.Join(got.Keys(), " ") != strings.Join(m.Keys, " ") {
		t.Errorf("stored tags %q keys %q, want %q %q", got.Tags(), got.Keys(), m.Tags, m.Keys)
	}
	if uniq != "" && got.UniqKey() != uniq {
		t.Errorf("stored UNIQ_KEY %q, want %q", got.UniqKey(), uniq)
	}
	for k, v := range m.Properties {
		if got.Properties[k] != v {
			t.Errorf("stored property %s = %q, want %q", k, got.Properties[k], v)
		}
	}
}

func testMessage(topic string, size int) *core.Message {
	body := make([]byte, size)
	for i := range body {
		body[i] = byte('a' + rand.IntN(26))
	}
	return &core.Message{Topic: topic, Body: body, Tags: "TagA", Keys: []string{"k-" + fmt.Sprint(rand.Int64()), "k2"},
		Properties: map[string]string{"origin": "producerd-it", "n": fmt.Sprint(size)}}
}

func TestIntegrationSendModes(t *testing.T) {
	c := rmqtest.Require(t)
	p := newProducer(t, c, nil)
	ctx := context.Background()

	t.Run("sync", func(t *testing.T) {
		m := testMessage("IT_Send", 1024)
		res, err := p.Send(ctx, m)
		if err != nil {
			t.Fatal(err)
		}
		if res.Status != core.SendOK || res.OffsetMsgID == "" || res.MsgID == "" {
			t.Fatalf("result %+v", res)
		}
		checkStored(t, p, m, res.OffsetMsgID, res.MsgID)
	})
	t.Run("async", func(t *testing.T) {
		m := testMessage("IT_Send", 1024)
		res, err := p.SendFuture(ctx, m).Wait(ctx)
		if err != nil {
			t.Fatal(err)
		}
		checkStored(t, p, m, res.OffsetMsgID, res.MsgID)
	})
	t.Run("compressed 64KiB", func(t *testing.T) {
		m := testMessage("IT_Send", 64<<10)
		res, err := p.Send(ctx, m)
		if err != nil {
			t.Fatal(err)
		}
		checkStored(t, p, m, res.OffsetMsgID, res.MsgID)
		got, err := core.ViewMessage(ctx, p.Client().Remoting(), m.Topic, res.OffsetMsgID)
		if err != nil {
			t.Fatal(err)
		}
		if got.SysFlag&1 == 0 {
			t.Fatalf("stored sysFlag %#x: body was not compressed", got.SysFlag)
		}
	})
	t.Run("batch 100x1KiB", func(t *testing.T) {
		msgs := make([]*core.Message, 100)
		for i := range msgs {
			msgs[i] = testMessage("IT_Send", 1024)
		}
		res, err := p.SendBatch(ctx, msgs)
		if err != nil {
			t.Fatal(err)
		}
		ids, offs := strings.Split(res.MsgID, ","), strings.Split(res.OffsetMsgID, ",")
		if len(ids) != 100 || len(offs) != 100 {
			t.Fatalf("batch result has %d ids and %d offset ids", len(ids), len(offs))
		}
		for i := range msgs {
			checkStored(t, p, msgs[i], offs[i], ids[i])
		}
	})
	t.Run("oneway", func(t *testing.T) {
		m := testMessage("IT_Send", 512)
		before := readback.Mark(t, p.Client().Remoting(), c, m.Topic, 4)
		if err := p.SendOneway(ctx, m); err != nil {
			t.Fatal(err)
		}
		got := readback.Find(t, p.Client().Remoting(), m.Topic, before, func(msg *core.MessageExt) bool {
			return slices.Contains(msg.Keys(), m.Keys[0])
		})
		compareStored(t, m, got, "")
		if got.UniqKey() == "" {
			t.Error("oneway message stored without UNIQ_KEY")
		}
	})
}

func TestIntegrationAutoCreateTopic(t *testing.T) {
	c := rmqtest.Require(t)
	p := newProducer(t, c, nil)
	topic := fmt.Sprintf("IT_Auto_%d", time.Now().UnixNano())
	m := testMessage(topic, 100)
	res, err := p.Send(context.Background(), m)
	if err != nil {
		t.Fatalf("send to new topic %s: %v", topic, err)
	}
	checkStored(t, p, m, res.OffsetMsgID, res.MsgID)
	routes := p.Client().Routes()
	for _, r := range routes {
		if r.Topic == topic && len(r.Queues) == 0 {
			t.Fatalf("route for %s has no queues", topic)
		}
	}
}

func TestIntegrationRoundRobinSpread(t *testing.T) {
	c := rmqtest.Require(t)
	p := newProducer(t, c, nil)
	const total, workers = 8000, 16
	var mu sync.Mutex
	counts := make(map[sdk.Queue]int)
	var wg sync.WaitGroup
	errs := make(chan error, workers)
	body := []byte("rr")
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range total / workers {
				res, err := p.Send(context.Background(), &core.Message{Topic: "IT_RoundRobin", Body: body})
				if err != nil {
					errs <- err
					return
				}
				mu.Lock()
				counts[res.Queue]++
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	if len(counts) != 16 {
		t.Fatalf("messages landed on %d queues, want 16: %v", len(counts), counts)
	}
	for q, n := range counts {
		if n < 450 || n > 550 {
			t.Errorf("queue %s/%d got %d messages, want 500±10%%", q.Broker, q.ID, n)
		}
	}
}

func TestIntegrationBrokerKilled(t *testing.T) {
	c := rmqtest.RequireExclusive(t)
	p := newProducer(t, c, nil)
	ctx := context.Background()
	// Learn the route (both brokers) before the kill, as a running producer would have.
	if _, err := p.Send(ctx, &core.Message{Topic: "IT_Failover", Body: []byte("warm")}); err != nil {
		t.Fatal(err)
	}
	c.Signal(t, "broker-b", syscall.SIGKILL)
	t.Cleanup(func() { c.Restart(t, "broker-b") })
	retried := 0
	for i := range 1000 {
		res, err := p.Send(ctx, &core.Message{Topic: "IT_Failover", Body: []byte(fmt.Sprint("m", i))})
		if err != nil {
			t.Fatalf("send %d with broker-b killed: %v", i, err)
		}
		if res.Queue.Broker != "broker-a" {
			t.Fatalf("send %d stored on %s", i, res.Queue.Broker)
		}
		if res.Attempts > 1 {
			retried++
		}
	}
	t.Logf("1000 sends with broker-b SIGKILLed: all succeeded, %d needed a retry", retried)
}

func TestIntegrationBrokerStopped(t *testing.T) {
	c := rmqtest.RequireExclusive(t)
	p := newProducer(t, c, nil)
	ctx := context.Background()
	if _, err := p.Send(ctx, &core.Message{Topic: "IT_Failover", Body: []byte("warm")}); err != nil {
		t.Fatal(err)
	}
	// Make sure both brokers' connections exist so the stop hangs requests rather than connects.
	c.Signal(t, "broker-b", syscall.SIGSTOP)
	t.Cleanup(func() { c.Signal(t, "broker-b", syscall.SIGCONT) })

	const total, workers = 200, 20
	var slow, failed atomic.Int64
	var maxLat atomic.Int64
	var wg sync.WaitGroup
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range total / workers {
				start := time.Now()
				_, err := p.Send(ctx, &core.Message{Topic: "IT_Failover", Body: []byte(fmt.Sprint(w, "-", i))})
				lat := time.Since(start)
				if err != nil {
					failed.Add(1)
					t.Errorf("send failed with broker-b stopped: %v", err)
				}
				if lat > time.Second {
					slow.Add(1)
				}
				for {
					cur := maxLat.Load()
					if int64(lat) <= cur || maxLat.CompareAndSwap(cur, int64(lat)) {
						break
					}
				}
			}
		}()
	}
	wg.Wait()
	t.Logf("%d sends with broker-b SIGSTOPped: %d failed, %d slower than 1s, max latency %v",
		total, failed.Load(), slow.Load(), time.Duration(maxLat.Load()))
}

func TestIntegrationSendToQueueAndErrors(t *testing.T) {
	c := rmqtest.Require(t)
	p := newProducer(t, c, nil)
	ctx := context.Background()
	q := sdk.Queue{Broker: "broker-b", ID: 1}
	res, err := p.SendToQueue(ctx, &core.Message{Topic: "IT_Send", Body: []byte("direct")}, q)
	if err != nil {
		t.Fatal(err)
	}
	if res.Queue != q {
		t.Fatalf("stored on %v, want %v", res.Queue, q)
	}
	_, err = p.SendToQueue(ctx, &core.Message{Topic: "IT_Send", Body: []byte("x")}, sdk.Queue{Broker: "broker-b", ID: 99})
	if !errors.Is(err, core.ErrInvalidMessage) {
		t.Fatalf("send to a queue outside the route: %v", err)
	}
}
