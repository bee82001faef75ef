package remoting

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"io"
	"runtime"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/producerd/producerd/internal/procs"
)

// go test -run '^$' -bench . -benchmem ./remoting/

func BenchmarkCodec(b *testing.B) {
	req := sendV2Request(make([]byte, 1024))
	for _, st := range []SerializeType{JSON, RocketMQ} {
		frame, err := AppendFrame(nil, req, st)
		if err != nil {
			b.Fatal(err)
		}
		b.Run("EncodeDecode/"+st.String(), func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(len(frame)))
			buf := make([]byte, 0, len(frame))
			for b.Loop() {
				buf, _ = AppendFrame(buf[:0], req, st)
				if _, err := DecodeFrame(buf[4:]); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run("Encode/"+st.String(), func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(len(frame)))
			buf := make([]byte, 0, len(frame))
			for b.Loop() {
				buf, _ = AppendFrame(buf[:0], req, st)
			}
		})
		b.Run("Decode/"+st.String(), func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(len(frame)))
			for b.Loop() {
				if _, err := DecodeFrame(frame[4:]); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// benchBroker answers every request like a broker answers a send (JSON header, three ext
// fields), batching its writes. It parses only the opaque, so that the benchmark measures the
// client rather than the fake server.
func benchBroker(fc *fakeConn) {
	var lb [4]byte
	var in, out []byte
	ext := map[string]string{"msgId": "7F00000100002A9F0000000000000F3C", "queueId": "1", "queueOffset": "42"}
	resp := Command{Flag: FlagResponse, Language: LanguageJava, Version: 479, ExtFields: ext}
	for {
		if _, err := io.ReadFull(fc.br, lb[:]); err != nil {
			return
		}
		n := int(binary.BigEndian.Uint32(lb[:]))
		if cap(in) < n {
			in = make([]byte, n)
		}
		in = in[:n]
		if _, err := io.ReadFull(fc.br, in); err != nil {
			return
		}
		resp.Opaque = benchOpaque(in)
		out, _ = AppendFrame(out, &resp, JSON)
		if fc.br.Buffered() == 0 || len(out) > 64<<10 {
			if _, err := fc.Write(out); err != nil {
				return
			}
			out = out[:0]
		}
	}
}

// benchOpaque extracts the opaque of a frame (without its length prefix) cheaply.
func benchOpaque(frame []byte) int32 {
	if SerializeType(frame[0]) == RocketMQ {
		return int32(binary.BigEndian.Uint32(frame[4+5:]))
	}
	i := bytes.Index(frame, []byte(`"opaque":`)) + len(`"opaque":`)
	j := i
	for j < len(frame) && (frame[j] == '-' || frame[j] >= '0' && frame[j] <= '9') {
		j++
	}
	v, _ := strconv.ParseInt(string(frame[i:j]), 10, 32)
	return int32(v)
}

func BenchmarkInvoke(b *testing.B) {
	srv := startServer(b, benchBroker)
	req := sendV2Request(make([]byte, 1024))
	for _, mode := range []string{"Sync", "Async"} {
		for _, g := range []int{1, 64} {
			b.Run(fmt.Sprintf("%s/goroutines=%d", mode, g), func(b *testing.B) {
				c := newClient(b, Config{})
				ctx := ctxTimeout(b, time.Hour)
				if _, err := c.InvokeSync(ctx, srv.addr, req); err != nil { // dial outside the timing
					b.Fatal(err)
				}
				var wg sync.WaitGroup
				cb := func(_ *Command, err error) {
					if err != nil {
						b.Error(err)
					}
					wg.Done()
				}
				one := func() {
					if mode == "Sync" {
						if _, err := c.InvokeSync(ctx, srv.addr, req); err != nil {
							b.Fatal(err)
						}
						return
					}
					wg.Add(1)
					if err := c.InvokeAsync(ctx, srv.addr, req, cb); err != nil {
						b.Fatal(err)
					}
				}
				b.ReportAllocs()
				b.ResetTimer()
				cpu0 := procs.ProcessCPU()
				if g == 1 {
					for range b.N {
						one()
					}
				} else {
					b.SetParallelism(max(1, g/runtime.GOMAXPROCS(0)))
					b.RunParallel(func(pb *testing.PB) {
						for pb.Next() {
							one()
						}
					})
				}
				wg.Wait()
				// CPU time of the whole process (client and fake broker) per request: steadier
				// than ns/op on a shared machine.
				b.ReportMetric(float64(procs.ProcessCPU()-cpu0)/float64(b.N), "cpu-ns/op")
			})
		}
	}
}
