package core_test

import (
	"context"
	"encoding/base64"
	"errors"
	"net"
	"testing"

	"github.com/producerd/producerd/core"
)

// TestParseRecallHandle: the broker's v1 handle (Base64url, with or without padding) is
// decoded; anything else is a validation error.
func TestParseRecallHandle(t *testing.T) {
	t.Parallel()
	v1 := base64.URLEncoding.EncodeToString([]byte("v1 ns%T broker-a 1765000000001 01AB"))
	h, err := core.ParseRecallHandle(v1)
	if err != nil || h != (core.RecallHandle{Topic: "ns%T", Broker: "broker-a", MsgID: "01AB"}) {
		t.Fatalf("ParseRecallHandle(%q) = %+v, %v", v1, h, err)
	}
	if _, err := core.ParseRecallHandle(base64.RawURLEncoding.EncodeToString([]byte("v1 T b 1 id"))); err != nil {
		t.Errorf("unpadded handle: %v", err)
	}
	for _, bad := range []string{"", "%%%", base64.URLEncoding.EncodeToString([]byte("v2 T b 1 id")),
		base64.URLEncoding.EncodeToString([]byte("v1 T b 1")), base64.URLEncoding.EncodeToString([]byte("v1  b 1 id"))} {
		if _, err := core.ParseRecallHandle(bad); !errors.Is(err, core.ErrInvalidMessage) {
			t.Errorf("ParseRecallHandle(%q): %v, want ErrInvalidMessage", bad, err)
		}
	}
}

// TestRecallMessageTopicMismatch: a handle of another topic is refused before any I/O:
// the producer's NameServer refuses every connection, so a route lookup first would
// fail differently.
func TestRecallMessageTopicMismatch(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed := ln.Addr().String()
	ln.Close()
	p, err := core.NewProducer(core.ProducerConfig{Group: "g_recall", Client: core.ClientConfig{NameServers: []string{closed}}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = p.Close(context.Background()) })
	h := base64.URLEncoding.EncodeToString([]byte("v1 Other broker-a 1 id"))
	if _, err := p.RecallMessage(context.Background(), "T", h); !errors.Is(err, core.ErrInvalidMessage) {
		t.Fatalf("RecallMessage with another topic's handle: %v", err)
	}
}
