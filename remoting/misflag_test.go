package remoting

import (
	"errors"
	"strings"
	"testing"
	"time"
)

// An answer frame without the response flag, on the opaque of a pending request, fails
// that request at once with a clear ErrBadFrame, sync and async, instead of leaving it to
// time out as "no response".
func TestMisflaggedResponse(t *testing.T) {
	t.Parallel()
	srv := startServer(t, func(fc *fakeConn) {
		for {
			req, err := fc.read()
			if err != nil {
				return
			}
			resp := echoResponse(req)
			resp.Flag = 0 // the bug under test
			if fc.send(resp, req.Serialize) != nil {
				return
			}
		}
	})
	c := newClient(t, Config{})
	_, err := c.InvokeSync(ctxTimeout(t, 5*time.Second), srv.addr, NewRequest(HeartBeat, nil, nil))
	if !errors.Is(err, ErrBadFrame) || !strings.Contains(err.Error(), "not flagged as a response") || errors.Is(err, ErrTimeout) {
		t.Fatalf("sync: %v; want ErrBadFrame naming the missing response flag", err)
	}
	done := make(chan error, 1)
	if err := c.InvokeAsync(ctxTimeout(t, 5*time.Second), srv.addr, NewRequest(HeartBeat, nil, nil), func(_ *Command, err error) { done <- err }); err != nil {
		t.Fatal(err)
	}
	if err := recv(t, done, "the async callback"); !errors.Is(err, ErrBadFrame) {
		t.Fatalf("async: %v; want ErrBadFrame", err)
	}
}
