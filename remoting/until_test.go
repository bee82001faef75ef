package remoting

import (
	"bytes"
	"context"
	"errors"
	"net"
	"testing"
	"time"
)

// Fields and ExtFields with the same entries encode to the same bytes in both encodings.
func TestFieldsEncodeLikeExtFields(t *testing.T) {
	t.Parallel()
	ext := map[string]string{"a": "pg", "b": "T", "i": "KEYS\x01k\x02", "n": "broker-a", "bornTimestamp": "1700000000000"}
	fields := []Field{{"a", "pg"}, {"b", "T"}, {"bornTimestamp", "1700000000000"}, {"i", "KEYS\x01k\x02"}, {"n", "broker-a"}}
	for _, st := range []SerializeType{JSON, RocketMQ} {
		t.Run(st.String(), func(t *testing.T) {
			t.Parallel()
			want, err := AppendFrame(nil, &Command{Code: 310, Opaque: 7, ExtFields: ext, Body: []byte("x")}, st)
			if err != nil {
				t.Fatal(err)
			}
			got, err := AppendFrame(nil, &Command{Code: 310, Opaque: 7, Fields: fields, Body: []byte("x")}, st)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, want) {
				t.Fatalf("Fields encode as\n%q\nExtFields as\n%q", got, want)
			}
			dec, err := DecodeFrame(got[4:])
			if err != nil || dec.ExtFields["i"] != "KEYS\x01k\x02" || len(dec.ExtFields) != len(ext) || dec.Fields != nil {
				t.Fatalf("decoded %+v, %v", dec, err)
			}
		})
	}
}

// Signing a request given as Fields signs and sends the same fields as the map form.
func TestSignFields(t *testing.T) {
	t.Parallel()
	cred := &Credentials{AccessKey: "ak", SecretKey: "sk"}
	body := []byte("b")
	m := cred.sign(&Command{Code: 310, ExtFields: map[string]string{"a": "pg", "b": "T"}, Body: body})
	f := cred.sign(&Command{Code: 310, Fields: []Field{{"a", "pg"}, {"b", "T"}}, Body: body})
	if f.Fields != nil || len(f.ExtFields) != len(m.ExtFields) || f.ExtFields[extSignature] != m.ExtFields[extSignature] {
		t.Fatalf("signed Fields %v, signed map %v", f.ExtFields, m.ExtFields)
	}
}

func TestInvokeSyncUntil(t *testing.T) {
	t.Parallel()
	srv := startServer(t, silent)
	c := newClient(t, Config{})
	req := NewRequest(SendMessageV2, nil, []byte("x"))

	t.Run("deadline before ctx's", func(t *testing.T) {
		_, err := c.InvokeSyncUntil(ctxTimeout(t, time.Minute), srv.addr, req, time.Now().Add(50*time.Millisecond), nil)
		if !errors.Is(err, ErrTimeout) || !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("err = %v, want ErrTimeout", err)
		}
	})
	t.Run("deadline passed", func(t *testing.T) {
		_, err := c.InvokeSyncUntil(context.Background(), srv.addr, req, time.Now().Add(-time.Millisecond), nil)
		if !errors.Is(err, ErrTimeout) {
			t.Fatalf("err = %v, want ErrTimeout", err)
		}
	})
	t.Run("abort", func(t *testing.T) {
		abort := make(chan struct{}, 1)
		done := make(chan error, 1)
		go func() {
			_, err := c.InvokeSyncUntil(context.Background(), srv.addr, req, time.Now().Add(time.Minute), abort)
			done <- err
		}()
		abort <- struct{}{}
		err := recv(t, done, "aborted call")
		if !errors.Is(err, context.Canceled) || errors.Is(err, ErrTimeout) {
			t.Fatalf("err = %v, want context.Canceled", err)
		}
	})
	t.Run("pooled timer reused", func(t *testing.T) {
		// The call's timer is reused: a later call with a later deadline must not fire early.
		for range 3 {
			start := time.Now()
			_, err := c.InvokeSyncUntil(context.Background(), srv.addr, req, start.Add(30*time.Millisecond), nil)
			if !errors.Is(err, ErrTimeout) || time.Since(start) < 30*time.Millisecond {
				t.Fatalf("err = %v after %v", err, time.Since(start))
			}
		}
	})
}

// A deadline later than DefaultTimeout is the request's deadline: DefaultTimeout applies
// only when neither the context nor the caller gives one (an api_timeout or send
// timeout above it was cut to it).
func TestUntilDeadlineReplacesDefaultTimeout(t *testing.T) {
	t.Parallel()
	const def = 20 * time.Millisecond
	srv := startServer(t, func(fc *fakeConn) {
		for {
			req, err := fc.read()
			if err != nil {
				return
			}
			<-time.After(5 * def) // an answer slower than DefaultTimeout, by design
			if fc.send(echoResponse(req), req.Serialize) != nil {
				return
			}
		}
	})
	c := newClient(t, Config{DefaultTimeout: def})
	c.SetNameServers([]string{srv.addr})
	req := NewRequest(GetRouteInfoByTopic, map[string]string{"topic": "T"}, nil)
	later := func() time.Time { return time.Now().Add(time.Minute) }
	if _, err := c.InvokeSyncUntil(context.Background(), srv.addr, req, later(), nil); err != nil {
		t.Errorf("sync: %v", err)
	}
	if _, _, err := c.InvokeNameServerUntil(context.Background(), req, later()); err != nil {
		t.Errorf("name server: %v", err)
	}
	done := make(chan error, 1)
	if err := c.InvokeAsyncUntil(context.Background(), srv.addr, req, later(), func(_ *Command, err error) { done <- err }); err != nil {
		t.Fatal(err)
	}
	if err := recv(t, done, "async answer"); err != nil {
		t.Errorf("async: %v", err)
	}
	// Neither: DefaultTimeout (against a server that never answers, so that a slow
	// machine cannot let a late answer win).
	quiet := startServer(t, silent)
	if _, err := c.InvokeSyncUntil(context.Background(), quiet.addr, req, time.Time{}, nil); !errors.Is(err, ErrTimeout) {
		t.Errorf("without a deadline: %v, want ErrTimeout after DefaultTimeout", err)
	}
}

// The request's deadline ends the wait for a dial in progress, as a context's does.
func TestUntilDeadlineEndsDialWait(t *testing.T) {
	t.Parallel()
	release := make(chan struct{})
	t.Cleanup(func() { close(release) })
	c := newClient(t, Config{ConnectTimeout: time.Hour, Dialer: func(ctx context.Context, _, _ string) (net.Conn, error) {
		select { // a dial that never completes
		case <-release:
		case <-ctx.Done():
		}
		return nil, errors.New("dial released")
	}})
	done := make(chan error, 1)
	go func() {
		_, err := c.InvokeSyncUntil(context.Background(), "127.0.0.1:1", NewRequest(SendMessageV2, nil, nil), time.Now().Add(50*time.Millisecond), nil)
		done <- err
	}()
	if err := recv(t, done, "the call past its deadline"); !errors.Is(err, ErrConnect) || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("err = %v, want ErrConnect wrapping context.DeadlineExceeded", err)
	}
}
