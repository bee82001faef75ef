package daemon

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/producerd/producerd/core"
)

// httpCases is the regression corpus of the HTTP decoder: what it must refuse and
// what it must accept (finding 4 and 9).
var httpCases = []struct {
	name, body string
	ok         bool
}{
	{"one message", `{"topic":"T","body":"x"}`, true},
	{"trailing white space", "{\"topic\":\"T\",\"body\":\"x\"}\n\t ", true},
	{"batch", `{"topic":"T","messages":[{"body":"a"},{"body":"b"}]}`, true},
	{"two objects", `{"topic":"T","body":"a"}{"topic":"T","body":"b"}`, false},
	{"two objects with a newline", "{\"topic\":\"T\",\"body\":\"a\"}\n{\"topic\":\"T\",\"body\":\"b\"}", false},
	{"trailing garbage", `{"topic":"T","body":"x"} garbage`, false},
	{"trailing bracket", `{"topic":"T","body":"x"}]`, false},
	{"unknown field", `{"topic":"T","body":"x","priority":1}`, false},
	{"unknown field in a batch message", `{"topic":"T","messages":[{"body":"a","ttl":3}]}`, false},
	{"not an object", `["T","x"]`, false},
	{"empty", ``, false},
	{"invalid UTF-8 in a property", "{\"topic\":\"T\",\"body\":\"x\",\"properties\":{\"k\":\"\xff\xfe\"}}", false},
	{"invalid UTF-8 in the body", "{\"topic\":\"T\",\"body\":\"\xc3\x28\"}", false},
	{"null", `null`, true}, // decodes to an empty request, refused later as a message without body
}

func TestDecodeHTTPRequest(t *testing.T) {
	t.Parallel()
	for _, tc := range httpCases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			_, err := decodeHTTPRequest([]byte(tc.body))
			if (err == nil) != tc.ok {
				t.Fatalf("decode(%q) = %v, want ok=%v", tc.body, err, tc.ok)
			}
			if err != nil && !errors.Is(err, core.ErrInvalidMessage) {
				t.Fatalf("error %v is not ErrInvalidMessage", err)
			}
		})
	}
}

// FuzzDecodeHTTPRequest: whatever the body, the decoder does not panic, and what it
// accepts is exactly one valid JSON value.
func FuzzDecodeHTTPRequest(f *testing.F) {
	for _, tc := range httpCases {
		f.Add([]byte(tc.body))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		req, err := decodeHTTPRequest(body)
		if err != nil {
			return
		}
		if !json.Valid(body) {
			t.Fatalf("accepted %q, which is not one JSON value", body)
		}
		if req.Messages == nil {
			_, _ = req.toPB()
		}
	})
}

func httpConfig(ns, instance, limits string) string {
	return fmt.Sprintf(`
[daemon]
max_inflight_bytes = "16MiB"

[ingress]
grpc = "127.0.0.1:0"
http = "127.0.0.1:0"

[admin]
listen = "127.0.0.1:0"
token = %q

[client]
name_servers = [%q]
instance_name = %q

[limits]
%s

[[producer]]
group = "g1"
strategy = "roundrobin"
max_message_size = "64KiB"
`, testToken, ns, instance, limits)
}

