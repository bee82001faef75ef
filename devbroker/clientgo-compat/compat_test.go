package clientgocompat_test

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	rocketmq "github.com/apache/rocketmq-client-go/v2"
	"github.com/apache/rocketmq-client-go/v2/primitive"
	"github.com/apache/rocketmq-client-go/v2/producer"
	"github.com/apache/rocketmq-client-go/v2/rlog"

	"github.com/producerd/producerd/core"
	"github.com/producerd/producerd/devbroker"
	"github.com/producerd/producerd/remoting"
)

func TestMain(m *testing.M) {
	rlog.SetLogLevel("error")
	os.Exit(m.Run())
}

// newGoProducer starts an official rocketmq-client-go producer against c.
func newGoProducer(t *testing.T, c *devbroker.Cluster, group string) rocketmq.Producer {
	t.Helper()
	p, err := rocketmq.NewProducer(
		producer.WithNameServer([]string{c.NameServerAddr()}),
		producer.WithGroupName(group),
		producer.WithInstanceName(fmt.Sprintf("%s_%d", group, time.Now().UnixNano())),
		producer.WithRetry(2),
		producer.WithSendMsgTimeout(3*time.Second),
	)
	if err != nil {
		t.Fatalf("rocketmq.NewProducer: %v", err)
	}
	if err := p.Start(); err != nil {
		t.Fatalf("Start: %v", err)
	}
	t.Cleanup(func() { p.Shutdown() })
	return p
}

// stored finds the broker copy of a message by its UNIQ_KEY.
func stored(c *devbroker.Cluster, topic, uniq string) (devbroker.Message, string, bool) {
	for _, b := range c.Brokers() {
		for _, m := range b.Messages(topic) {
			if m.UniqKey() == uniq {
				return m, b.Name(), true
			}
		}
	}
	return devbroker.Message{}, "", false
}

