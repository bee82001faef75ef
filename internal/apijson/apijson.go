// Package apijson is producerd's one JSON dialect, used by the HTTP ingress, the admin
// HTTP API and the CLI's -json output:
//
//   - field names are the proto field names (snake_case), and every field is present,
//     zero values included (an unset message field is null);
//   - 64-bit integers are JSON numbers, not strings (pids, offsets, byte counts stay far
//     below 2^53);
//   - enum values are their names without the enum's prefix ("SEND_OK", not
//     "SEND_STATUS_SEND_OK" nor 0);
//   - google.protobuf.Timestamp is RFC 3339, google.protobuf.Duration a Go duration
//     ("1.5s"); bytes are standard base64.
//
// This is the dialect the HTTP ingress already spoke (and the one Kafka REST proxies and
// Dapr's HTTP API use), so no HTTP user saw a change when the admin API and the CLI
// moved to it. Errors are [Error]: a stable string code and a message.
package apijson

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
)

// Marshal encodes m in the dialect, indented by two spaces, with a trailing newline.
func Marshal(m proto.Message) ([]byte, error) {
	var b bytes.Buffer
	if err := writeMessage(&b, m.ProtoReflect()); err != nil {
		return nil, err
	}
	var out bytes.Buffer
	if err := json.Indent(&out, b.Bytes(), "", "  "); err != nil {
		return nil, err
	}
	out.WriteByte('\n')
	return out.Bytes(), nil
}

// EnumName is the dialect's name of an enum value: its proto name without the prefix
// that repeats the enum's name (SendStatus SEND_STATUS_SEND_OK is "SEND_OK").
func EnumName(ed protoreflect.EnumDescriptor, n protoreflect.EnumNumber) string {
	v := ed.Values().ByNumber(n)
	if v == nil {
		return strconv.Itoa(int(n))
	}
	return strings.TrimPrefix(string(v.Name()), enumPrefix(ed))
}

// enumPrefix is the UPPER_SNAKE form of the enum's name plus "_".
func enumPrefix(ed protoreflect.EnumDescriptor) string {
	var b strings.Builder
	for i, r := range string(ed.Name()) {
		if i > 0 && r >= 'A' && r <= 'Z' {
			b.WriteByte('_')
		}
		b.WriteRune(r)
	}
	return strings.ToUpper(b.String()) + "_"
}

func writeMessage(b *bytes.Buffer, m protoreflect.Message) error {
	switch m.Descriptor().FullName() {
	case "google.protobuf.Timestamp":
		f := m.Descriptor().Fields()
		t := time.Unix(m.Get(f.ByName("seconds")).Int(), m.Get(f.ByName("nanos")).Int()).UTC()
		return writeString(b, t.Format(time.RFC3339Nano))
	case "google.protobuf.Duration":
		f := m.Descriptor().Fields()
		d := time.Duration(m.Get(f.ByName("seconds")).Int())*time.Second + time.Duration(m.Get(f.ByName("nanos")).Int())
		return writeString(b, d.String())
	}
	b.WriteByte('{')
	fields := m.Descriptor().Fields()
	for i := 0; i < fields.Len(); i++ {
		fd := fields.Get(i)
		if i > 0 {
			b.WriteByte(',')
		}
		_ = writeString(b, string(fd.Name()))
		b.WriteByte(':')
		var err error
		switch {
		case fd.IsList():
			err = writeList(b, fd, m.Get(fd).List())
		case fd.IsMap():
			err = writeMap(b, fd, m.Get(fd).Map())
		case fd.Message() != nil && !m.Has(fd):
			b.WriteString("null")
		default:
			err = writeValue(b, fd, m.Get(fd))
		}
		if err != nil {
			return err
		}
	}
	b.WriteByte('}')
	return nil
}

func writeList(b *bytes.Buffer, fd protoreflect.FieldDescriptor, l protoreflect.List) error {
	b.WriteByte('[')
	for i := 0; i < l.Len(); i++ {
		if i > 0 {
			b.WriteByte(',')
		}
		if err := writeValue(b, fd, l.Get(i)); err != nil {
			return err
		}
	}
	b.WriteByte(']')
	return nil
}

func writeMap(b *bytes.Buffer, fd protoreflect.FieldDescriptor, m protoreflect.Map) error {
	keys := make([]string, 0, m.Len())
	vals := map[string]protoreflect.Value{}
	m.Range(func(k protoreflect.MapKey, v protoreflect.Value) bool {
		keys = append(keys, k.String())
		vals[k.String()] = v
		return true
	})
	sort.Strings(keys)
	b.WriteByte('{')
	for i, k := range keys {
		if i > 0 {
			b.WriteByte(',')
		}
		_ = writeString(b, k)
		b.WriteByte(':')
		if err := writeValue(b, fd.MapValue(), vals[k]); err != nil {
			return err
		}
	}
	b.WriteByte('}')
	return nil
}

func writeValue(b *bytes.Buffer, fd protoreflect.FieldDescriptor, v protoreflect.Value) error {
	switch fd.Kind() {
	case protoreflect.BoolKind:
		b.WriteString(strconv.FormatBool(v.Bool()))
	case protoreflect.Int32Kind, protoreflect.Sint32Kind, protoreflect.Sfixed32Kind,
		protoreflect.Int64Kind, protoreflect.Sint64Kind, protoreflect.Sfixed64Kind:
		b.WriteString(strconv.FormatInt(v.Int(), 10))
	case protoreflect.Uint32Kind, protoreflect.Fixed32Kind, protoreflect.Uint64Kind, protoreflect.Fixed64Kind:
		b.WriteString(strconv.FormatUint(v.Uint(), 10))
	case protoreflect.FloatKind, protoreflect.DoubleKind:
		enc, err := json.Marshal(v.Float())
		if err != nil {
			return err
		}
		b.Write(enc)
	case protoreflect.StringKind:
		return writeString(b, v.String())
	case protoreflect.BytesKind:
		return writeString(b, base64.StdEncoding.EncodeToString(v.Bytes()))
	case protoreflect.EnumKind:
		return writeString(b, EnumName(fd.Enum(), v.Enum()))
	case protoreflect.MessageKind, protoreflect.GroupKind:
		return writeMessage(b, v.Message())
	default:
		return fmt.Errorf("apijson: unsupported field kind %v of %s", fd.Kind(), fd.FullName())
	}
	return nil
}

func writeString(b *bytes.Buffer, s string) error {
	enc, err := json.Marshal(s)
	if err != nil {
		return err
	}
	b.Write(enc)
	return nil
}
