package core_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/producerd/producerd/core"
	"github.com/producerd/producerd/devbroker"
	"github.com/producerd/producerd/internal/testwait"
	"github.com/producerd/producerd/remoting"
)

func TestNamespaceWrap(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ ns, name, wrapped string }{
		{"ns1", "Topic", "ns1%Topic"},
		{"ns1", "ns1%Topic", "ns1%Topic"},
		{"ns1", "%RETRY%grp", "%RETRY%ns1%grp"},
		{"ns1", "%DLQ%grp", "%DLQ%ns1%grp"},
		{"ns1", "TBW102", "TBW102"},
		{"ns1", "rmq_sys_x", "rmq_sys_x"},
		{"ns1", "SCHEDULE_TOPIC_XXXX", "SCHEDULE_TOPIC_XXXX"},
		{"", "Topic", "Topic"},
		{"ns1", "ns2%Topic", "ns1%ns2%Topic"},
	} {
		if got := core.WithNamespace(tc.ns, tc.name); got != tc.wrapped {
			t.Errorf("WithNamespace(%q, %q) = %q, want %q", tc.ns, tc.name, got, tc.wrapped)
		}
		if tc.wrapped != tc.name || tc.ns == "" {
			if got := core.WithoutNamespace(tc.ns, tc.wrapped); got != tc.name && !(tc.name == "ns1%Topic") {
				t.Errorf("WithoutNamespace(%q, %q) = %q, want %q", tc.ns, tc.wrapped, got, tc.name)
			}
		}
	}
}

// TestNamespaceSend: with Namespace "ns1" the message lands in ns1%T from group ns1%g
// with INSTANCE_ID=ns1, and the caller sees T and g.
func TestNamespaceSend(t *testing.T) {
	t.Parallel()
	dev := startDev(t, devbroker.Config{Topics: map[string]int{"ns1%T": 4}})
	p := devProducer(t, dev, func(c *core.ProducerConfig) {
		c.Namespace, c.Group, c.Client.Heartbeat = "ns1", "g_ns", 20*time.Millisecond
	})
	if p.Group() != "g_ns" {
		t.Errorf("Group() = %q", p.Group())
	}
	res, err := p.Send(context.Background(), &core.Message{Topic: "T", Body: []byte("x")})
	if err != nil {
		t.Fatal(err)
	}
	if res.Topic != "T" {
		t.Errorf("result topic %q, want T", res.Topic)
	}
	if _, err := p.SendBatch(context.Background(), []*core.Message{{Topic: "T", Body: []byte("b1")}, {Topic: "T", Body: []byte("b2")}}); err != nil {
		t.Fatal(err)
	}
	var stored []devbroker.Message
	for _, b := range dev.Brokers() {
		stored = append(stored, b.Messages("ns1%T")...)
	}
	if !testwait.Until(10*time.Second, func() bool {
		_, ok := dev.Broker("broker-a").Producers()["ns1%g_ns"]
		return ok
	}) {
		t.Fatalf("no heartbeat for group ns1%%g_ns: %v", dev.Broker("broker-a").Producers())
	}
	if len(stored) != 3 {
		t.Fatalf("%d messages in ns1%%T, want 3", len(stored))
	}
	if stored[0].Properties[core.PropertyInstanceID] != "ns1" {
		t.Errorf("properties %v, want INSTANCE_ID=ns1", stored[0].Properties)
	}
	if _, err := core.NewProducer(core.ProducerConfig{Group: "g", Namespace: "bad%ns",
		Client: core.ClientConfig{NameServers: []string{dev.NameServerAddr()}}}); !errors.Is(err, core.ErrInvalidConfig) {
		t.Errorf("namespace with %%: %v", err)
	}
}

// TestNamespaceRouteErrorBare: review finding 15. A route error of a namespaced producer
// names the topic as its caller did ("topic T", not "topic ns1%T"), in Topic and in the
// NameServer's remark, and still classifies.
func TestNamespaceRouteErrorBare(t *testing.T) {
	t.Parallel()
	dev := startDev(t, devbroker.Config{})
	p := devProducer(t, dev, func(c *core.ProducerConfig) { c.Namespace = "ns1" })
	_, err := p.Send(context.Background(), &core.Message{Topic: "Missing", Body: []byte("x")})
	var re *core.RouteError
	if !errors.As(err, &re) || !errors.Is(err, core.ErrTopicNotExist) {
		t.Fatalf("send to a missing topic: %v; want a *RouteError, ErrTopicNotExist", err)
	}
	if re.Topic != "Missing" || strings.Contains(err.Error(), "ns1%") || !strings.Contains(err.Error(), "topic Missing") {
		t.Fatalf("route error %q (Topic %q) shows the namespace", err, re.Topic)
	}
}

// TestNamespaceBrokerErrorBare: a broker's remark quotes the wrapped topic; a namespaced
// producer's send error shows the topic as its caller named it, sync and async, and
// still carries the broker's code.
func TestNamespaceBrokerErrorBare(t *testing.T) {
	t.Parallel()
	dev := startDev(t, devbroker.Config{Topics: map[string]int{"ns1%Denied": 4}})
	remark := "the topic[ns1%Denied] sending message is forbidden"
	for _, b := range dev.Brokers() {
		setFault(t, b, devbroker.Fault{Errors: []devbroker.InjectedError{{Code: remoting.NoPermission, Rate: 1, Remark: remark}}})
	}
	p := devProducer(t, dev, func(c *core.ProducerConfig) { c.Namespace = "ns1" })
	check := func(how string, err error) {
		t.Helper()
		var re *remoting.Error
		if !errors.As(err, &re) || re.Code != remoting.NoPermission {
			t.Fatalf("%s send: %v; want the broker's NO_PERMISSION", how, err)
		}
		if strings.Contains(err.Error(), "ns1%") || !strings.Contains(err.Error(), "topic[Denied]") {
			t.Fatalf("%s send error %q shows the namespace", how, err)
		}
	}
	_, err := p.Send(context.Background(), &core.Message{Topic: "Denied", Body: []byte("x")})
	check("sync", err)
	done := make(chan error, 1)
	if err := p.SendAsync(context.Background(), &core.Message{Topic: "Denied", Body: []byte("x")},
		func(_ *core.SendResult, err error) { done <- err }); err != nil {
		t.Fatal(err)
	}
	check("async", <-done)
}
