package remoting

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"strconv"
	"strings"
	"unicode/utf16"
	"unicode/utf8"
	"unsafe"
)

const (
	// prefixLen is the totalLen word plus the header word.
	prefixLen = 8
	// maxHeaderLen is what the 24 low bits of the header word can express.
	maxHeaderLen = 1<<24 - 1
	// binaryFixedLen is the fixed part of a ROCKETMQ header (spec §1.4).
	binaryFixedLen = 21
	// maxJSONDepth bounds nesting inside unknown JSON header fields.
	maxJSONDepth = 64
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

// appendJSONHeader writes the header as fastjson does: fields in alphabetical order, nulls
// (empty remark, empty extFields) omitted, language as its enum name, ext values as strings.
// Ext keys are sorted so that output is deterministic.
func appendJSONHeader(dst []byte, c *Command, w wire) []byte {
	dst = append(dst, `{"code":`...)
	dst = strconv.AppendInt(dst, int64(w.code), 10)
	if len(c.ExtFields) > 0 || len(c.Fields) > 0 {
		dst = append(dst, `,"extFields":{`...)
		var buf [24]Field
		for i, f := range sortedExt(c, buf[:]) {
			if i > 0 {
				dst = append(dst, ',')
			}
			dst = appendJSONString(dst, f.Key)
			dst = append(dst, ':')
			dst = appendJSONString(dst, f.Value)
		}
		dst = append(dst, '}')
	}
	dst = append(dst, `,"flag":`...)
	dst = strconv.AppendInt(dst, int64(w.flag), 10)
	dst = append(dst, `,"language":`...)
	if w.lang.known() {
		dst = append(dst, '"')
		dst = append(dst, w.lang.String()...)
		dst = append(dst, '"')
	} else {
		dst = strconv.AppendInt(dst, int64(w.lang), 10)
	}
	dst = append(dst, `,"opaque":`...)
	dst = strconv.AppendInt(dst, int64(w.opaque), 10)
	if c.Remark != "" {
		dst = append(dst, `,"remark":`...)
		dst = appendJSONString(dst, c.Remark)
	}
	dst = append(dst, `,"serializeTypeCurrentRPC":"JSON","version":`...)
	dst = strconv.AppendInt(dst, int64(w.version), 10)
	return append(dst, '}')
}

const hexDigits = "0123456789abcdef"

// appendJSONString escapes only what JSON requires (quote, backslash, control characters);
// other bytes, including non-ASCII UTF-8, pass through unchanged.
func appendJSONString(dst []byte, s string) []byte {
	dst = append(dst, '"')
	start := 0
	for i := 0; i < len(s); i++ {
		b := s[i]
		if b >= 0x20 && b != '"' && b != '\\' {
			continue
		}
		dst = append(dst, s[start:i]...)
		switch b {
		case '"', '\\':
			dst = append(dst, '\\', b)
		case '\n':
			dst = append(dst, '\\', 'n')
		case '\r':
			dst = append(dst, '\\', 'r')
		case '\t':
			dst = append(dst, '\\', 't')
		default:
			dst = append(dst, '\\', 'u', '0', '0', hexDigits[b>>4], hexDigits[b&0xF])
		}
		start = i + 1
	}
	dst = append(dst, s[start:]...)
	return append(dst, '"')
}

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

// decodeJSONHeader decodes a JSON header: fields in any order, unknown fields skipped, nulls
// treated as absent, language as a name or an integer, ext values as strings (numbers and
// booleans are kept as their literal text). Duplicate keys: the last one wins.
func decodeJSONHeader(c *Command, h string) error {
	d := jsonDecoder{s: h}
	if err := d.header(c); err != nil {
		return fmt.Errorf("%w: JSON header: %s at offset %d", ErrBadFrame, err, d.i)
	}
	return nil
}

// jsonDecoder is a minimal scanner for the flat remoting header. Unescaped strings are
// substrings of s, so a typical header costs one string allocation plus the ext map.
type jsonDecoder struct {
	s string
	i int
}

type jsonError string

func (e jsonError) Error() string { return string(e) }

const (
	errJSONSyntax    = jsonError("syntax error")
	errJSONEnd       = jsonError("unexpected end")
	errJSONNotInt    = jsonError("integer expected")
	errJSONRange     = jsonError("integer out of range")
	errJSONDepth     = jsonError("nesting too deep")
	errJSONExtValue  = jsonError("ext field value must be a string")
	errJSONNotObject = jsonError("object expected")
	errJSONEscape    = jsonError("invalid escape")
	errJSONTrailing  = jsonError("data after the header object")
)

func (d *jsonDecoder) ws() {
	for d.i < len(d.s) {
		switch d.s[d.i] {
		case ' ', '\t', '\n', '\r':
			d.i++
		default:
			return
		}
	}
}

// peek returns the next non-space byte, or 0 at the end.
func (d *jsonDecoder) peek() byte {
	d.ws()
	if d.i < len(d.s) {
		return d.s[d.i]
	}
	return 0
}

func (d *jsonDecoder) expect(b byte) error {
	if d.peek() != b {
		if d.i >= len(d.s) {
			return errJSONEnd
		}
		return errJSONSyntax
	}
	d.i++
	return nil
}

// object calls field for every member of an object; field must consume the value.
func (d *jsonDecoder) object(field func(key string) error) error {
	if err := d.expect('{'); err != nil {
		return err
	}
	if d.peek() == '}' {
		d.i++
		return nil
	}
	for {
		if d.peek() != '"' {
			return errJSONSyntax
		}
		key, err := d.str()
		if err != nil {
			return err
		}
		if err := d.expect(':'); err != nil {
			return err
		}
		d.ws()
		if err := field(key); err != nil {
			return err
		}
		switch d.peek() {
		case ',':
			d.i++
		case '}':
			d.i++
			return nil
		case 0:
			return errJSONEnd
		default:
			return errJSONSyntax
		}
	}
}

func (d *jsonDecoder) header(c *Command) error {
	if d.peek() != '{' {
		return errJSONNotObject
	}
	err := d.object(func(key string) error {
		var err error
		switch key {
		case "code":
			c.Code, err = d.int32Field(c.Code)
		case "version":
			c.Version, err = d.int32Field(c.Version)
		case "opaque":
			c.Opaque, err = d.int32Field(c.Opaque)
		case "flag":
			c.Flag, err = d.int32Field(c.Flag)
		case "language":
			err = d.language(c)
		case "remark":
			if d.null() {
				c.Remark = ""
				return nil
			}
			if d.peek() != '"' {
				return errJSONSyntax
			}
			c.Remark, err = d.str()
		case "extFields":
			err = d.extFields(c)
		default:
			err = d.skip(0)
		}
		return err
	})
	if err != nil {
		return err
	}
	if d.peek() != 0 {
		return errJSONTrailing
	}
	return nil
}

// null consumes a null literal if one is next.
func (d *jsonDecoder) null() bool {
	if len(d.s)-d.i >= 4 && d.s[d.i:d.i+4] == "null" {
		d.i += 4
		return true
	}
	return false
}

func (d *jsonDecoder) int32Field(old int32) (int32, error) {
	if d.null() {
		return 0, nil
	}
	v, err := d.integer()
	if err != nil {
		return old, err
	}
	if v < math.MinInt32 || v > math.MaxInt32 {
		return old, errJSONRange
	}
	return int32(v), nil
}

func (d *jsonDecoder) language(c *Command) error {
	if d.null() {
		c.Language = 0
		return nil
	}
	if d.peek() == '"' {
		name, err := d.str()
		c.Language = languageByName(name)
		return err
	}
	v, err := d.integer()
	if err != nil {
		return err
	}
	if v >= 0 && v <= math.MaxUint8 {
		c.Language = LanguageCode(v)
	} else {
		c.Language = LanguageOther
	}
	return nil
}

// integer parses a JSON number that must be an integer within int64.
func (d *jsonDecoder) integer() (int64, error) {
	start := d.i
	neg := false
	if d.i < len(d.s) && d.s[d.i] == '-' {
		neg = true
		d.i++
	}
	digits := d.i
	var v uint64
	for d.i < len(d.s) && d.s[d.i] >= '0' && d.s[d.i] <= '9' {
		if v > (math.MaxUint64-9)/10 {
			return 0, errJSONRange
		}
		v = v*10 + uint64(d.s[d.i]-'0')
		d.i++
	}
	if d.i == digits {
		d.i = start
		return 0, errJSONNotInt
	}
	if d.i < len(d.s) {
		switch d.s[d.i] {
		case '.', 'e', 'E':
			return 0, errJSONNotInt
		}
	}
	if neg {
		if v > 1<<63 {
			return 0, errJSONRange
		}
		return -int64(v), nil
	}
	if v > math.MaxInt64 {
		return 0, errJSONRange
	}
	return int64(v), nil
}

// extPair is one ext member as parsed; null marks a JSON null (which deletes the key).
type extPair struct {
	k, v string
	null bool
}

func (d *jsonDecoder) extFields(c *Command) error {
	if d.null() {
		c.ExtFields = nil
		return nil
	}
	if d.peek() != '{' {
		return errJSONSyntax
	}
	// Collect the members first so that the map is allocated once, at its final size.
	var buf [24]extPair
	pairs := buf[:0]
	err := d.object(func(key string) error {
		switch b := d.peek(); {
		case b == '"':
			v, err := d.str()
			if err != nil {
				return err
			}
			pairs = append(pairs, extPair{k: key, v: v})
		case b == 'n':
			if !d.null() {
				return errJSONSyntax
			}
			pairs = append(pairs, extPair{k: key, null: true})
		case b == 't' || b == 'f' || b == '-' || (b >= '0' && b <= '9'):
			// fastjson turns scalars into their text when the target is a String.
			start := d.i
			if err := d.skip(0); err != nil {
				return err
			}
			pairs = append(pairs, extPair{k: key, v: d.s[start:d.i]})
		default:
			return errJSONExtValue
		}
		return nil
	})
	if err != nil {
		return err
	}
	c.ExtFields = nil
	if len(pairs) == 0 {
		return nil
	}
	m := make(map[string]string, len(pairs))
	for _, p := range pairs {
		if p.null {
			delete(m, p.k)
		} else {
			m[p.k] = p.v
		}
	}
	if len(m) > 0 {
		c.ExtFields = m
	}
	return nil
}

// str parses a string starting at the opening quote.
func (d *jsonDecoder) str() (string, error) {
	d.i++ // opening quote
	start := d.i
	for d.i < len(d.s) {
		switch d.s[d.i] {
		case '"':
			s := d.s[start:d.i]
			d.i++
			return s, nil
		case '\\':
			return d.strEscaped(start)
		}
		d.i++
	}
	return "", errJSONEnd
}

// strEscaped is the slow path of str for strings with escapes. Like encoding/json, invalid
// or unpaired surrogates become U+FFFD.
func (d *jsonDecoder) strEscaped(start int) (string, error) {
	// The escaped text is never shorter than what it decodes to: size the builder once.
	end := d.i
	for end < len(d.s) && d.s[end] != '"' {
		if d.s[end] == '\\' {
			end++
		}
		end++
	}
	var sb strings.Builder
	sb.Grow(min(end, len(d.s)) - start)
	sb.WriteString(d.s[start:d.i])
	for d.i < len(d.s) {
		b := d.s[d.i]
		switch b {
		case '"':
			d.i++
			return sb.String(), nil
		case '\\':
			if d.i+1 >= len(d.s) {
				return "", errJSONEnd
			}
			e := d.s[d.i+1]
			d.i += 2
			switch e {
			case '"', '\\', '/':
				sb.WriteByte(e)
			case 'b':
				sb.WriteByte('\b')
			case 'f':
				sb.WriteByte('\f')
			case 'n':
				sb.WriteByte('\n')
			case 'r':
				sb.WriteByte('\r')
			case 't':
				sb.WriteByte('\t')
			case 'u':
				r, ok := d.hex4()
				if !ok {
					return "", errJSONEscape
				}
				if utf16.IsSurrogate(r) {
					r2 := rune(-1)
					if len(d.s)-d.i >= 6 && d.s[d.i] == '\\' && d.s[d.i+1] == 'u' {
						save := d.i
						d.i += 2
						if x, ok := d.hex4(); ok {
							r2 = x
						}
						d.i = save
					}
					if dec := utf16.DecodeRune(r, r2); dec != utf8.RuneError {
						d.i += 6
						r = dec
					} else {
						r = utf8.RuneError
					}
				}
				sb.WriteRune(r)
			default:
				return "", errJSONEscape
			}
		default:
			// Copy the run up to the next quote or backslash at once.
			end := d.i + 1
			for end < len(d.s) && d.s[end] != '"' && d.s[end] != '\\' {
				end++
			}
			sb.WriteString(d.s[d.i:end])
			d.i = end
		}
	}
	return "", errJSONEnd
}

func (d *jsonDecoder) hex4() (rune, bool) {
	if len(d.s)-d.i < 4 {
		return 0, false
	}
	var r rune
	for _, c := range []byte(d.s[d.i : d.i+4]) {
		switch {
		case c >= '0' && c <= '9':
			c -= '0'
		case c >= 'a' && c <= 'f':
			c -= 'a' - 10
		case c >= 'A' && c <= 'F':
			c -= 'A' - 10
		default:
			return 0, false
		}
		r = r<<4 | rune(c)
	}
	d.i += 4
	return r, true
}

// skip consumes any JSON value.
func (d *jsonDecoder) skip(depth int) error {
	if depth > maxJSONDepth {
		return errJSONDepth
	}
	switch b := d.peek(); {
	case b == '"':
		_, err := d.skipStr()
		return err
	case b == '{':
		return d.object(func(string) error { return d.skip(depth + 1) })
	case b == '[':
		d.i++
		if d.peek() == ']' {
			d.i++
			return nil
		}
		for {
			if err := d.skip(depth + 1); err != nil {
				return err
			}
			switch d.peek() {
			case ',':
				d.i++
			case ']':
				d.i++
				return nil
			case 0:
				return errJSONEnd
			default:
				return errJSONSyntax
			}
		}
	case b == 't':
		return d.literal("true")
	case b == 'f':
		return d.literal("false")
	case b == 'n':
		return d.literal("null")
	case b == '-' || (b >= '0' && b <= '9'):
		return d.number()
	case b == 0:
		return errJSONEnd
	}
	return errJSONSyntax
}

func (d *jsonDecoder) skipStr() (int, error) {
	d.i++
	for d.i < len(d.s) {
		switch d.s[d.i] {
		case '"':
			d.i++
			return d.i, nil
		case '\\':
			d.i += 2
			continue
		}
		d.i++
	}
	return 0, errJSONEnd
}

func (d *jsonDecoder) literal(lit string) error {
	if len(d.s)-d.i < len(lit) || d.s[d.i:d.i+len(lit)] != lit {
		return errJSONSyntax
	}
	d.i += len(lit)
	return nil
}

// number consumes a JSON number: -?int(.frac)?([eE][+-]?exp)?
func (d *jsonDecoder) number() error {
	if d.i < len(d.s) && d.s[d.i] == '-' {
		d.i++
	}
	if d.digits() == 0 {
		return errJSONSyntax
	}
	if d.i < len(d.s) && d.s[d.i] == '.' {
		d.i++
		if d.digits() == 0 {
			return errJSONSyntax
		}
	}
	if d.i < len(d.s) && (d.s[d.i] == 'e' || d.s[d.i] == 'E') {
		d.i++
		if d.i < len(d.s) && (d.s[d.i] == '+' || d.s[d.i] == '-') {
			d.i++
		}
		if d.digits() == 0 {
			return errJSONSyntax
		}
	}
	return nil
}

func (d *jsonDecoder) digits() int {
	n := 0
	for d.i < len(d.s) && d.s[d.i] >= '0' && d.s[d.i] <= '9' {
		d.i++
		n++
	}
	return n
}
