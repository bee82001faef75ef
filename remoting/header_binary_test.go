package remoting

import (
	"encoding/binary"
	"errors"
	"testing"
)

func TestDecodeBinaryHeader(t *testing.T) {
	t.Parallel()
	base := Command{Language: LanguageJava, Version: 409, Opaque: 11, Flag: FlagResponse, Serialize: RocketMQ}
	with := func(f func(c *Command)) Command { c := base; f(&c); return c }
	tests := []struct {
		name   string
		header []byte
		want   Command
	}{
		{"no remark, no ext", newBinHeader(0, "").ext(nil), base},
		{"remark and ext", newBinHeader(17, "no route").ext(extBlock("topic", "T", "x", "1")),
			with(func(c *Command) {
				c.Code = 17
				c.Remark = "no route"
				c.ExtFields = map[string]string{"topic": "T", "x": "1"}
			})},
		{"zero-length value is absent", newBinHeader(0, "").ext(extBlock("a", "", "b", "2")),
			with(func(c *Command) { c.ExtFields = map[string]string{"b": "2"} })},
		{"zero-length key is dropped", newBinHeader(0, "").ext(extBlock("", "v", "b", "2")),
			with(func(c *Command) { c.ExtFields = map[string]string{"b": "2"} })},
		{"only empty entries", newBinHeader(0, "").ext(extBlock("a", "", "", "x")), base},
		{"duplicate keys: last wins", newBinHeader(0, "").ext(extBlock("msgId", "1", "queueId", "3", "msgId", "2")),
			with(func(c *Command) { c.ExtFields = map[string]string{"msgId": "2", "queueId": "3"} })},
		{"duplicate key then empty value: absent", newBinHeader(0, "").ext(extBlock("a", "1", "a", "")), base},
		{"negative code (int16)", newBinHeader(-1000, "").ext(nil), with(func(c *Command) { c.Code = -1000 })},
		{"bytes after the ext block ignored", append(newBinHeader(0, "").ext(extBlock("a", "1")), 9, 9, 9),
			with(func(c *Command) { c.ExtFields = map[string]string{"a": "1"} })},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, err := DecodeFrame(binFrame(tt.header, "B"))
			if err != nil {
				t.Fatal(err)
			}
			want := tt.want
			want.Body = []byte("B")
			assertCommand(t, got, &want)
		})
	}
}

func TestDecodeBinaryHeaderErrors(t *testing.T) {
	t.Parallel()
	withRemarkLen := func(n uint32) []byte {
		h := newBinHeader(0, "abc").ext(nil)
		binary.BigEndian.PutUint32(h[13:], n)
		return h
	}
	withExtLen := func(n uint32) []byte {
		h := newBinHeader(0, "").ext(extBlock("a", "1"))
		binary.BigEndian.PutUint32(h[17:], n)
		return h
	}
	tests := []struct {
		name   string
		header []byte
	}{
		{"shorter than fixed part", newBinHeader(0, "").b[:20]},
		{"missing ext length", newBinHeader(0, "").b},
		{"remark longer than header", withRemarkLen(1000)},
		{"remark eats the ext length", withRemarkLen(5)},
		{"negative remark length", withRemarkLen(0xFFFFFFFF)},
		{"ext block longer than header", withExtLen(100)},
		{"negative ext length", withExtLen(0x80000000)},
		{"truncated key length", newBinHeader(0, "").ext([]byte{0})},
		{"key longer than block", newBinHeader(0, "").ext([]byte{0, 9, 'a', 0, 0, 0, 0})},
		{"negative key length", newBinHeader(0, "").ext([]byte{0xFF, 0xFF, 0, 0, 0, 0})},
		{"value longer than block", newBinHeader(0, "").ext([]byte{0, 1, 'a', 0, 0, 0, 9, 'v'})},
		{"negative value length", newBinHeader(0, "").ext([]byte{0, 1, 'a', 0xFF, 0, 0, 0})},
		{"truncated value length", newBinHeader(0, "").ext([]byte{0, 1, 'a', 0, 0})},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if _, err := DecodeFrame(binFrame(tt.header, "")); !errors.Is(err, ErrBadFrame) {
				t.Fatalf("got %v, want ErrBadFrame", err)
			}
		})
	}
}
