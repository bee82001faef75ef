package devbroker_test

import (
	"bytes"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"

	"github.com/producerd/producerd/core"
	"github.com/producerd/producerd/devbroker"
	"github.com/producerd/producerd/remoting"
)

// checkStored reads a sent message back by its offset id (VIEW_MESSAGE_BY_ID) and compares.
func checkStored(t *testing.T, p *core.Producer, m *core.Message, offsetMsgID, uniq string) *core.MessageExt {
	t.Helper()
	got, err := core.ViewMessage(ctxT(t), p.Client().Remoting(), m.Topic, offsetMsgID)
	if err != nil {
		t.Fatalf("ViewMessage %s: %v", offsetMsgID, err)
	}
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
	return got
}

func TestSendSyncReadBack(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		name string
		v1   bool
		req  remoting.SerializeType
		resp devbroker.Encoding
	}{
		{"V2 header, JSON", false, remoting.JSON, devbroker.EncodingAsRequest},
		{"V1 header, ROCKETMQ", true, remoting.RocketMQ, devbroker.EncodingAsRequest},
		{"V2 header, ROCKETMQ asked, JSON answered", false, remoting.RocketMQ, devbroker.EncodingJSON},
		{"V1 header, JSON asked, ROCKETMQ answered", true, remoting.JSON, devbroker.EncodingRocketMQ},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			c := start(t, devbroker.Config{Brokers: []string{"broker-a", "broker-b"}, Topics: map[string]int{"TopicTest": 4}, ResponseEncoding: tt.resp})
			p := newProducer(t, c, func(pc *core.ProducerConfig) {
				pc.UseV1Header = tt.v1
				pc.Client.Remoting.Serialize = tt.req
			})
			for i := range 6 {
				m := &core.Message{Topic: "TopicTest", Body: []byte(fmt.Sprintf("hello %d", i)), Tags: "TagA",
					Keys: []string{"k1", fmt.Sprintf("k%d", i+2)}, Flag: int32(i), Properties: map[string]string{"color": "blue"}}
				res, err := p.Send(ctxT(t), m)
				if err != nil {
					t.Fatalf("Send %d: %v", i, err)
				}
				if res.Status != core.SendOK || res.RegionID != "DefaultRegion" || !res.TraceOn {
					t.Errorf("result %+v", res)
				}
				got := checkStored(t, p, m, res.OffsetMsgID, res.MsgID)
				if got.QueueID != res.Queue.ID || got.QueueOffset != res.QueueOffset || got.Flag != int32(i) {
					t.Errorf("stored queue %d offset %d flag %d, result queue %d offset %d", got.QueueID, got.QueueOffset, got.Flag, res.Queue.ID, res.QueueOffset)
				}
				addr, _, err := core.ParseOffsetMsgID(res.OffsetMsgID)
				if err != nil || addr != c.Broker(res.Queue.Broker).Addr() {
					t.Errorf("offset msg id %s names %s (%v), want broker %s at %s", res.OffsetMsgID, addr, err, res.Queue.Broker, c.Broker(res.Queue.Broker).Addr())
				}
				if res.OffsetMsgID != strings.ToUpper(res.OffsetMsgID) || len(res.OffsetMsgID) != 32 {
					t.Errorf("offset msg id %q is not 32 uppercase hex digits", res.OffsetMsgID)
				}
				// PULL_MESSAGE returns the same message at its queue offset.
				msgs, next, err := core.PullMessages(ctxT(t), p.Client().Remoting(), addr, "pull_g", "TopicTest", res.Queue.ID, res.QueueOffset, 1)
				if err != nil || len(msgs) != 1 || next != res.QueueOffset+1 || msgs[0].UniqKey() != res.MsgID {
					t.Fatalf("PullMessages: %d messages, next %d, err %v", len(msgs), next, err)
				}
			}
			var total int
			for _, b := range c.Brokers() {
				for _, m := range b.Messages("TopicTest") {
					if m.Properties["color"] != "blue" || m.Properties["CLUSTER"] != "DefaultCluster" {
						t.Errorf("broker copy properties %v", m.Properties)
					}
					total++
				}
			}
			if total != 6 {
				t.Errorf("brokers hold %d messages, want 6", total)
			}
			want := remoting.SendMessageV2
			if tt.v1 {
				want = remoting.SendMessage
			}
			if n := c.Broker("broker-a").Stats().ByCode[want] + c.Broker("broker-b").Stats().ByCode[want]; n != 6 {
				t.Errorf("%d %v requests, want 6", n, want)
			}
		})
	}
}