func post(t *testing.T, url, body string) (int, string) {
	t.Helper()
	resp, err := http.Post(url, "application/json", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// TestHTTPStrict: against the daemon, concatenated objects and trailing garbage are
// refused and nothing is stored; bodies over max_request_size are refused before they
// are read, with and without a Content-Length; validation refuses delay level 19, an
// unknown mode and a batch larger than max_inflight_messages (findings 2, 4, 9).
func TestHTTPStrict(t *testing.T) {
	c := startCluster(t)
	h := startText(t, c, httpConfig(c.NameServerAddr(), instanceName(t), `max_request_size = "200KiB"`))
	url := "http://" + h.httpAddr + "/v1/messages"
	for _, tc := range []struct {
		name, body string
		code       int
	}{
		{"two objects", `{"topic":"TopicTest","body":"first"}{"topic":"TopicTest","body":"second"}`, 400},
		{"trailing garbage", `{"topic":"TopicTest","body":"first"}xx`, 400},
		{"delay level 19", `{"topic":"TopicTest","body":"x","delay_level":19}`, 400},
		{"delay level 100", `{"topic":"TopicTest","body":"x","delay_level":100}`, 400},
		{"unknown mode", `{"topic":"TopicTest","body":"x","mode":"async"}`, 400},
		{"too large", `{"topic":"TopicTest","body":"` + strings.Repeat("x", 300<<10) + `"}`, 413},
	} {
		code, body := post(t, url, tc.body)
		if code != tc.code {
			t.Errorf("%s: HTTP %d %s, want %d", tc.name, code, body, tc.code)
		}
	}
	if n := len(stored(c, testTopic)); n != 0 {
		t.Fatalf("%d messages stored from refused requests", n)
	}
	// Chunked (no Content-Length): cut at the limit.
	pr, pw := io.Pipe()
	go func() {
		_, _ = pw.Write([]byte(`{"topic":"TopicTest","body":"`))
		for range 400 {
			if _, err := pw.Write([]byte(strings.Repeat("y", 1024))); err != nil {
				return
			}
		}
		_ = pw.Close()
	}()
	resp, err := http.Post(url, "application/json", pr)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	_ = pr.Close()
	if resp.StatusCode != http.StatusRequestEntityTooLarge {
		t.Errorf("chunked over the limit: HTTP %d", resp.StatusCode)
	}
	waitFor(t, "the body charges released", func() bool { m, b := h.d.limit.load(); return m == 0 && b == 0 })
	if code, body := post(t, url, `{"topic":"TopicTest","body":"ok"}`); code != 200 {
		t.Fatalf("a good message: %d %s", code, body)
	}
}

// TestHTTPBatchOverBound: a batch that can never fit the in-flight bound is a
// permanent error (400), not "retry later" (finding 9).
func TestHTTPBatchOverBound(t *testing.T) {
	c := startCluster(t)
	h := start(t, c, "rr", 2)
	code, body := post(t, "http://"+h.httpAddr+"/v1/messages", `{"topic":"TopicTest","messages":[{"body":"a"},{"body":"b"},{"body":"c"}]}`)
	if code != http.StatusBadRequest || !strings.Contains(body, "max_inflight_messages") {
		t.Fatalf("HTTP %d %s, want 400 naming max_inflight_messages", code, body)
	}
}

// TestHTTPSlowBody: a client that sends headers and part of a body and then stalls is
// cut off by read_timeout (finding 5).
func TestHTTPSlowBody(t *testing.T) {
	c := startCluster(t)
	h := startText(t, c, httpConfig(c.NameServerAddr(), instanceName(t), `read_timeout = "300ms"`+"\n"+`read_header_timeout = "300ms"`))
	for _, partial := range []string{
		"POST /v1/messages HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{\"topic\"",
		"POST /v1/messages HTTP/1.1\r\nHost: x\r\n", // stalls in the headers
	} {
		conn, err := net.Dial("tcp", h.httpAddr)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := conn.Write([]byte(partial)); err != nil {
			t.Fatal(err)
		}
		// The daemon must close the connection; a deadline far above read_timeout keeps
		// the test from hanging if it does not.
		_ = conn.SetReadDeadline(time.Now().Add(20 * time.Second))
		_, err = io.Copy(io.Discard, bufio.NewReader(conn))
		conn.Close()
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			t.Fatalf("the daemon kept a stalled request open (%q)", partial[:20])
		}
	}
}

// fakeListener hands out the connections sent on conns.
type fakeListener struct {
	conns  chan net.Conn
	closed chan struct{}
}

func (l *fakeListener) Accept() (net.Conn, error) {
	select {
	case c := <-l.conns:
		return c, nil
	case <-l.closed:
		return nil, net.ErrClosed
	}
}
func (l *fakeListener) Close() error   { close(l.closed); return nil }
func (l *fakeListener) Addr() net.Addr { return &net.TCPAddr{} }

// TestLimitListener: past max_connections Accept waits until a connection closes
// (finding 5).
func TestLimitListener(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		fl := &fakeListener{conns: make(chan net.Conn, 3), closed: make(chan struct{})}
		ln := newLimitListener(fl, 2)
		for range 3 {
			a, _ := net.Pipe()
			fl.conns <- a
		}
		c1, err := ln.Accept()
		if err != nil {
			t.Fatal(err)
		}
		if _, err := ln.Accept(); err != nil {
			t.Fatal(err)
		}
		third := make(chan net.Conn, 1)
		go func() {
			c, _ := ln.Accept()
			third <- c
		}()
		synctest.Wait()
		select {
		case <-third:
			t.Fatal("a third connection was accepted with a limit of 2")
		default:
		}
		_ = c1.Close()
		_ = c1.Close() // a second Close frees nothing more
		synctest.Wait()
		if c := <-third; c == nil {
			t.Fatal("the third connection was not accepted after one closed")
		}
		_ = ln.Close()
		_ = context.Background()
	})
}
