package core

import (
	"context"
	"fmt"

	"github.com/producerd/producerd/remoting"
)

// brokerCall sends one request to the current master of broker, found through topic's
// route (refreshed once when the broker has no known master): the one-off calls outside
// the send loop (RECALL_MESSAGE, END_TRANSACTION), with no queue choice and no retry on
// another broker. Oneway writes the request without an answer (resp is nil); else a
// broker's refusal is a *remoting.Error. The call is bounded by ctx and
// ProducerConfig.SendTimeout; what, the request's description, prefixes its errors.
func (p *Producer) brokerCall(ctx context.Context, topic, broker string, req *remoting.Command, oneway bool, what string) (*remoting.Command, error) {
	ctx, cancel := context.WithTimeout(ctx, p.cfg.SendTimeout)
	defer cancel()
	pi, err := p.route(ctx, topic)
	if err != nil {
		return nil, err
	}
	deadline, _ := ctx.Deadline()
	addr, err := p.brokerAddr(ctx, pi, broker, deadline)
	if err != nil {
		return nil, err
	}
	var resp *remoting.Command
	if oneway {
		err = p.client.rc.InvokeOneway(ctx, addr, req)
	} else {
		resp, err = p.client.invokeChecked(ctx, addr, req)
	}
	if err != nil {
		return nil, fmt.Errorf("core: %s on %s (%s): %w", what, broker, addr, err)
	}
	return resp, nil
}

// invokeChecked sends req to addr and waits for the answer; an answer other than
// SUCCESS is returned as a *remoting.Error.
func (c *Client) invokeChecked(ctx context.Context, addr string, req *remoting.Command) (*remoting.Command, error) {
	resp, err := c.rc.InvokeSync(ctx, addr, req)
	if err == nil {
		err = remoting.ResponseError(addr, resp)
	}
	return resp, err
}