func TestSendAsync(t *testing.T) {
	t.Parallel()
	c := start(t, devbroker.Config{Brokers: []string{"broker-a", "broker-b"}, Topics: map[string]int{"TopicTest": 4}})
	p := newProducer(t, c, nil)
	const n = 50
	var wg sync.WaitGroup
	results := make([]*core.SendResult, n)
	errs := make([]error, n)
	for i := range n {
		wg.Add(1)
		err := p.SendAsync(ctxT(t), &core.Message{Topic: "TopicTest", Body: []byte(fmt.Sprint("async ", i))}, func(r *core.SendResult, err error) {
			results[i], errs[i] = r, err
			wg.Done()
		})
		if err != nil {
			t.Fatalf("SendAsync %d: %v", i, err)
		}
	}
	wg.Wait()
	for i := range n {
		if errs[i] != nil {
			t.Fatalf("async send %d: %v", i, errs[i])
		}
	}
	var stored int
	for _, b := range c.Brokers() {
		stored += len(b.Messages("TopicTest"))
	}
	if stored != n {
		t.Errorf("stored %d, want %d", stored, n)
	}
	got, err := core.ViewMessage(ctxT(t), p.Client().Remoting(), "TopicTest", results[n-1].OffsetMsgID)
	if err != nil || string(got.Body) != fmt.Sprint("async ", n-1) {
		t.Errorf("ViewMessage: %v", err)
	}
}

func TestSendOneway(t *testing.T) {
	t.Parallel()
	c := start(t, devbroker.Config{Topics: map[string]int{"TopicTest": 4}})
	p := newProducer(t, c, nil)
	for i := range 3 {
		if err := p.SendOneway(ctxT(t), &core.Message{Topic: "TopicTest", Body: []byte(fmt.Sprint("oneway ", i))}); err != nil {
			t.Fatalf("SendOneway: %v", err)
		}
	}
	b := c.Broker("broker-a")
	waitFor(t, "3 oneway messages stored", func() bool { return len(b.Messages("TopicTest")) == 3 })
	if s := b.Stats(); s.Sends != 3 || s.Messages != 3 {
		t.Errorf("stats %+v", s)
	}
}

func TestSendBatch(t *testing.T) {
	t.Parallel()
	c := start(t, devbroker.Config{Brokers: []string{"broker-a", "broker-b"}, Topics: map[string]int{"TopicTest": 2}})
	p := newProducer(t, c, nil)
	msgs := []*core.Message{
		{Topic: "TopicTest", Body: []byte("one"), Tags: "x", Keys: []string{"a"}},
		{Topic: "TopicTest", Body: []byte("two"), Flag: 7},
		{Topic: "TopicTest", Body: bytes.Repeat([]byte("three "), 2000)}, // batches are never compressed
	}
	res, err := p.SendBatch(ctxT(t), msgs)
	if err != nil {
		t.Fatal(err)
	}
	offIDs, uniq := strings.Split(res.OffsetMsgID, ","), strings.Split(res.MsgID, ",")
	if len(offIDs) != 3 || len(uniq) != 3 {
		t.Fatalf("batch result ids %q / %q", res.OffsetMsgID, res.MsgID)
	}
	for i, m := range msgs {
		got := checkStored(t, p, m, offIDs[i], uniq[i])
		if got.QueueOffset != res.QueueOffset+int64(i) || got.Flag != m.Flag || got.SysFlag&1 != 0 {
			t.Errorf("message %d: offset %d flag %d sysFlag %d", i, got.QueueOffset, got.Flag, got.SysFlag)
		}
	}
	addr := c.Broker(res.Queue.Broker).Addr()
	got, next, err := core.PullMessages(ctxT(t), p.Client().Remoting(), addr, "pull_g", "TopicTest", res.Queue.ID, 0, 32)
	if err != nil || len(got) != 3 || next != 3 {
		t.Errorf("pull: %d messages, next %d, %v", len(got), next, err)
	}
	max, err := core.MaxOffset(ctxT(t), p.Client().Remoting(), addr, "TopicTest", res.Queue.ID)
	if err != nil || max != 3 {
		t.Errorf("MaxOffset = %d, %v; want 3", max, err)
	}
}

