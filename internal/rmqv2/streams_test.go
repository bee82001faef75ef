package rmqv2

import (
	"bufio"
	"context"
	"encoding/binary"
	"io"
	"net"
	"runtime"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc"

	pb "github.com/producerd/producerd/api/rmqv2"
	"github.com/producerd/producerd/internal/testwait"
)

// HTTP/2 frame types and codes the raw client below uses (RFC 9113).
const (
	h2Data         = 0x0
	h2Headers      = 0x1
	h2RSTStream    = 0x3
	h2Settings     = 0x4
	h2EndHeaders   = 0x4
	h2MaxStreams   = 0x3 // SETTINGS_MAX_CONCURRENT_STREAMS
	h2RefusedCode  = 0x7 // REFUSED_STREAM
	h2ClientPrefix = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
)

// h2Frame appends one HTTP/2 frame.
func h2Frame(dst []byte, typ, flags byte, stream uint32, payload []byte) []byte {
	n := len(payload)
	dst = append(dst, byte(n>>16), byte(n>>8), byte(n), typ, flags)
	dst = binary.BigEndian.AppendUint32(dst, stream)
	return append(dst, payload...)
}

// hpackLiteral appends a header as an HPACK literal without indexing (names and values
// under 127 bytes, no Huffman coding).
func hpackLiteral(dst []byte, name, value string) []byte {
	dst = append(dst, 0x00, byte(len(name)))
	dst = append(dst, name...)
	dst = append(dst, byte(len(value)))
	return append(dst, value...)
}

// TestHostileStreamsPerConnectionAreBounded: a client that ignores the server's
// SETTINGS_MAX_CONCURRENT_STREAMS and opens many SendMessage calls on one connection,
// each announcing a 1 MiB request it never finishes, gets the calls past
// Options.MaxStreamsPerConn (and the Telemetry streams' share) reset with REFUSED_STREAM:
// the service holds no more calls (and their partial requests, goroutines) than the
// bound per connection.
func TestHostileStreamsPerConnectionAreBounded(t *testing.T) {
	const calls, opened = 8, 200
	const limit = calls + maxTelemetryPerConn // the Telemetry streams come on top
	_, addr := listen(t, Options{Sender: &countingSender{}, MaxStreamsPerConn: calls})
	before := runtime.NumGoroutine()
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(10 * time.Second))

	out := append([]byte(h2ClientPrefix), h2Frame(nil, h2Settings, 0, 0, nil)...)
	var hdr []byte
	for _, h := range [][2]string{{":method", "POST"}, {":scheme", "http"}, {":authority", "producerd"},
		{":path", "/apache.rocketmq.v2.MessagingService/SendMessage"}, {"content-type", "application/grpc"},
		{"te", "trailers"}, {"x-mq-client-id", "hostile@1"}} {
		hdr = hpackLiteral(hdr, h[0], h[1])
	}
	// A gRPC message prefix announcing 1 MiB, and 1 KiB of it: the call waits for the rest.
	data := binary.BigEndian.AppendUint32([]byte{0}, 1<<20)
	data = append(data, make([]byte, 1<<10)...)
	for i := range opened {
		id := uint32(2*i + 1)
		out = h2Frame(out, h2Headers, h2EndHeaders, id, hdr)
		out = h2Frame(out, h2Data, 0, id, data)
	}
	go func() { _, _ = conn.Write(out) }()

	r := bufio.NewReader(conn)
	announced, refused := uint32(0), 0
	for refused < opened-limit {
		var fh [9]byte
		if _, err := io.ReadFull(r, fh[:]); err != nil {
			t.Fatalf("after %d refused streams (want %d): %v", refused, opened-limit, err)
		}
		payload := make([]byte, int(fh[0])<<16|int(fh[1])<<8|int(fh[2]))
		if _, err := io.ReadFull(r, payload); err != nil {
			t.Fatal(err)
		}
		switch fh[3] {
		case h2Settings:
			for p := payload; len(p) >= 6; p = p[6:] {
				if binary.BigEndian.Uint16(p) == h2MaxStreams {
					announced = binary.BigEndian.Uint32(p[2:])
				}
			}
		case h2RSTStream:
			if code := binary.BigEndian.Uint32(payload); code != h2RefusedCode {
				t.Fatalf("stream %d reset with code %d, want REFUSED_STREAM", binary.BigEndian.Uint32(fh[5:])&0x7fffffff, code)
			}
			refused++
		}
	}
	if announced != limit {
		t.Errorf("SETTINGS_MAX_CONCURRENT_STREAMS = %d, want %d", announced, limit)
	}
	// Each call the server holds is a goroutine (and its partial request); without the
	// bound all 200 were held.
	if n := runtime.NumGoroutine() - before; n > limit+20 {
		t.Errorf("%d more goroutines with %d calls opened on one connection; the bound is %d calls", n, opened, limit)
	}
}

