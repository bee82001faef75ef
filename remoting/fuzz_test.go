package remoting

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"unicode/utf8"
)

// fuzzSeeds are written to testdata/fuzz by -update; go test replays them from there.
func fuzzSeeds() map[string][]byte {
	seeds := map[string][]byte{}
	for _, g := range goldenFrames {
		f, _ := AppendFrame(nil, g.cmd, g.st)
		seeds[g.name] = f
	}
	seeds["java_json_request"] = jsonFrameWithLen(`{"code":310,"extFields":{"a":"pg","b":"TopicTest","d":"4"},"flag":0,"language":"JAVA","opaque":7,"serializeTypeCurrentRPC":"JSON","version":409}`, "body")
	seeds["json_unknown_fields"] = jsonFrameWithLen(`{"x":{"y":[1,2.5e3,{"z":null}]},"code":3,"language":9,"remark":"\ud83d\ude00"}`, "")
	seeds["unknown_serialize_type"] = []byte{0, 0, 0, 6, 5, 0, 0, 2, '{', '}'}
	seeds["negative_length"] = []byte{0xff, 0xff, 0xff, 0xfe, 0, 0}
	seeds["binary_dup_keys"] = append(binary.BigEndian.AppendUint32(nil, 0), binFrame(newBinHeader(0, "r").ext(extBlock("a", "1", "a", "", "", "x")), "b")...)
	binary.BigEndian.PutUint32(seeds["binary_dup_keys"], uint32(len(seeds["binary_dup_keys"])-4))
	return seeds
}

func TestWriteFuzzCorpus(t *testing.T) {
	if !*update {
		t.Skip("run with -update to rewrite testdata/fuzz")
	}
	for _, target := range []string{"FuzzDecodeFrame", "FuzzReadCommand"} {
		dir := filepath.Join("testdata", "fuzz", target)
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		for name, frame := range fuzzSeeds() {
			data := frame
			if target == "FuzzDecodeFrame" && len(frame) >= 4 {
				data = frame[4:] // DecodeFrame takes the frame without its length
			}
			content := "go test fuzz v1\n[]byte(" + strconv.Quote(string(data)) + ")\n"
			if err := os.WriteFile(filepath.Join(dir, "seed_"+name), []byte(content), 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
}

// FuzzDecodeFrame checks that DecodeFrame never panics, that whatever it accepts survives a
// re-encode and decode unchanged, and that accepted JSON headers agree with encoding/json.
func FuzzDecodeFrame(f *testing.F) {
	f.Add([]byte{0, 0, 0, 2, '{', '}'})
	f.Fuzz(func(t *testing.T, b []byte) {
		c, err := DecodeFrame(b)
		if err != nil {
			if !isAny(err, ErrBadFrame, ErrUnknownSerializeType) {
				t.Fatalf("unexpected error class: %v", err)
			}
			return
		}
		frame, err := AppendFrame(nil, c, c.Serialize)
		if err != nil {
			if errors.Is(err, ErrFrameTooLarge) {
				return // e.g. escapes grew the header past 16 MiB
			}
			t.Fatalf("re-encode of %+v: %v", *c, err)
		}
		c2, err := DecodeFrame(frame[4:])
		if err != nil {
			t.Fatalf("decode of re-encoded %+v: %v", *c, err)
		}
		if !sameCommand(c, c2) {
			t.Fatalf("round trip changed the command:\n%+v\n%+v", *c, *c2)
		}
		if c.Serialize == JSON {
			hlen := int(binary.BigEndian.Uint32(b) & maxHeaderLen)
			compareWithEncodingJSON(t, b[4:4+hlen], c)
		}
	})
}

// compareWithEncodingJSON: when encoding/json also parses the header, both must agree on every
// field this package reads.
func compareWithEncodingJSON(t *testing.T, header []byte, c *Command) {
	if !utf8.Valid(header) {
		return // encoding/json replaces invalid UTF-8; this decoder keeps the bytes
	}
	var raw map[string]json.RawMessage
	if json.Unmarshal(header, &raw) != nil {
		return
	}
	ints := map[string]int32{"code": c.Code, "opaque": c.Opaque, "flag": c.Flag, "version": c.Version}
	for k, got := range ints {
		v, ok := raw[k]
		if !ok || string(v) == "null" {
			if got != 0 {
				t.Fatalf("%s: got %d, encoding/json sees none", k, got)
			}
			continue
		}
		if want, err := strconv.ParseInt(string(v), 10, 32); err != nil || int32(want) != got {
			t.Fatalf("%s: got %d, encoding/json %s", k, got, v)
		}
	}
	var remark *string
	if v, ok := raw["remark"]; ok {
		if json.Unmarshal(v, &remark) != nil {
			t.Fatalf("remark %s accepted here only", v)
		}
	}
	if remark != nil && *remark != c.Remark || remark == nil && c.Remark != "" {
		t.Fatalf("remark: got %q, encoding/json %v", c.Remark, remark)
	}
	want := map[string]string{}
	if v, ok := raw["extFields"]; ok && string(v) != "null" {
		dec := json.NewDecoder(bytes.NewReader(v))
		dec.UseNumber()
		var m map[string]any
		if dec.Decode(&m) != nil {
			t.Fatalf("extFields %s accepted here only", v)
		}
		for k, x := range m {
			switch x := x.(type) {
			case nil:
			case string:
				want[k] = x
			case json.Number:
				want[k] = x.String()
			case bool:
				want[k] = strconv.FormatBool(x)
			default:
				t.Fatalf("ext %q = %v accepted here only", k, x)
			}
		}
	}
	if fmt.Sprint(want) != fmt.Sprint(c.ExtFields) && !(len(want) == 0 && len(c.ExtFields) == 0) {
		t.Fatalf("extFields: got %v, encoding/json %v", c.ExtFields, want)
	}
}

// FuzzReadCommand checks that ReadCommand never panics, never reads past the frame it
// reports, and that a small limit holds.
func FuzzReadCommand(f *testing.F) {
	f.Add([]byte{0, 0, 0, 6, 0, 0, 0, 2, '{', '}'})
	f.Fuzz(func(t *testing.T, b []byte) {
		const maxFrame = 4096
		r := bytes.NewReader(b)
		for {
			before := r.Len()
			c, err := ReadCommand(r, maxFrame)
			if err != nil {
				if !isAny(err, io.EOF, io.ErrUnexpectedEOF, ErrBadFrame, ErrFrameTooLarge, ErrUnknownSerializeType) {
					t.Fatalf("unexpected error: %v", err)
				}
				return
			}
			used := before - r.Len()
			if used > maxFrame || used != 4+int(binary.BigEndian.Uint32(b[len(b)-before:])) {
				t.Fatalf("consumed %d bytes for one frame", used)
			}
			_ = c
		}
	})
}
