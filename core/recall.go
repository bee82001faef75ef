package core

import (
	"context"
	"encoding/base64"
	"fmt"
	"strings"

	"github.com/producerd/producerd/remoting"
)

// Recalling a timer message (RocketMQ 5.3.2+): a broker answers the send of a message
// with a delivery time with a recall handle (SendResult.RecallHandle); RECALL_MESSAGE with
// that handle, to the broker named in it, removes the message before it is delivered.

// recallMessageCode is RECALL_MESSAGE (5.3.2+).
const recallMessageCode remoting.RequestCode = 370

// RecallHandle is a decoded recall handle: Base64url of "v1 topic broker timestamp
// msgId" (the broker's RecallMessageHandle.HandleV1).
type RecallHandle struct {
	// Topic is the wire topic (with the namespace); Broker the broker that holds the
	// message; MsgID its UNIQ_KEY.
	Topic, Broker, MsgID string
}

// ParseRecallHandle decodes a recall handle.
func ParseRecallHandle(h string) (RecallHandle, error) {
	raw, err := base64.URLEncoding.DecodeString(h)
	if err != nil {
		raw, err = base64.RawURLEncoding.DecodeString(h)
	}
	if err != nil {
		return RecallHandle{}, invalid("recall.handle", "the recall handle is not Base64url")
	}
	f := strings.Split(string(raw), " ")
	if len(f) != 5 || f[0] != "v1" || f[1] == "" || f[2] == "" || f[4] == "" {
		return RecallHandle{}, invalid("recall.handle", "the recall handle is not a v1 handle (v1 topic broker timestamp msgId)")
	}
	return RecallHandle{Topic: f[1], Broker: f[2], MsgID: f[4]}, nil
}

// RecallMessage recalls the timer message of topic whose send answered handle, before it
// is delivered, and returns its UNIQ_KEY. It asks the broker named in the handle (its
// current master) and returns the broker's refusal as a *remoting.Error (for example a
// message already delivered, or a broker before 5.3.2: REQUEST_CODE_NOT_SUPPORTED). A
// handle of another topic is refused before any I/O.
func (p *Producer) RecallMessage(ctx context.Context, topic, handle string) (string, error) {
	if err := p.begin(); err != nil {
		return "", err
	}
	defer p.inflight.Done()
	rh, err := ParseRecallHandle(handle)
	if err != nil {
		return "", err
	}
	wire := WithNamespace(p.cfg.Namespace, topic)
	if rh.Topic != wire {
		return "", invalid("recall.topic", "the recall handle is for topic %q, not %q", rh.Topic, wire)
	}
	ext := map[string]string{"producerGroup": p.cfg.Group, "topic": wire, "recallHandle": handle, "bname": rh.Broker}
	resp, err := p.brokerCall(ctx, topic, rh.Broker, remoting.NewRequest(recallMessageCode, ext, nil), false,
		fmt.Sprintf("recall %s of %s", rh.MsgID, topic))
	if err != nil {
		return "", err
	}
	if id := resp.ExtFields["msgId"]; id != "" {
		return id, nil
	}
	return rh.MsgID, nil
}
