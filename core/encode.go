package core

import (
	"bytes"
	"compress/zlib"
	"encoding/binary"
	"io"
	"sync"
)

// sysFlag bits (spec §4.6).
const (
	sysFlagCompressed     = 0x1
	sysFlagCompressionZip = 0x300 // compression type ZLIB in bits 8-10
)

// Compression defaults (spec §4.7).
const (
	// DefaultCompressThreshold is the body size (inclusive) from which bodies are zlib-compressed.
	DefaultCompressThreshold = 4096
	// DefaultCompressLevel is the zlib level the Java client uses.
	DefaultCompressLevel = 5
)

var zlibWriters [10]sync.Pool // by level

// compress returns body zlib-compressed (RFC 1950) at level, or ok=false when compression
// failed or did not make it smaller; the caller then sends the body as is.
func compress(body []byte, level int) (out []byte, ok bool) {
	if level < zlib.NoCompression || level > zlib.BestCompression {
		level = DefaultCompressLevel
	}
	var buf bytes.Buffer
	buf.Grow(len(body)/2 + 64)
	w, _ := zlibWriters[level].Get().(*zlib.Writer)
	if w == nil {
		var err error
		if w, err = zlib.NewWriterLevel(&buf, level); err != nil {
			return nil, false
		}
	} else {
		w.Reset(&buf)
	}
	defer zlibWriters[level].Put(w)
	if _, err := w.Write(body); err != nil {
		return nil, false
	}
	if err := w.Close(); err != nil {
		return nil, false
	}
	if buf.Len() >= len(body) {
		return nil, false
	}
	return buf.Bytes(), true
}

// decompress inflates a zlib body, refusing to produce more than limit bytes.
func decompress(body []byte, limit int) ([]byte, error) {
	r, err := zlib.NewReader(bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	defer r.Close()
	out, err := io.ReadAll(io.LimitReader(r, int64(limit)+1))
	if err != nil {
		return nil, err
	}
	if len(out) > limit {
		return nil, invalid("body.size", "decompressed body exceeds %d bytes", limit)
	}
	return out, nil
}

// encodeBatchRecord appends one inner message of a SEND_BATCH_MESSAGE body (spec §4.9).
func encodeBatchRecord(dst []byte, flag int32, body, props []byte) []byte {
	total := 4 + 4 + 4 + 4 + 4 + len(body) + 2 + len(props)
	dst = binary.BigEndian.AppendUint32(dst, uint32(total))
	dst = binary.BigEndian.AppendUint32(dst, 0) // magic code
	dst = binary.BigEndian.AppendUint32(dst, 0) // body CRC
	dst = binary.BigEndian.AppendUint32(dst, uint32(flag))
	dst = binary.BigEndian.AppendUint32(dst, uint32(len(body)))
	dst = append(dst, body...)
	dst = binary.BigEndian.AppendUint16(dst, uint16(len(props)))
	return append(dst, props...)
}