func TestSendCompressed(t *testing.T) {
	t.Parallel()
	c := start(t, devbroker.Config{Topics: map[string]int{"TopicTest": 1}})
	p := newProducer(t, c, nil)
	body := bytes.Repeat([]byte("compress me please "), 1000) // 19000 bytes, over the 4096 threshold
	m := &core.Message{Topic: "TopicTest", Body: body}
	res, err := p.Send(ctxT(t), m)
	if err != nil {
		t.Fatal(err)
	}
	got := checkStored(t, p, m, res.OffsetMsgID, res.MsgID) // core inflates the body
	if got.SysFlag&1 == 0 {
		t.Errorf("stored sysFlag %#x lacks COMPRESSED", got.SysFlag)
	}
	stored := c.Broker("broker-a").Messages("TopicTest")
	if len(stored) != 1 || len(stored[0].Body) >= len(body) || stored[0].SysFlag&0x301 != 0x301 {
		t.Fatalf("broker copy: %d messages, body %d bytes, sysFlag %#x", len(stored), len(stored[0].Body), stored[0].SysFlag)
	}
	plain, err := stored[0].PlainBody()
	if err != nil || !bytes.Equal(plain, body) {
		t.Errorf("PlainBody: %v (equal %v)", err, bytes.Equal(plain, body))
	}
}

func TestAutoCreateTBW102(t *testing.T) {
	t.Parallel()
	t.Run("enabled", func(t *testing.T) {
		t.Parallel()
		c := start(t, devbroker.Config{Brokers: []string{"broker-a"}, AutoCreate: true})
		p := newProducer(t, c, nil)
		m := &core.Message{Topic: "BrandNewTopic", Body: []byte("first")}
		res, err := p.Send(ctxT(t), m)
		if err != nil {
			t.Fatalf("Send to an unknown topic: %v", err)
		}
		checkStored(t, p, m, res.OffsetMsgID, res.MsgID)
		rc := newClient(t, remoting.Config{})
		req := remoting.NewRequest(remoting.GetRouteInfoByTopic, map[string]string{"topic": "BrandNewTopic"}, nil)
		resp := invoke(t, rc, c.NameServerAddr(), req)
		route, err := core.ParseTopicRoute(resp.Body)
		if err != nil || resp.Code != 0 {
			t.Fatalf("route after auto-create: code %d, %v", resp.Code, err)
		}
		// min(client defaultTopicQueueNums 4, TBW102's 8 queues), perm 6 (TBW102's 7 without INHERIT).
		if len(route.QueueDatas) != 1 || route.QueueDatas[0].WriteQueueNums != 4 || route.QueueDatas[0].Perm != 6 {
			t.Errorf("auto-created route %+v", route.QueueDatas)
		}
	})
	t.Run("disabled", func(t *testing.T) {
		t.Parallel()
		c := start(t, devbroker.Config{Brokers: []string{"broker-a"}})
		p := newProducer(t, c, nil)
		_, err := p.Send(ctxT(t), &core.Message{Topic: "BrandNewTopic", Body: []byte("first")})
		if !errors.Is(err, core.ErrNoRoute) {
			t.Fatalf("Send without TBW102: %v, want ErrNoRoute", err)
		}
		// A broker asked to store into an unknown topic answers 17.
		rc := newClient(t, remoting.Config{})
		resp := invoke(t, rc, c.Broker("broker-a").Addr(), sendV2("BrandNewTopic", 0, "x"))
		if resp.Code != int32(remoting.TopicNotExist) || !strings.HasPrefix(resp.Remark, "topic[BrandNewTopic] not exist") {
			t.Errorf("send to unknown topic: code %d remark %q", resp.Code, resp.Remark)
		}
	})
}

