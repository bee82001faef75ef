package rmqv2

import (
	"sync/atomic"
	"testing"

	pb "github.com/producerd/producerd/api/rmqv2"
)

// TestConvertAppliesCoresMessageRules: what a message may be for RocketMQ is core's check
// (core.Message.Validate), applied by the converter before the message reaches the
// Sender (so before it takes an in-flight slot), with the Proxy's codes. A Sender that
// checks nothing sees none of these messages.
func TestConvertAppliesCoresMessageRules(t *testing.T) {
	t.Parallel()
	sender := &countingSender{}
	var invalid atomic.Int64
	_, client := serve(t, Options{Sender: sender, OnInvalid: func(pb.Code) { invalid.Add(1) }})
	tests := []struct {
		name  string
		props map[string]string
		keys  []string
		want  pb.Code
	}{
		{"reserved name", map[string]string{"UNIQ_KEY": "x"}, nil, pb.Code_ILLEGAL_MESSAGE_PROPERTY_KEY},
		{"sharding key as a user property", map[string]string{"__SHARDINGKEY": "x"}, nil, pb.Code_ILLEGAL_MESSAGE_PROPERTY_KEY},
		{"blank name", map[string]string{" ": "x"}, nil, pb.Code_ILLEGAL_MESSAGE_PROPERTY_KEY},
		{"blank value", map[string]string{"k": " "}, nil, pb.Code_ILLEGAL_MESSAGE_PROPERTY_KEY},
		{"key with a space", nil, []string{"a b"}, pb.Code_ILLEGAL_MESSAGE_KEY},
		{"blank key", nil, []string{" "}, pb.Code_ILLEGAL_MESSAGE_KEY},
		{"control character (the Proxy's rule)", map[string]string{"k": "a\tb"}, nil, pb.Code_ILLEGAL_MESSAGE_PROPERTY_KEY},
	}
	for i, tt := range tests {
		m := msg("rules")
		m.UserProperties, m.SystemProperties.Keys = tt.props, tt.keys
		resp, err := client.SendMessage(call(t), &pb.SendMessageRequest{Messages: []*pb.Message{m}})
		if err != nil {
			t.Fatal(err)
		}
		if got := resp.GetStatus().GetCode(); got != tt.want {
			t.Errorf("%s: code %v (%q), want %v", tt.name, got, resp.GetStatus().GetMessage(), tt.want)
		}
		if n := invalid.Load(); n != int64(i+1) {
			t.Errorf("%s: %d refusals counted as invalid, want %d", tt.name, n, i+1)
		}
	}
	if n := sender.msgs.Load(); n != 0 {
		t.Errorf("%d invalid messages reached the Sender", n)
	}
	ok := msg("fine")
	ok.UserProperties, ok.SystemProperties.Keys = map[string]string{"k": "v"}, []string{"k1", "k2"}
	if resp, err := client.SendMessage(call(t), &pb.SendMessageRequest{Messages: []*pb.Message{ok}}); err != nil || resp.GetStatus().GetCode() != pb.Code_OK {
		t.Fatalf("a valid message: %v %v", resp.GetStatus(), err)
	}
}
