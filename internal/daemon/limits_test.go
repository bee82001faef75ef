package daemon

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/producerd/producerd/api/producerdpb"
	"github.com/producerd/producerd/internal/testwait"
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
		req := fmt.Sprintf("POST /v1/messages HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n{", announced)
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

// neverReadingStream opens a SendStream that sends 100-byte messages until the daemon
// stops taking them (or the stream ends) and never reads an ack; sent counts them.
func neverReadingStream(t *testing.T, h *harness, ctx context.Context, sent *atomic.Int64) producerdpb.Ingress_SendStreamClient {
	t.Helper()
	st, err := h.ingress.SendStream(ctx)
	if err != nil {
		t.Fatal(err)
	}
	body := make([]byte, 100)
	go func() {
		for i := 0; ; i++ {
			if st.Send(&producerdpb.StreamRequest{Id: fmt.Sprint(i), Message: &producerdpb.Message{Topic: testTopic, Body: body}}) != nil {
				return
			}
			sent.Add(1)
		}
	}()
	return st
}

// waitStill waits until counter stops moving for a second (the daemon stopped reading
// what the clients send); it is a wait, not an assertion.
func waitStill(t *testing.T, counter *atomic.Int64) {
	t.Helper()
	last, since := counter.Load(), time.Now()
	testwait.Until(30*time.Second, func() bool {
		if cur := counter.Load(); cur != last {
			last, since = cur, time.Now()
		}
		return time.Since(since) >= time.Second
	})
}

// TestStreamsNeverReadingDoNotStarve: five SendStreams that never read their acks must
// not take the in-flight bound from other clients (review defect 3): their messages
// leave the bound when the brokers answer, and only their unwritten acks stay charged.
func TestStreamsNeverReadingDoNotStarve(t *testing.T) {
	c := startCluster(t)
	h := start(t, c, "rr", 8)
	ctx := callCtx(t)
	var sent atomic.Int64
	for range 5 {
		neverReadingStream(t, h, ctx, &sent)
	}
	waitStill(t, &sent)
	// The streams are stalled when nothing of theirs is in flight and their charged
	// acks stop changing; before the fix they kept all 8 slots for ever.
	last, same := int64(-1), 0
	waitFor(t, "the never-reading streams to stall holding no in-flight slot", func() bool {
		m, b := h.d.limit.load()
		if m != 0 || b != last {
			last, same = b, 0
			return false
		}
		same++
		return same >= 100
	})
	t.Logf("%d messages sent on 5 never-reading streams", sent.Load())
	for i := range 20 {
		if _, err := h.ingress.Send(ctx, &producerdpb.SendRequest{Message: &producerdpb.Message{Topic: testTopic, Body: []byte(fmt.Sprint("u", i))}}); err != nil {
			t.Fatalf("unary send %d next to never-reading streams: %v", i, err)
		}
	}
	if code, resp := post(t, "http://"+h.httpAddr+"/v1/messages", `{"topic":"TopicTest","body":"h"}`); code != 200 {
		t.Fatalf("HTTP send next to never-reading streams: %d %s", code, resp)
	}
}

// TestStreamAckTimeout: a stream whose client reads no ack for stream_ack_timeout is
// ended with DEADLINE_EXCEEDED and gives back everything it held (review defect 3).
func TestStreamAckTimeout(t *testing.T) {
	c := startCluster(t)
	h := startText(t, c, configText(c.NameServerAddr(), instanceName(t), "rr", 100)+"\n[limits]\nstream_ack_timeout = \"300ms\"\n")
	ctx := callCtx(t)
	var sent atomic.Int64
	st := neverReadingStream(t, h, ctx, &sent)
	waitFor(t, "the daemon to end the stream", func() bool { return strings.Contains(h.log.String(), "the client read no ack") })
	waitFor(t, "the daemon to give back what the ended stream held", func() bool {
		m, b := h.d.limit.load()
		return m == 0 && b == 0
	})
	acks := 0
	for {
		_, err := st.Recv()
		if err != nil {
			if status.Code(err) != codes.DeadlineExceeded {
				t.Fatalf("the stream ended with %v after %d acks, want DEADLINE_EXCEEDED", err, acks)
			}
			break
		}
		acks++
	}
	t.Logf("%d messages sent, %d acks read before the end", sent.Load(), acks)
}

// TestUnaryExtraMessagesReleased: a client that sends a unary call two or three request
// messages gets INTERNAL (gRPC reads on after the first to check that none follows), as
// does one that sends one and cancels without half-closing, and the first message's
// in-flight charge and buffer go back: repeated, such
// calls would otherwise hold the bound until every request was refused.
func TestUnaryExtraMessagesReleased(t *testing.T) {
	c := startCluster(t)
	h := start(t, c, "rr", 100)
	ctx := callCtx(t)
	cc := h.dial(h.grpcAddr)
	req := &producerdpb.SendRequest{Message: &producerdpb.Message{Topic: testTopic, Body: bytes.Repeat([]byte("x"), 4096)}}
	for _, extra := range []int{1, 2} {
		for i := range 20 {
			cs, err := cc.NewStream(ctx, &grpc.StreamDesc{ClientStreams: true}, "/producerd.v1.Ingress/Send", grpc.ForceCodec(rawCodec{}))
			if err != nil {
				t.Fatal(err)
			}
			for range 1 + extra {
				if err := cs.SendMsg(req); err != nil && !errors.Is(err, io.EOF) {
					t.Fatal(err)
				}
			}
			if err := cs.CloseSend(); err != nil {
				t.Fatal(err)
			}
			err = cs.RecvMsg(&producerdpb.SendResponse{})
			if c := status.Code(err); c != codes.Internal {
				t.Fatalf("call %d with %d extra messages: %v, want INTERNAL", i, extra, err)
			}
		}
	}
	waitFor(t, "the extra messages' charges released", func() bool { m, b := h.d.limit.load(); return m == 0 && b == 0 })
	for i := range 20 {
		cctx, cancel := context.WithCancel(ctx)
		cs, err := cc.NewStream(cctx, &grpc.StreamDesc{ClientStreams: true}, "/producerd.v1.Ingress/Send", grpc.ForceCodec(rawCodec{}))
		if err != nil {
			t.Fatal(err)
		}
		if err := cs.SendMsg(req); err != nil {
			t.Fatal(err)
		}
		// The daemon charged the message and waits to see whether another follows.
		waitFor(t, "the message charged", func() bool { _, b := h.d.limit.load(); return b > 0 })
		cancel()
		if err := cs.RecvMsg(&producerdpb.SendResponse{}); status.Code(err) != codes.Canceled {
			t.Fatalf("cancelled call %d: %v, want CANCELED", i, err)
		}
		waitFor(t, "the cancelled call's charge released", func() bool { m, b := h.d.limit.load(); return m == 0 && b == 0 })
	}
	if _, err := h.ingress.Send(ctx, req); err != nil {
		t.Fatalf("a good send after the bad calls: %v", err)
	}
}