// readCounter is a listener whose connections count the bytes the server has read off
// them: what a client got past the server's flow-control windows.
type readCounter struct {
	net.Listener
	n *atomic.Int64
}

func (l readCounter) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return countedConn{c, l.n}, nil
}

type countedConn struct {
	net.Conn
	n *atomic.Int64
}

func (c countedConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	c.n.Add(int64(n))
	return n, err
}

// TestRecvGateComesBeforeTheRequest: with Options.RecvGate every unary call receives its
// request only in its turn (gRPC would otherwise buffer every open call's request at
// once). A SendMessage of a 1 MiB request waiting at a closed gate has got no more of it
// to the server than its stream's flow-control window (256 KiB): the server has not
// read the request, so it has returned none of the window and the client is held by
// HTTP/2 flow control. Were the request received before the gate, the whole 1 MiB would
// have been read by the time the gate was waited for. Once the gate opens the rest
// arrives and the call is sent; the turn ends when the request is received.
func TestRecvGateComesBeforeTheRequest(t *testing.T) {
	t.Parallel()
	const window, body = 256 << 10, 1 << 20 // the stream window of ServerOptions; the request's body
	open := make(chan struct{})
	entered := make(chan struct{}, 8)
	var turns, released atomic.Int64
	gate := func(ctx context.Context) (func(), error) {
		entered <- struct{}{}
		select {
		case <-open:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
		turns.Add(1)
		return func() { released.Add(1) }, nil
	}
	sender := &countingSender{}
	svc, err := New(Options{Sender: sender, RecvGate: gate})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var read atomic.Int64
	gs := grpc.NewServer(svc.ServerOptions()...)
	svc.Register(gs)
	go func() { _ = gs.Serve(readCounter{ln, &read}) }()
	t.Cleanup(func() { svc.Close(); gs.Stop() })
	client := pb.NewMessagingServiceClient(dial(t, ln.Addr().String()))

	m := msg("gated")
	m.Body = make([]byte, body)
	done := make(chan *pb.SendMessageResponse, 1)
	go func() {
		resp, _ := client.SendMessage(call(t), &pb.SendMessageRequest{Messages: []*pb.Message{m}})
		done <- resp
	}()
	<-entered
	if n := read.Load(); n >= body {
		t.Fatalf("%d bytes read off the connection when the call waited for its turn; the request was received before the gate", n)
	}
	// The client sends what the window lets it; the server returns none of it until the
	// request is read, so the client stops there.
	testwait.For(t, 10*time.Second, "the client to fill the stream's window", func() bool { return read.Load() >= window })
	if n := read.Load(); n >= body {
		t.Fatalf("%d bytes read off the connection while the call waits for its turn, past the %d-byte window", n, window)
	}
	if n := sender.msgs.Load(); n != 0 {
		t.Fatalf("%d messages sent before the call's turn to receive", n)
	}
	close(open)
	if resp := <-done; resp.GetStatus().GetCode() != pb.Code_OK || sender.msgs.Load() != 1 {
		t.Fatalf("after the gate opened: %v, %d sent", resp.GetStatus(), sender.msgs.Load())
	}
	if n := read.Load(); n < body {
		t.Fatalf("the call was answered with %d bytes read off the connection, less than its %d-byte body", n, body)
	}
	if r, err := client.Heartbeat(call(t), &pb.HeartbeatRequest{ClientType: pb.ClientType_PRODUCER}); err != nil || r.GetStatus().GetCode() != pb.Code_OK {
		t.Fatalf("heartbeat behind the gate: %v %v", r.GetStatus(), err)
	}
	if r, err := client.NotifyClientTermination(call(t), &pb.NotifyClientTerminationRequest{}); err != nil || r.GetStatus().GetCode() != pb.Code_OK {
		t.Fatalf("termination behind the gate: %v %v", r.GetStatus(), err)
	}
	if turns.Load() != 3 || released.Load() != 3 {
		t.Errorf("%d turns taken, %d released; want 3 and 3 (one per call)", turns.Load(), released.Load())
	}
}