func TestCreateTopicRequest(t *testing.T) {
	t.Parallel()
	c := start(t, devbroker.Config{Brokers: []string{"broker-a", "broker-b"}})
	rc := newClient(t, remoting.Config{})
	err := core.CreateTopic(ctxT(t), rc, c.Broker("broker-b").Addr(), core.TopicConfig{Topic: "Created", ReadQueues: 2, WriteQueues: 3})
	if err != nil {
		t.Fatal(err)
	}
	resp := invoke(t, rc, c.NameServerAddr(), remoting.NewRequest(remoting.GetRouteInfoByTopic, map[string]string{"topic": "Created"}, nil))
	route, err := core.ParseTopicRoute(resp.Body)
	if err != nil || len(route.QueueDatas) != 1 || route.QueueDatas[0].BrokerName != "broker-b" ||
		route.QueueDatas[0].ReadQueueNums != 2 || route.QueueDatas[0].WriteQueueNums != 3 {
		t.Fatalf("route %s (%v)", resp.Body, err)
	}
	if got := c.Broker("broker-b").Topics(); len(got) != 1 || got[0] != "Created" {
		t.Errorf("broker-b topics %v", got)
	}
}

func TestQueueIDRules(t *testing.T) {
	t.Parallel()
	c := start(t, devbroker.Config{Topics: map[string]int{"TopicTest": 4}})
	rc := newClient(t, remoting.Config{})
	addr := c.Broker("broker-a").Addr()
	resp := invoke(t, rc, addr, sendV2("TopicTest", 4, "x"))
	if resp.Code != int32(remoting.InvalidParameter) || !strings.Contains(resp.Remark, "queueId[4] is illegal") {
		t.Errorf("queueId 4 of 4: code %d remark %q", resp.Code, resp.Remark)
	}
	for range 8 {
		resp = invoke(t, rc, addr, sendV2("TopicTest", -1, "x"))
		if resp.Code != 0 || !strings.Contains("0123", resp.ExtFields["queueId"]) || len(resp.ExtFields["queueId"]) != 1 {
			t.Fatalf("queueId -1: code %d queueId %q", resp.Code, resp.ExtFields["queueId"])
		}
	}
	resp = invoke(t, rc, addr, remoting.NewRequest(remoting.SendMessageV2, map[string]string{"b": "TopicTest"}, []byte("x")))
	if resp.Code != int32(remoting.SystemError) || !strings.Contains(resp.Remark, "<a> is null") {
		t.Errorf("header without a..h: code %d remark %q", resp.Code, resp.Remark)
	}
}

