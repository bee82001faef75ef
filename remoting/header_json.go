package remoting

import (
	"fmt"
	"math"
	"strconv"
)

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
