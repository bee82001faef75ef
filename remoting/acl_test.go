package remoting

import (
	"bytes"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"
)

// The expected signatures were printed by the Java client's own AclClientRPCHook
// (rocketmq-client 5.3.3, doBeforeRequest on a RemotingCommand with these ext fields).
func TestSignatureMatchesJava(t *testing.T) {
	t.Parallel()
	route := (&Credentials{AccessKey: "RocketMQ", SecretKey: "12345678"}).sign(
		NewRequest(GetRouteInfoByTopic, map[string]string{"topic": "TopicTest"}, nil))
	if got := route.ExtFields["Signature"]; got != "0jiwhsaYp5ObE5GObbZH1I8/FT4=" {
		t.Errorf("route signature %s", got)
	}
	orig := NewRequest(SendMessageV2, map[string]string{"a": "grp", "b": "Té", "i": "KEYS\x01k\x02"}, []byte("héllo"))
	send := (&Credentials{AccessKey: "ak", SecretKey: "sécret", SecurityToken: "tok123"}).sign(orig)
	if got := send.ExtFields["Signature"]; got != "kbf4i1COJgI9AkGwirngzQgxJZg=" {
		t.Errorf("send signature %s", got)
	}
	if send.ExtFields["AccessKey"] != "ak" || send.ExtFields["SecurityToken"] != "tok123" || len(send.ExtFields) != 6 {
		t.Errorf("signed ext fields %q", send.ExtFields)
	}
	if len(orig.ExtFields) != 3 {
		t.Errorf("the caller's request was modified: %q", orig.ExtFields)
	}
	// Signing a signed request again ignores the old Signature.
	if again := (&Credentials{AccessKey: "ak", SecretKey: "sécret", SecurityToken: "tok123"}).sign(send); again.ExtFields["Signature"] != send.ExtFields["Signature"] {
		t.Errorf("re-signing changed the signature")
	}
}

// TestSignedOnTheWire: with Credentials every request reaches the server signed, and the
// secret is nowhere in the frame.
func TestSignedOnTheWire(t *testing.T) {
	t.Parallel()
	got := make(chan *Command, 1)
	srv := startServer(t, func(fc *fakeConn) {
		req, err := fc.read()
		if err != nil {
			return
		}
		got <- req
		_ = fc.send(echoResponse(req), req.Serialize)
	})
	defer srv.close()
	for _, st := range []SerializeType{JSON, RocketMQ} {
		creds := &Credentials{AccessKey: "ak", SecretKey: "top-secret-value"}
		c := newClient(t, Config{Credentials: creds, Serialize: st})
		if _, err := c.InvokeSync(ctxTimeout(t, 5*time.Second), srv.addr, NewRequest(GetRouteInfoByTopic, map[string]string{"topic": "T"}, nil)); err != nil {
			t.Fatal(err)
		}
		req := recv(t, got, "the signed request")
		if req.ExtFields["AccessKey"] != "ak" || req.ExtFields["Signature"] != Signature("top-secret-value", req.ExtFields, req.Body) {
			t.Errorf("%v: request not signed as expected: %q", st, req.ExtFields)
		}
		if strings.Contains(fmt.Sprint(req.ExtFields), "top-secret-value") {
			t.Errorf("%v: the secret is in the request", st)
		}
	}
}

func TestCredentialsRedacted(t *testing.T) {
	t.Parallel()
	c := Credentials{AccessKey: "ak", SecretKey: "top-secret-value", SecurityToken: "tok-secret"}
	var buf bytes.Buffer
	slog.New(slog.NewJSONHandler(&buf, nil)).Info("x", "creds", c, "ptr", &c)
	cfg := Config{Credentials: &c}
	for _, s := range []string{fmt.Sprint(c), fmt.Sprintf("%+v", c), fmt.Sprintf("%#v", c), fmt.Sprintf("%+v", &c), fmt.Sprintf("%+v", cfg), buf.String()} {
		if strings.Contains(s, "top-secret-value") || strings.Contains(s, "tok-secret") {
			t.Errorf("secret printed: %s", s)
		}
	}
}
