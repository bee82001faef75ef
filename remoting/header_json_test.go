package remoting

import (
	"encoding/binary"
	"errors"
	"strings"
	"testing"
)

func TestJSONHeaderShape(t *testing.T) {
	t.Parallel()
	c := &Command{Code: 310, Language: LanguageJava, Opaque: 7, Version: 409,
		ExtFields: map[string]string{"b": "TopicTest", "a": "pg", "d": "4"}}
	frame, err := AppendFrame(nil, c, JSON)
	if err != nil {
		t.Fatal(err)
	}
	// Spec §1.3: alphabetical fields, language by name, ext values as strings, nulls omitted.
	want := `{"code":310,"extFields":{"a":"pg","b":"TopicTest","d":"4"},"flag":0,"language":"JAVA","opaque":7,` +
		`"serializeTypeCurrentRPC":"JSON","version":409}`
	if got := string(frame[8:]); got != want {
		t.Errorf("header\n got %s\nwant %s", got, want)
	}
	if word := binary.BigEndian.Uint32(frame[4:]); word != uint32(len(want)) {
		t.Errorf("header word %#x, want serialize type 0 and length %d", word, len(want))
	}
}

func TestDecodeJSONHeader(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		header string
		want   Command
	}{
		{"java request from the spec",
			`{"code":310,"extFields":{"a":"pg","b":"TopicTest","d":"4"},"flag":0,"language":"JAVA","opaque":7,"serializeTypeCurrentRPC":"JSON","version":409}`,
			Command{Code: 310, Opaque: 7, Version: 409, ExtFields: map[string]string{"a": "pg", "b": "TopicTest", "d": "4"}}},
		{"language as name", `{"code":0,"language":"GO"}`, Command{Language: LanguageGo}},
		{"language as int", `{"language":12}`, Command{Language: LanguageRust}},
		{"unknown language name", `{"language":"COBOL"}`, Command{Language: LanguageOther}},
		{"out of range language int", `{"language":4000}`, Command{Language: LanguageOther}},
		{"unknown fields of every kind skipped",
			`{"x":{"y":[1,2.5e3,{"z":null}],"w":"s\"\\"},"code":3,"t":true,"f":false,"n":null,"e":-1.5E-2,"a":[]}`,
			Command{Code: 3}},
		{"nulls are absent", `{"code":1,"remark":null,"extFields":null,"language":null,"opaque":null}`, Command{Code: 1}},
		{"ext scalars kept as text", `{"extFields":{"n":4,"neg":-1.5,"t":true,"f":false,"s":"x","gone":null}}`,
			Command{ExtFields: map[string]string{"n": "4", "neg": "-1.5", "t": "true", "f": "false", "s": "x"}}},
		{"empty ext object is nil", `{"extFields":{}}`, Command{}},
		{"escapes", `{"remark":"a\"b\\c\/d\b\f\n\r\t\u0001\u00e9\u65e5\ud83d\ude00"}`,
			Command{Remark: "a\"b\\c/d\b\f\n\r\t\x01é日😀"}},
		{"lone surrogates become U+FFFD", `{"remark":"\ud800x\udc00\ud800\u0041"}`, Command{Remark: "\uFFFDx\uFFFD\uFFFDA"}},
		{"raw UTF-8 and control bytes pass", "{\"remark\":\"日本\x01\"}", Command{Remark: "日本\x01"}},
		{"escaped key", `{"c\u006fde":5}`, Command{Code: 5}},
		{"whitespace", " {\n\t\"code\" : 2 ,\r\n \"flag\":1 } \n", Command{Code: 2, Flag: 1}},
		{"duplicate keys: last wins", `{"code":1,"code":2,"extFields":{"a":"1","a":"2"},"remark":"x","remark":"y"}`,
			Command{Code: 2, ExtFields: map[string]string{"a": "2"}, Remark: "y"}},
		{"duplicate ext: null deletes", `{"extFields":{"a":"1","a":null,"b":"2"}}`, Command{ExtFields: map[string]string{"b": "2"}}},
		{"int32 bounds", `{"code":-2147483648,"opaque":2147483647}`, Command{Code: -2147483648, Opaque: 2147483647}},
		{"keys are case-sensitive", `{"Code":5}`, Command{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, err := DecodeFrame(jsonFrame(tt.header, "body"))
			if err != nil {
				t.Fatal(err)
			}
			want := tt.want
			want.Body = []byte("body")
			assertCommand(t, got, &want)
		})
	}
}

func TestDecodeJSONHeaderErrors(t *testing.T) {
	t.Parallel()
	tests := []struct{ name, header string }{
		{"empty", ``},
		{"not an object", `[1]`},
		{"null", `null`},
		{"trailing data", `{"code":1}x`},
		{"two objects", `{}{}`},
		{"truncated", `{"code":1`},
		{"truncated string", `{"remark":"abc`},
		{"missing colon", `{"code" 1}`},
		{"missing comma", `{"code":1 "flag":2}`},
		{"trailing comma", `{"code":1,}`},
		{"code is a float", `{"code":1.5}`},
		{"code with exponent", `{"code":1e2}`},
		{"code is a string", `{"code":"1"}`},
		{"code is a bool", `{"code":true}`},
		{"code out of int32", `{"code":2147483648}`},
		{"code overflows int64", `{"code":99999999999999999999999}`},
		{"bare minus", `{"code":-}`},
		{"remark is a number", `{"remark":5}`},
		{"ext value is an object", `{"extFields":{"a":{}}}`},
		{"ext value is an array", `{"extFields":{"a":[]}}`},
		{"extFields is an array", `{"extFields":[]}`},
		{"bad escape", `{"remark":"\x"}`},
		{"short unicode escape", `{"remark":"\u12"}`},
		{"bad literal", `{"x":nul}`},
		{"bad number", `{"x":1.}`},
		{"too deep", `{"x":` + strings.Repeat("[", 100) + strings.Repeat("]", 100) + `}`},
		{"unquoted key", `{code:1}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			_, err := DecodeFrame(jsonFrame(tt.header, ""))
			if !errors.Is(err, ErrBadFrame) {
				t.Fatalf("DecodeFrame(%q) = %v, want ErrBadFrame", tt.header, err)
			}
		})
	}
}