func TestOfficialGoClient(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	c, err := devbroker.Start(ctx, devbroker.Config{
		Brokers: []string{"broker-a", "broker-b"}, Topics: map[string]int{"TopicTest": 4}, AutoCreate: true,
	})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	p := newGoProducer(t, c, "compat_group")
	rc, err := remoting.NewClient(remoting.Config{})
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()

	t.Run("SendSync", func(t *testing.T) {
		brokers := map[string]bool{}
		for i := range 8 {
			msg := primitive.NewMessage("TopicTest", []byte(fmt.Sprintf("official %d", i)))
			msg.WithTag("TagA")
			msg.WithKeys([]string{fmt.Sprint("key", i)})
			res, err := p.SendSync(ctx, msg)
			if err != nil {
				t.Fatalf("SendSync %d: %v", i, err)
			}
			if res.Status != primitive.SendOK {
				t.Fatalf("SendSync %d: status %v", i, res.Status)
			}
			m, broker, ok := stored(c, "TopicTest", res.MsgID)
			if !ok || string(m.Body) != fmt.Sprintf("official %d", i) || m.Tags() != "TagA" {
				t.Fatalf("message %d (%s) not stored as sent", i, res.MsgID)
			}
			if broker != res.MessageQueue.BrokerName || m.QueueID != int32(res.MessageQueue.QueueId) || m.QueueOffset != res.QueueOffset || m.MsgID != res.OffsetMsgID {
				t.Errorf("message %d: stored on %s/%d@%d id %s, result says %s/%d@%d id %s", i, broker, m.QueueID, m.QueueOffset, m.MsgID,
					res.MessageQueue.BrokerName, res.MessageQueue.QueueId, res.QueueOffset, res.OffsetMsgID)
			}
			brokers[broker] = true
			// The offset id the official client got resolves through producerd's reader too.
			got, err := core.ViewMessage(ctx, rc, "TopicTest", res.OffsetMsgID)
			if err != nil || got.UniqKey() != res.MsgID {
				t.Errorf("core.ViewMessage(%s): %v", res.OffsetMsgID, err)
			}
		}
		if len(brokers) != 2 {
			t.Errorf("8 sends reached brokers %v, want both", brokers)
		}
	})

	t.Run("SendSync batch", func(t *testing.T) {
		var msgs []*primitive.Message
		for i := range 3 {
			msgs = append(msgs, primitive.NewMessage("TopicTest", []byte(fmt.Sprintf("batch %d", i))))
		}
		res, err := p.SendSync(ctx, msgs...)
		if err != nil || res.Status != primitive.SendOK {
			t.Fatalf("batch SendSync: %v, %v", res, err)
		}
		ids := strings.Split(res.OffsetMsgID, ",")
		if len(ids) != 3 {
			t.Fatalf("batch offset ids %q", res.OffsetMsgID)
		}
		for i, id := range ids {
			got, err := core.ViewMessage(ctx, rc, "TopicTest", id)
			if err != nil || string(got.Body) != fmt.Sprintf("batch %d", i) || got.QueueOffset != res.QueueOffset+int64(i) {
				t.Errorf("batch message %d: %v", i, err)
			}
		}
	})

	t.Run("SendOneWay", func(t *testing.T) {
		msg := primitive.NewMessage("TopicTest", []byte("oneway"))
		if err := p.SendOneWay(ctx, msg); err != nil {
			t.Fatalf("SendOneWay: %v", err)
		}
		uniq := msg.GetProperty(primitive.PropertyUniqueClientMessageIdKeyIndex)
		deadline := time.Now().Add(10 * time.Second)
		for {
			if _, _, ok := stored(c, "TopicTest", uniq); ok {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("oneway message %s never stored", uniq)
			}
			time.Sleep(5 * time.Millisecond)
		}
	})

	t.Run("compressed", func(t *testing.T) {
		body := bytes.Repeat([]byte("squeeze "), 1000)
		res, err := p.SendSync(ctx, primitive.NewMessage("TopicTest", body))
		if err != nil || res.Status != primitive.SendOK {
			t.Fatalf("SendSync: %v, %v", res, err)
		}
		m, _, ok := stored(c, "TopicTest", res.MsgID)
		if !ok || m.SysFlag&1 == 0 {
			t.Fatalf("compressed message not stored compressed (sysFlag %#x)", m.SysFlag)
		}
		if plain, err := m.PlainBody(); err != nil || !bytes.Equal(plain, body) {
			t.Errorf("PlainBody: %v", err)
		}
	})

	t.Run("TBW102 auto-create", func(t *testing.T) {
		res, err := p.SendSync(ctx, primitive.NewMessage("GoAutoCreated", []byte("new topic")))
		if err != nil || res.Status != primitive.SendOK {
			t.Fatalf("SendSync to an unknown topic: %v, %v", res, err)
		}
		if _, _, ok := stored(c, "GoAutoCreated", res.MsgID); !ok {
			t.Errorf("auto-created topic message not stored")
		}
	})

	// What the official client put on the wire: SEND_MESSAGE (10) for single messages
	// (incl. oneway, which it sends without the oneway flag), SEND_BATCH_MESSAGE (320) for
	// the batch, and route queries with version 317 that got the bare-integer-key form.
	byCode := map[remoting.RequestCode]int64{}
	for _, b := range c.Brokers() {
		for code, n := range b.Stats().ByCode {
			byCode[code] += n
		}
	}
	if byCode[remoting.SendMessage] != 11 || byCode[remoting.SendBatchMessage] != 1 || byCode[remoting.SendMessageV2] != 0 {
		t.Errorf("send requests by code %v, want 11 x SEND_MESSAGE and 1 x SEND_BATCH_MESSAGE", byCode)
	}
	if ns := c.NameServerStats(); ns.BareKeyRoutes == 0 || ns.StandardRoutes != 0 {
		t.Errorf("NameServer stats %+v: the official client should get only bare-key routes", ns)
	}
}
