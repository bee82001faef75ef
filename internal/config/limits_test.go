package config

import (
	"strings"
	"testing"
	"time"
)

// TestLimitsGRPCAndStreamKeys: the gRPC receive limit has no base64 factor; the
// keepalive and stream-ack keys have their defaults and accept values.
func TestLimitsGRPCAndStreamKeys(t *testing.T) {
	base := "[client]\nname_servers = [\"127.0.0.1:9876\"]\n[[producer]]\ngroup = \"g\"\nmax_message_size = \"4MiB\"\n"
	c, err := Parse("t.toml", []byte(base), ".")
	if err != nil {
		t.Fatal(err)
	}
	l := c.Limits
	if want := int64(4<<20 + 4<<20/8 + 64<<10); l.MaxGRPCMessageSize != want {
		t.Errorf("max_grpc_message_size default %d, want %d", l.MaxGRPCMessageSize, want)
	}
	if l.MaxRequestSize != 2*4<<20+64<<10 || l.KeepaliveTime != DefaultKeepaliveTime || l.KeepaliveTimeout != DefaultKeepaliveTimeout || l.StreamAckTimeout != DefaultStreamAckTimeout {
		t.Errorf("defaults: %+v", l)
	}
	c, err = Parse("t.toml", []byte(base+"[limits]\nmax_grpc_message_size = \"5MiB\"\nkeepalive_time = \"2s\"\nkeepalive_timeout = \"1s\"\nstream_ack_timeout = \"5s\"\n"), ".")
	if err != nil {
		t.Fatal(err)
	}
	l = c.Limits
	if l.MaxGRPCMessageSize != 5<<20 || l.KeepaliveTime != 2*time.Second || l.KeepaliveTimeout != time.Second || l.StreamAckTimeout != 5*time.Second {
		t.Errorf("values: %+v", l)
	}
	_, err = Parse("t.toml", []byte(base+"[limits]\nmax_grpc_message_size = \"1MiB\"\n"), ".")
	if err == nil || !strings.Contains(err.Error(), "max_grpc_message_size") {
		t.Errorf("max_grpc_message_size below max_message_size: %v", err)
	}
}
