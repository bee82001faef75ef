package daemon

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/producerd/producerd/api/producerdpb"
)

// TestHTTPHeaderOnlyBodiesChargeWhatArrived: clients that announce a Content-Length of
// ~8 MiB and send one byte must not reserve the in-flight bytes (review defect 4):
// eight of them would hold the whole 64 MiB budget and every other send would get 429
// until read_timeout.
func TestHTTPHeaderOnlyBodiesChargeWhatArrived(t *testing.T) {
	c := startCluster(t)
	h := start(t, c, "rr", 100)
	const conns, announced = 8, 8388600
	for range conns {
		conn, err := net.Dial("tcp", h.httpAddr)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { conn.Close() })
		req := fmt.Sprintf("POST /v1/messages HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n{", announced)
		if _, err := conn.Write([]byte(req)); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, "the daemon to read the first bytes", func() bool { _, b := h.d.limit.load(); return b >= conns })
	if _, b := h.d.limit.load(); b > conns*4096 {
		t.Fatalf("%d in-flight bytes charged for %d requests that sent one byte each", b, conns)
	}
	body := strings.Repeat("x", 20<<10)
	for i := range 5 {
		code, resp := post(t, "http://"+h.httpAddr+"/v1/messages", `{"topic":"TopicTest","body":"`+body+`"}`)
		if code != 200 {
			t.Fatalf("send %d next to stalled bodies: %d %s", i, code, resp)
		}
	}
}

// TestGRPCIdleConnectionsClosed: HTTP/2 connections that finish the handshake and never
// start a call must not hold the gRPC ingress's max_connections slots for ever (review
// defect 5): the daemon closes them after idle_timeout and a real client gets in.
func TestGRPCIdleConnectionsClosed(t *testing.T) {
	c := startCluster(t)
	h := startText(t, c, httpConfig(c.NameServerAddr(), instanceName(t), "max_connections = 2\nidle_timeout = \"300ms\""))
	preface := "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + "\x00\x00\x00\x04\x00\x00\x00\x00\x00" // + empty SETTINGS
	closed := make(chan error, 2)
	for range 2 {
		conn, err := net.Dial("tcp", h.grpcAddr)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { conn.Close() })
		if _, err := conn.Write([]byte(preface)); err != nil {
			t.Fatal(err)
		}
		go func() {
			// Read (and never answer) until the daemon closes the connection; the deadline
			// only keeps the test from hanging when it does not.
			_ = conn.SetReadDeadline(time.Now().Add(20 * time.Second))
			_, err := io.Copy(io.Discard, conn)
			closed <- err
		}()
	}
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	if _, err := h.ingress.Send(ctx, &producerdpb.SendRequest{Message: &producerdpb.Message{Topic: testTopic, Body: []byte("x")}}); err != nil {
		t.Fatalf("send with max_connections idle HTTP/2 connections open: %v", err)
	}
	for range 2 {
		var ne net.Error
		if err := <-closed; errors.As(err, &ne) && ne.Timeout() {
			t.Fatal("the daemon kept an idle HTTP/2 connection open")
		}
	}
}
