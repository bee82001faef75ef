package core_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/producerd/producerd/core"
	"github.com/producerd/producerd/internal/rmqtest"
	"github.com/producerd/producerd/internal/rmqtest/readback"
	"github.com/producerd/producerd/internal/testwait"
	"github.com/producerd/producerd/remoting"
)

// TestIntegrationTimerMessages against RocketMQ 5.3.3 (timerWheelEnable defaults to true
// there; testinfra/rocketmq leaves it on): a message with DeliverAt = now+5s is not in its
// topic before delivery and arrives afterwards; one with a DeliverAt in the past and one
// with no timer arrive at once.
func TestIntegrationTimerMessages(t *testing.T) {
	c := rmqtest.Require(t)
	const topic = "IT_Send"
	p := newProducer(t, c, nil)
	rc := p.Client().Remoting()
	from := readback.Mark(t, rc, c, topic, 4)

	send := func(m *core.Message) string {
		t.Helper()
		res, err := p.Send(context.Background(), m)
		if err != nil {
			t.Fatalf("send: %v", err)
		}
		return res.MsgID
	}
	start := time.Now()
	deliverAt := start.Add(5 * time.Second)
	future := send(&core.Message{Topic: topic, Body: []byte("timer +5s"), DeliverAt: deliverAt})
	past := send(&core.Message{Topic: topic, Body: []byte("timer past"), DeliverAt: start.Add(-time.Hour)})
	delayed := send(&core.Message{Topic: topic, Body: []byte("delay 3s"), Delay: 3 * time.Second})

	arrived := make(map[string]time.Duration)
	testwait.Until(20*time.Second-time.Since(start), func() bool {
		readback.Scan(t, rc, topic, from, func(m *core.MessageExt) bool {
			if id := m.UniqKey(); (id == future || id == past || id == delayed) && arrived[id] == 0 {
				arrived[id] = time.Since(start)
			}
			return false
		})
		return len(arrived) == 3
	})
	t.Logf("arrival after the send: DeliverAt+5s %v, DeliverAt in the past %v, Delay 3s %v", arrived[future], arrived[past], arrived[delayed])
	switch {
	case arrived[past] == 0 || arrived[future] == 0 || arrived[delayed] == 0:
		t.Fatalf("not every timer message arrived within 20 s: %v", arrived)
	case arrived[future] < 4*time.Second:
		t.Errorf("the DeliverAt+5s message was visible after %v", arrived[future])
	case arrived[delayed] < 2*time.Second:
		t.Errorf("the Delay 3s message was visible after %v", arrived[delayed])
	case arrived[past] > arrived[delayed]:
		t.Errorf("the past DeliverAt message arrived after the delayed one (%v)", arrived[past])
	}
}

// TestIntegrationTimerDisabledBroker: a 5.3.3 broker with timerWheelEnable=false (the
// ACL profile's broker) refuses a timer message with its own error; it is not silently
// delivered at once.
func TestIntegrationTimerDisabledBroker(t *testing.T) {
	c := rmqtest.RequireACL(t)
	p := newProducer(t, &rmqtest.Cluster{NameServer: c.NameServer}, func(pc *core.ProducerConfig) {
		pc.Client.Remoting.Credentials = &remoting.Credentials{AccessKey: rmqtest.ACLAccessKey, SecretKey: rmqtest.ACLSecretKey}
	})
	// The first plain send auto-creates the topic.
	waitSend(t, p, &core.Message{Topic: "IT_Acl", Body: []byte("plain")})
	_, err := p.Send(context.Background(), &core.Message{Topic: "IT_Acl", Body: []byte("timer"), DeliverAt: time.Now().Add(5 * time.Second)})
	var re *remoting.Error
	if !errors.As(err, &re) || re.Code != remoting.SystemError {
		t.Fatalf("timer message to a broker without timers: %v, want the broker's SYSTEM_ERROR", err)
	}
	t.Logf("broker without timers: %v", err)
}

// waitSend sends m, retrying for up to 20 s while the topic is being auto-created.
func waitSend(t *testing.T, p *core.Producer, m *core.Message) {
	t.Helper()
	var err error
	if !testwait.Until(20*time.Second, func() bool {
		_, err = p.Send(context.Background(), m)
		return err == nil
	}) {
		t.Fatalf("send: %v", err)
	}
}
