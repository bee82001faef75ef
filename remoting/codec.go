package remoting

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"unsafe"
)

const (
	// prefixLen is the totalLen word plus the header word.
	prefixLen = 8
	// maxHeaderLen is what the 24 low bits of the header word can express.
	maxHeaderLen = 1<<24 - 1
	// binaryFixedLen is the fixed part of a ROCKETMQ header (spec §1.4).
	binaryFixedLen = 21
)

// wire holds the scalar header fields actually put on the wire. The Client stamps its own
// opaque, flag, language and version without modifying the caller's Command.
type wire struct {
	code, version, opaque, flag int32
	lang                        LanguageCode
}

func wireOf(c *Command) wire {
	return wire{code: c.Code, version: c.Version, opaque: c.Opaque, flag: c.Flag, lang: c.Language}
}

// AppendFrame appends the whole frame for c (4-byte totalLen, header word, header in encoding
// st, body) to dst and returns the extended slice. c.Serialize is ignored. On error dst is
// returned unchanged.
func AppendFrame(dst []byte, c *Command, st SerializeType) ([]byte, error) {
	out, err := appendFramePrefix(dst, c, st, wireOf(c))
	if err != nil {
		return dst, err
	}
	return append(out, c.Body...), nil
}

// appendFramePrefix appends everything but the body; totalLen already counts len(c.Body).
func appendFramePrefix(dst []byte, c *Command, st SerializeType, w wire) ([]byte, error) {
	start := len(dst)
	dst = append(dst, 0, 0, 0, 0, 0, 0, 0, 0)
	var err error
	switch st {
	case JSON:
		dst = appendJSONHeader(dst, c, w)
	case RocketMQ:
		dst, err = appendBinaryHeader(dst, c, w)
	default:
		err = fmt.Errorf("%w: %d", ErrUnknownSerializeType, st)
	}
	if err != nil {
		return dst[:start], err
	}
	hlen := len(dst) - start - prefixLen
	if hlen > maxHeaderLen {
		return dst[:start], fmt.Errorf("%w: header of %d bytes exceeds %d", ErrFrameTooLarge, hlen, maxHeaderLen)
	}
	total := int64(4) + int64(hlen) + int64(len(c.Body))
	if total > math.MaxInt32 {
		return dst[:start], fmt.Errorf("%w: frame of %d bytes", ErrFrameTooLarge, total)
	}
	binary.BigEndian.PutUint32(dst[start:], uint32(total))
	binary.BigEndian.PutUint32(dst[start+4:], uint32(st)<<24|uint32(hlen))
	return dst, nil
}

// sortedExt returns c's custom header in key byte order: c.Fields as they are, else the
// entries of c.ExtFields sorted in buf when it is large enough. Ext fields are sorted so that
// encoding is deterministic (golden files, captures, signatures).
func sortedExt(c *Command, buf []Field) []Field {
	if len(c.Fields) > 0 {
		return c.Fields
	}
	fields := buf[:0]
	for k, v := range c.ExtFields {
		fields = append(fields, Field{k, v})
	}
	// Insertion sort: headers have a handful to a few dozen fields, mostly single letters,
	// so comparing first bytes inline beats a generic sort.
	for i := 1; i < len(fields); i++ {
		x := fields[i]
		j := i
		for j > 0 && keyLess(x.Key, fields[j-1].Key) {
			fields[j] = fields[j-1]
			j--
		}
		fields[j] = x
	}
	return fields
}

func keyLess(a, b string) bool {
	if len(a) > 0 && len(b) > 0 && a[0] != b[0] {
		return a[0] < b[0]
	}
	return a < b
}

// DecodeFrame decodes one frame given WITHOUT its leading 4-byte totalLen: the header word,
// the header and the body. The returned Body aliases b, so b must not be modified afterwards.
func DecodeFrame(b []byte) (*Command, error) {
	return decodeFrame(b, false)
}

// decodeFrame is DecodeFrame. With owned, b belongs to the decoded command alone (a frame
// just read into a fresh buffer, never written again): its header strings then alias b
// instead of a copy of the header, saving an allocation and a copy per frame.
func decodeFrame(b []byte, owned bool) (*Command, error) {
	if len(b) < 4 {
		return nil, fmt.Errorf("%w: frame of %d bytes has no header word", ErrBadFrame, len(b))
	}
	word := binary.BigEndian.Uint32(b)
	st := SerializeType(word >> 24)
	hlen := int(word & maxHeaderLen)
	if hlen > len(b)-4 {
		return nil, fmt.Errorf("%w: header length %d exceeds frame length %d", ErrBadFrame, hlen, len(b)-4)
	}
	header := b[4 : 4+hlen]
	var hs string
	if owned && hlen > 0 {
		hs = unsafe.String(&header[0], hlen)
	} else {
		hs = string(header)
	}
	c := &Command{Serialize: st}
	var err error
	switch st {
	case JSON:
		err = decodeJSONHeader(c, hs)
	case RocketMQ:
		err = decodeBinaryHeader(c, header, hs)
	default:
		return nil, fmt.Errorf("%w: byte 0x%02x (header word 0x%08x)", ErrUnknownSerializeType, byte(st), word)
	}
	if err != nil {
		return nil, err
	}
	if body := b[4+hlen:]; len(body) > 0 {
		c.Body = body[:len(body):len(body)]
	}
	return c, nil
}

// ReadCommand reads one frame from r and decodes it. The length prefix is checked against
// maxFrame (a value <= 0 means MaxFrameSize) BEFORE anything is allocated: a negative
// length or one below 4 is ErrBadFrame, a totalLen above maxFrame-4 is ErrFrameTooLarge.
// A clean end of stream before the first byte returns io.EOF; a truncated frame
// io.ErrUnexpectedEOF.
func ReadCommand(r io.Reader, maxFrame int) (*Command, error) {
	var lb [4]byte
	c, _, err := readFrame(r, lb[:], maxFrame)
	return c, err
}

// readFrame is ReadCommand with a caller-owned length buffer; it also returns the frame's
// size on the wire (including the length prefix).
func readFrame(r io.Reader, lb []byte, maxFrame int) (*Command, int, error) {
	if _, err := io.ReadFull(r, lb[:4]); err != nil {
		return nil, 0, err
	}
	n, err := checkFrameLen(int32(binary.BigEndian.Uint32(lb)), maxFrame)
	if err != nil {
		return nil, 0, err
	}
	buf := make([]byte, n)
	if _, err := io.ReadFull(r, buf); err != nil {
		if errors.Is(err, io.EOF) {
			err = io.ErrUnexpectedEOF
		}
		return nil, 0, err
	}
	c, err := decodeFrame(buf, true)
	return c, 4 + n, err
}

func checkFrameLen(total int32, maxFrame int) (int, error) {
	if maxFrame <= 0 {
		maxFrame = MaxFrameSize
	}
	switch {
	case total < 0:
		return 0, fmt.Errorf("%w: negative frame length %d", ErrBadFrame, total)
	case total < 4:
		return 0, fmt.Errorf("%w: frame length %d is shorter than the header word", ErrBadFrame, total)
	case int64(total) > int64(maxFrame)-4:
		return 0, fmt.Errorf("%w: frame length %d exceeds the maximum %d", ErrFrameTooLarge, total, maxFrame-4)
	}
	return int(total), nil
}