func TestHeartbeatAndUnregister(t *testing.T) {
	t.Parallel()
	c := start(t, devbroker.Config{Topics: map[string]int{"TopicTest": 1}})
	p, err := core.NewProducer(core.ProducerConfig{Group: "hb_group", Client: core.ClientConfig{NameServers: []string{c.NameServerAddr()}}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := p.Send(ctxT(t), &core.Message{Topic: "TopicTest", Body: []byte("x")}); err != nil {
		p.Close(ctxT(t))
		t.Fatal(err)
	}
	b := c.Broker("broker-a")
	waitFor(t, "a heartbeat naming hb_group", func() bool { return len(b.Producers()["hb_group"]) == 1 })
	if ids := b.Producers()["CLIENT_INNER_PRODUCER"]; len(ids) != 1 || ids[0] != p.Client().ID() {
		t.Errorf("inner producer ids %v, want [%s]", ids, p.Client().ID())
	}
	if err := p.Close(ctxT(t)); err != nil {
		t.Fatal(err)
	}
	if _, ok := b.Producers()["hb_group"]; ok {
		t.Errorf("hb_group still registered after Close: %v", b.Producers())
	}
}

func TestStoreBound(t *testing.T) {
	t.Parallel()
	c := start(t, devbroker.Config{Topics: map[string]int{"TopicTest": 1}, MaxMessages: 3})
	rc := newClient(t, remoting.Config{})
	addr := c.Broker("broker-a").Addr()
	var ids []string
	for i := range 5 {
		resp := invoke(t, rc, addr, sendV2("TopicTest", 0, fmt.Sprint("m", i)))
		if resp.Code != 0 {
			t.Fatalf("send %d: code %d %s", i, resp.Code, resp.Remark)
		}
		ids = append(ids, resp.ExtFields["msgId"])
	}
	msgs := c.Broker("broker-a").Messages("TopicTest")
	if len(msgs) != 3 || string(msgs[0].Body) != "m2" || msgs[0].QueueOffset != 2 || msgs[0].MsgID != ids[2] {
		t.Fatalf("retained %d messages, first %q at %d", len(msgs), msgs[0].Body, msgs[0].QueueOffset)
	}
	if s := c.Broker("broker-a").Stats(); s.Dropped != 2 || s.Retained != 3 || s.Messages != 5 {
		t.Errorf("stats %+v", s)
	}
	min := invoke(t, rc, addr, remoting.NewRequest(remoting.GetMinOffset, map[string]string{"topic": "TopicTest", "queueId": "0"}, nil))
	if min.ExtFields["offset"] != "2" {
		t.Errorf("min offset %q, want 2", min.ExtFields["offset"])
	}
	if _, err := core.ViewMessage(ctxT(t), rc, "TopicTest", ids[0]); err == nil {
		t.Errorf("viewing a dropped message succeeded")
	}
	if m, err := core.ViewMessage(ctxT(t), rc, "TopicTest", ids[4]); err != nil || string(m.Body) != "m4" {
		t.Errorf("view newest: %v", err)
	}
	// Pulling below the retained range is OFFSET_MOVED with the new start.
	_, next, err := core.PullMessages(ctxT(t), rc, addr, "g", "TopicTest", 0, 0, 32)
	if err != nil || next != 2 {
		t.Errorf("pull from 0: next %d, %v", next, err)
	}
}

func TestUnknownCodeAndOnewayFlag(t *testing.T) {
	t.Parallel()
	c := start(t, devbroker.Config{Topics: map[string]int{"TopicTest": 1}})
	rc := newClient(t, remoting.Config{})
	for _, addr := range []string{c.NameServerAddr(), c.Broker("broker-a").Addr()} {
		resp := invoke(t, rc, addr, remoting.NewRequest(remoting.RequestCode(9999), nil, nil))
		if resp.Code != int32(remoting.RequestCodeNotSupported) || !strings.Contains(resp.Remark, "9999 not supported") {
			t.Errorf("%s: unknown code answered %d %q", addr, resp.Code, resp.Remark)
		}
	}
	// A request with the oneway flag gets no answer, but is processed.
	if err := rc.InvokeOneway(ctxT(t), c.Broker("broker-a").Addr(), sendV2("TopicTest", 0, "oneway")); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "oneway message stored", func() bool { return len(c.Broker("broker-a").Messages("TopicTest")) == 1 })
}
