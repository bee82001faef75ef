package daemon

import (
	"context"
	"encoding/binary"
	"io"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/producerd/producerd/api/producerdpb"
	"github.com/producerd/producerd/internal/config"
)

// fakeStream is a SendStream server stream fed from frames; it records the acks.
type fakeStream struct {
	ctx    context.Context
	frames [][]byte
	acks   []*producerdpb.StreamAck
}

func (f *fakeStream) Send(a *producerdpb.StreamAck) error { f.acks = append(f.acks, a); return nil }
func (f *fakeStream) Recv() (*producerdpb.StreamRequest, error) {
	panic("the stream reader must decode frames itself (RecvMsg)")
}
func (f *fakeStream) RecvMsg(m any) error {
	if len(f.frames) == 0 {
		return io.EOF
	}
	m.(*streamFrame).b = f.frames[0]
	f.frames = f.frames[1:]
	return nil
}
func (f *fakeStream) SendMsg(any) error            { return nil }
func (f *fakeStream) SetHeader(metadata.MD) error  { return nil }
func (f *fakeStream) SendHeader(metadata.MD) error { return nil }
func (f *fakeStream) SetTrailer(metadata.MD)       {}
func (f *fakeStream) Context() context.Context     { return f.ctx }

// splitFrames cuts fuzz input into frames: a 1-byte length, then that many bytes.
func splitFrames(data []byte) [][]byte {
	var out [][]byte
	for len(data) > 0 {
		n := min(int(data[0]), len(data)-1)
		out = append(out, data[1:1+n])
		data = data[1+n:]
	}
	return out
}

func frameSeed(reqs ...*producerdpb.StreamRequest) []byte {
	var out []byte
	for _, r := range reqs {
		b, _ := proto.Marshal(r)
		out = append(out, byte(len(b)))
		out = append(out, b...)
	}
	return out
}

// FuzzStreamHandler: whatever frames a client sends, the stream handler does not
// panic, answers every frame that decodes with exactly one ack, stops at the first
// frame that does not decode and then ends with INVALID_ARGUMENT. The daemon has no
// producer group, so nothing is sent (every message is refused with an ack).
func FuzzStreamHandler(f *testing.F) {
	f.Add(frameSeed(&producerdpb.StreamRequest{Id: "1", Message: &producerdpb.Message{Topic: "T", Body: []byte("x")}}))
	f.Add(frameSeed(&producerdpb.StreamRequest{Id: "a"}, &producerdpb.StreamRequest{Id: "b", Message: &producerdpb.Message{DelayLevel: 19}}))
	f.Add(append(frameSeed(&producerdpb.StreamRequest{Id: "ok"}), 3, 0x12, 100, 1))
	f.Add(binary.AppendUvarint(nil, 300))
	cfg := &config.Config{Daemon: config.Daemon{MaxInflightMessages: 10, MaxInflightBytes: 1 << 20, ShutdownTimeout: 1}}
	f.Fuzz(func(t *testing.T, data []byte) {
		d, err := New(Options{Config: cfg, PluginCommand: []string{"x"}})
		if err != nil {
			t.Fatal(err)
		}
		frames := splitFrames(data)
		fs := &fakeStream{ctx: context.Background(), frames: frames}
		err = (&ingress{d: d}).SendStream(fs)
		good := 0
		for _, fr := range frames {
			if proto.Unmarshal(fr, &producerdpb.StreamRequest{}) != nil {
				break
			}
			good++
		}
		if len(fs.acks) != good {
			t.Fatalf("%d acks for %d decodable frames", len(fs.acks), good)
		}
		for _, a := range fs.acks {
			if a.GetError() == nil {
				t.Fatalf("ack %v without a group to send with", a)
			}
		}
		if good < len(frames) && status.Code(err) != codes.InvalidArgument {
			t.Fatalf("a bad frame ended the stream with %v", err)
		}
		if good == len(frames) && err != nil {
			t.Fatalf("a clean end returned %v", err)
		}
		if m, b := d.limit.load(); m != 0 || b != 0 {
			t.Fatalf("slots held after the stream: %d messages, %d bytes", m, b)
		}
	})
}
