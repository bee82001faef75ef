package daemon

import (
	"errors"
	"fmt"

	"google.golang.org/grpc/encoding"
	"google.golang.org/grpc/mem"
	"google.golang.org/protobuf/proto"
)

// streamFrame is a SendStream request as received: the stream reader decodes it itself,
// so that a frame that does not decode ends the stream only after the acks of the
// messages before it (gRPC would end the stream at once).
type streamFrame struct{ b []byte }

// ingressCodec is the ingress server's codec: protobuf, except that a *streamFrame
// receives the frame's bytes undecoded and a *chargedFrame is charged to the in-flight
// bytes before its bytes are copied out of gRPC's receive buffers.
type ingressCodec struct{}

var _ encoding.CodecV2 = ingressCodec{}

func (ingressCodec) Marshal(v any) (mem.BufferSlice, error) {
	m, ok := v.(proto.Message)
	if !ok {
		return nil, fmt.Errorf("daemon: cannot marshal %T", v)
	}
	b, err := proto.Marshal(m)
	if err != nil {
		return nil, err
	}
	return mem.BufferSlice{mem.SliceBuffer(b)}, nil
}

func (ingressCodec) Unmarshal(data mem.BufferSlice, v any) error {
	switch m := v.(type) {
	case *streamFrame:
		m.b = data.Materialize()
		return nil
	case *chargedFrame:
		if m.buf != nil || m.err != nil {
			// gRPC decodes into the same frame while it checks that a unary call
			// carries one message: a second one is refused, never charged.
			// (gRPC reports a codec error as INTERNAL, as a unary server does.)
			return errors.New("daemon: a unary call carries more than one request message")
		}
		n := int64(data.Len())
		if err := m.d.limit.reserve(n); err != nil {
			m.err = err
			return nil
		}
		m.charged = n
		m.buf = data.MaterializeToBuffer(mem.DefaultBufferPool())
		return nil
	case proto.Message:
		buf := data.MaterializeToBuffer(mem.DefaultBufferPool())
		defer buf.Free()
		return proto.Unmarshal(buf.ReadOnlyData(), m)
	}
	return fmt.Errorf("daemon: cannot unmarshal into %T", v)
}

func (ingressCodec) Name() string { return "proto" }
