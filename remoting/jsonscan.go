package remoting

import (
	"math"
	"strings"
	"unicode/utf16"
	"unicode/utf8"
)

// maxJSONDepth bounds nesting inside unknown JSON header fields.
const maxJSONDepth = 64

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
		if end, err := d.next('}'); end || err != nil {
			return err
		}
	}
}

// next consumes what follows a member of an object or array: a comma before the next
// one, or close, which ends it (end).
func (d *jsonDecoder) next(close byte) (end bool, err error) {
	switch d.peek() {
	case ',':
		d.i++
		return false, nil
	case close:
		d.i++
		return true, nil
	case 0:
		return false, errJSONEnd
	default:
		return false, errJSONSyntax
	}
}

// null consumes a null literal if one is next.
func (d *jsonDecoder) null() bool {
	if len(d.s)-d.i >= 4 && d.s[d.i:d.i+4] == "null" {
		d.i += 4
		return true
	}
	return false
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
			if end, err := d.next(']'); end || err != nil {
				return err
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
