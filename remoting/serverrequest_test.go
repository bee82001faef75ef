package remoting

import (
	"testing"
	"time"
)

// TestOnServerRequest: a oneway request from the server (a broker's
// CHECK_TRANSACTION_STATE) reaches Config.OnServerRequest with the connection's address,
// header and body, and gets no answer; requests that expect one are still answered.
func TestOnServerRequest(t *testing.T) {
	t.Parallel()
	replies := make(chan *Command, 2)
	srv := startServer(t, func(fc *fakeConn) {
		req, err := fc.read()
		if err != nil {
			return
		}
		fc.send(&Command{Code: int32(CheckTransactionState), Opaque: 7, Flag: FlagOneway,
			ExtFields: map[string]string{"commitLogOffset": "42"}, Body: []byte("half")}, RocketMQ)
		fc.send(&Command{Code: int32(NotifyConsumerIDsChanged), Opaque: 8}, JSON)
		reply, err := fc.read() // the answer to 8 only: nothing answers the oneway 7
		if err != nil {
			return
		}
		replies <- reply
		fc.send(echoResponse(req), JSON)
		echo(fc)
	})
	type got struct {
		addr string
		req  *Command
	}
	seen := make(chan got, 2)
	c := newClient(t, Config{OnServerRequest: func(addr string, req *Command) { seen <- got{addr, req} }})
	if _, err := c.InvokeSync(ctxTimeout(t, 10*time.Second), srv.addr, NewRequest(HeartBeat, nil, nil)); err != nil {
		t.Fatal(err)
	}
	g := recv(t, seen, "the server request")
	if g.addr != srv.addr || g.req.RequestCode() != CheckTransactionState || g.req.ExtFields["commitLogOffset"] != "42" || string(g.req.Body) != "half" {
		t.Errorf("hook got %s %+v, want %s CHECK_TRANSACTION_STATE with its header and body", g.addr, *g.req, srv.addr)
	}
	if r := recv(t, replies, "the reply"); r.Opaque != 8 || r.ResponseCode() != RequestCodeNotSupported {
		t.Errorf("reply %+v, want the answer to opaque 8 (code 3)", *r)
	}
	select {
	case g := <-seen:
		t.Errorf("hook got a request that expects an answer: %+v", *g.req)
	default:
	}
}
