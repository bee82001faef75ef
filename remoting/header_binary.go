package remoting

import (
	"encoding/binary"
	"fmt"
	"math"
)

// appendBinaryHeader writes the ROCKETMQ header (spec §1.4). Ext keys are sorted.
func appendBinaryHeader(dst []byte, c *Command, w wire) ([]byte, error) {
	if w.code < math.MinInt16 || w.code > math.MaxInt16 {
		return dst, fmt.Errorf("%w: code %d does not fit the ROCKETMQ header's int16", ErrBadFrame, w.code)
	}
	if w.version < math.MinInt16 || w.version > math.MaxInt16 {
		return dst, fmt.Errorf("%w: version %d does not fit the ROCKETMQ header's int16", ErrBadFrame, w.version)
	}
	dst = binary.BigEndian.AppendUint16(dst, uint16(int16(w.code)))
	dst = append(dst, byte(w.lang))
	dst = binary.BigEndian.AppendUint16(dst, uint16(int16(w.version)))
	dst = binary.BigEndian.AppendUint32(dst, uint32(w.opaque))
	dst = binary.BigEndian.AppendUint32(dst, uint32(w.flag))
	dst = binary.BigEndian.AppendUint32(dst, uint32(len(c.Remark)))
	dst = append(dst, c.Remark...)
	extAt := len(dst)
	dst = append(dst, 0, 0, 0, 0)
	if len(c.ExtFields) > 0 || len(c.Fields) > 0 {
		var buf [24]Field
		for _, f := range sortedExt(c, buf[:]) {
			k, v := f.Key, f.Value
			if len(k) > math.MaxInt16 {
				return dst, fmt.Errorf("%w: ext key of %d bytes does not fit an int16 length", ErrBadFrame, len(k))
			}
			dst = binary.BigEndian.AppendUint16(dst, uint16(len(k)))
			dst = append(dst, k...)
			dst = binary.BigEndian.AppendUint32(dst, uint32(len(v)))
			dst = append(dst, v...)
		}
	}
	binary.BigEndian.PutUint32(dst[extAt:], uint32(len(dst)-extAt-4))
	return dst, nil
}

// decodeBinaryHeader decodes a ROCKETMQ header. All strings are substrings of one copy of the
// header. Zero-length keys and values decode as absent; duplicate keys: the last one wins.
// Bytes after the ext block are ignored, as Java does.
func decodeBinaryHeader(c *Command, h []byte, hs string) error {
	if len(h) < binaryFixedLen {
		return fmt.Errorf("%w: ROCKETMQ header of %d bytes is shorter than %d", ErrBadFrame, len(h), binaryFixedLen)
	}
	c.Code = int32(int16(binary.BigEndian.Uint16(h)))
	c.Language = LanguageCode(h[2])
	c.Version = int32(int16(binary.BigEndian.Uint16(h[3:])))
	c.Opaque = int32(binary.BigEndian.Uint32(h[5:]))
	c.Flag = int32(binary.BigEndian.Uint32(h[9:]))
	remarkLen := int64(int32(binary.BigEndian.Uint32(h[13:])))
	p := 17
	if remarkLen < 0 || remarkLen > int64(len(h)-p-4) {
		return fmt.Errorf("%w: remark length %d exceeds the header", ErrBadFrame, remarkLen)
	}
	remarkAt := p
	p += int(remarkLen)
	extLen := int64(int32(binary.BigEndian.Uint32(h[p:])))
	p += 4
	if extLen < 0 || extLen > int64(len(h)-p) {
		return fmt.Errorf("%w: ext block length %d exceeds the header", ErrBadFrame, extLen)
	}
	ext := h[p : p+int(extLen)]
	// First pass: validate the block and count entries for the map size hint.
	entries := 0
	for q := 0; q < len(ext); {
		if len(ext)-q < 2 {
			return fmt.Errorf("%w: truncated ext key length", ErrBadFrame)
		}
		kl := int(int16(binary.BigEndian.Uint16(ext[q:])))
		q += 2
		if kl < 0 || kl > len(ext)-q-4 {
			return fmt.Errorf("%w: ext key length %d exceeds the ext block", ErrBadFrame, kl)
		}
		q += kl
		vl := int64(int32(binary.BigEndian.Uint32(ext[q:])))
		q += 4
		if vl < 0 || vl > int64(len(ext)-q) {
			return fmt.Errorf("%w: ext value length %d exceeds the ext block", ErrBadFrame, vl)
		}
		q += int(vl)
		entries++
	}
	if remarkLen == 0 && entries == 0 {
		return nil
	}
	s := hs // h as a string: every string below is a substring of it
	c.Remark = s[remarkAt : remarkAt+int(remarkLen)]
	if entries == 0 {
		return nil
	}
	m := make(map[string]string, entries)
	for q := p; q < p+len(ext); {
		kl := int(binary.BigEndian.Uint16(h[q:]))
		q += 2
		k := s[q : q+kl]
		q += kl
		vl := int(binary.BigEndian.Uint32(h[q:]))
		q += 4
		v := s[q : q+vl]
		q += vl
		switch {
		case kl == 0:
			// A null key (Java) cannot be looked up; drop it.
		case vl == 0:
			delete(m, k)
		default:
			m[k] = v
		}
	}
	if len(m) > 0 {
		c.ExtFields = m
	}
	return nil
}
