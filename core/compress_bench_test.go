package core

import (
	"bytes"
	stdzlib "compress/zlib"
	"fmt"
	"io"
	"math/rand/v2"
	"strconv"
	"testing"

	kpzlib "github.com/klauspost/compress/zlib"
)

// Bodies for the compression measurements (docs/compression.md), 16 KiB each unless
// named otherwise: JSON records, English-like text (words of a small vocabulary), the
// harness's low-redundancy text (random letters in 8-byte words, bench/internal/load)
// and random bytes.
func compressionBodies() map[string][]byte {
	const size = 16 << 10
	r := rand.New(rand.NewPCG(1, 2))
	var js bytes.Buffer
	for i := 0; js.Len() < size; i++ {
		fmt.Fprintf(&js, `{"orderId":"ord-%08d","userId":%d,"sku":"SKU-%05d","qty":%d,"price":%d.%02d,"currency":"EUR","status":"%s","ts":%d},`,
			r.IntN(1e8), r.IntN(1e6), r.IntN(1e5), 1+r.IntN(9), r.IntN(500), r.IntN(100),
			[]string{"NEW", "PAID", "SHIPPED", "CANCELLED"}[r.IntN(4)], 1765000000000+int64(r.IntN(1e9)))
	}
	words := []string{"the", "message", "broker", "queue", "producer", "send", "topic", "of", "and", "a", "to", "in",
		"order", "retry", "latency", "route", "name", "server", "client", "is", "with", "for", "on", "that"}
	var en bytes.Buffer
	for en.Len() < size {
		en.WriteString(words[r.IntN(len(words))])
		if r.IntN(12) == 0 {
			en.WriteString(strconv.Itoa(r.IntN(10000)))
		}
		en.WriteByte(' ')
	}
	lowRed := make([]byte, size)
	x := uint64(42)
	for i := range lowRed {
		if i%8 == 7 {
			lowRed[i] = ' '
			continue
		}
		x = x*6364136223846793005 + 1442695040888963407
		lowRed[i] = byte('a' + (x>>33)%26)
	}
	random := make([]byte, size)
	for i := range random {
		random[i] = byte(r.Uint32())
	}
	return map[string][]byte{"json": js.Bytes()[:size], "english": en.Bytes()[:size], "lowred-text": lowRed,
		"random": random, "lowred-text-4k": lowRed[:4096], "json-4k": js.Bytes()[:4096]}
}

// resetWriter is a zlib writer of either library, reused across messages as core pools
// its writers.
type resetWriter interface {
	Write([]byte) (int, error)
	Close() error
	Reset(io.Writer)
}

type compressor struct {
	name string
	new  func() resetWriter
}

func compressors() []compressor {
	var out []compressor
	for _, lvl := range []int{stdzlib.HuffmanOnly, 1, 2, 5, 6, 9} {
		out = append(out, compressor{"std-" + strconv.Itoa(lvl), func() resetWriter {
			w, _ := stdzlib.NewWriterLevel(io.Discard, lvl)
			return w
		}})
	}
	for _, lvl := range []int{kpzlib.HuffmanOnly, 1, 2, 3, 5, 9} {
		out = append(out, compressor{"klauspost-" + strconv.Itoa(lvl), func() resetWriter {
			w, _ := kpzlib.NewWriterLevel(io.Discard, lvl)
			return w
		}})
	}
	return out
}

// BenchmarkCompression measures CPU per message and size for every body and codec. The
// writers are reused (Reset), as core pools them; ratio is output/input size.
//
//	go test -run '^$' -bench Compression -benchtime 300x ./core/
func BenchmarkCompression(b *testing.B) {
	bodies := compressionBodies()
	for _, name := range []string{"json", "english", "lowred-text", "random", "json-4k", "lowred-text-4k"} {
		body := bodies[name]
		for _, c := range compressors() {
			b.Run(name+"/"+c.name, func(b *testing.B) {
				var buf bytes.Buffer
				w := c.new()
				b.SetBytes(int64(len(body)))
				for b.Loop() {
					buf.Reset()
					w.Reset(&buf)
					w.Write(body)
					w.Close()
				}
				b.ReportMetric(float64(buf.Len())/float64(len(body)), "ratio")
			})
		}
		for _, lvl := range []int{1, 5} {
			b.Run(name+"/core-"+strconv.Itoa(lvl), func(b *testing.B) {
				b.SetBytes(int64(len(body)))
				out := 0
				for b.Loop() {
					z, ok := compress(body, lvl)
					if out = len(body); ok {
						out = len(z)
					}
				}
				b.ReportMetric(float64(out)/float64(len(body)), "ratio")
			})
		}
	}
}
