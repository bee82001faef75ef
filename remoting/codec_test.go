package remoting

import (
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
	"maps"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite golden files in testdata")

// sendV2Request is a SEND_MESSAGE_V2 request with every single-letter field of spec §4.2.
func sendV2Request(body []byte) *Command {
	return &Command{
		Code:     int32(SendMessageV2),
		Language: LanguageGo,
		Version:  409,
		Opaque:   7,
		ExtFields: map[string]string{
			"a": "producerd_group", "b": "IT_Remoting", "c": "TBW102", "d": "4", "e": "1", "f": "0",
			"g": "1735689600000", "h": "0",
			"i": "UNIQ_KEY\x017F0000010001B4A5C1D2E3F400000001\x02WAIT\x01true\x02TAGS\x01tagA\x02",
			"j": "0", "k": "false", "l": "16", "m": "false", "n": "broker-a",
		},
		Body: body,
	}
}

func sendResponse() *Command {
	return &Command{
		Code:     int32(Success),
		Language: LanguageJava,
		Version:  479,
		Opaque:   7,
		Flag:     FlagResponse,
		ExtFields: map[string]string{
			"msgId": "7F00000100002A9F0000000000000F3C", "queueId": "1", "queueOffset": "42",
			"MSG_REGION": "DefaultRegion", "TRACE_ON": "true",
		},
	}
}

var goldenFrames = []struct {
	name string
	desc string
	cmd  *Command
	st   SerializeType
}{
	{"send_v2_json", "SEND_MESSAGE_V2 request, JSON header", sendV2Request([]byte("hello, rocketmq")), JSON},
	{"send_v2_rocketmq", "SEND_MESSAGE_V2 request, ROCKETMQ header", sendV2Request([]byte("hello, rocketmq")), RocketMQ},
	{"send_response_json", "SUCCESS response to a send, JSON header", sendResponse(), JSON},
	{"send_response_rocketmq", "SUCCESS response to a send, ROCKETMQ header", sendResponse(), RocketMQ},
	{"oneway_remark_json", "oneway request with escapes in remark and ext, JSON header", &Command{
		Code: int32(EndTransaction), Language: LanguageRust, Version: 317, Opaque: -5, Flag: FlagOneway,
		Remark:    "quote \" backslash \\ newline \n ctl \x01 utf8 é 日本",
		ExtFields: map[string]string{"k\"ey": "v\tal", "empty": ""},
	}, JSON},
	{"error_response_rocketmq", "SYSTEM_BUSY response with remark, ROCKETMQ header", &Command{
		Code: int32(SystemBusy), Language: LanguageJava, Version: 409, Opaque: 99, Flag: FlagResponse,
		Remark: "[REJECTREQUEST]system busy, start flow control for a while",
	}, RocketMQ},
}

func TestGoldenFrames(t *testing.T) {
	for _, g := range goldenFrames {
		t.Run(g.name, func(t *testing.T) {
			frame, err := AppendFrame(nil, g.cmd, g.st)
			if err != nil {
				t.Fatal(err)
			}
			path := filepath.Join("testdata", g.name+".hex")
			text := formatHex(g.desc, frame)
			if *update {
				if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(path)
			if err != nil {
				t.Fatalf("%v (run go test -update to create it)", err)
			}
			if string(want) != text {
				t.Errorf("encoding of %s differs from %s:\n got:\n%s\nwant:\n%s", g.name, path, text, want)
			}
			raw := parseHex(t, string(want))
			got, err := DecodeFrame(raw[4:])
			if err != nil {
				t.Fatal(err)
			}
			if n := binary.BigEndian.Uint32(raw); int(n) != len(raw)-4 {
				t.Errorf("totalLen %d, frame has %d bytes after it", n, len(raw)-4)
			}
			wantCmd := *g.cmd
			wantCmd.Serialize = g.st
			if g.st == RocketMQ { // zero-length values decode as absent
				wantCmd.ExtFields = maps.Clone(g.cmd.ExtFields)
				maps.DeleteFunc(wantCmd.ExtFields, func(_, v string) bool { return v == "" })
			}
			assertCommand(t, got, &wantCmd)
		})
	}
}

func formatHex(desc string, b []byte) string {
	var sb strings.Builder
	fmt.Fprintf(&sb, "# %s (%d bytes); regenerate with go test -run TestGoldenFrames -update\n", desc, len(b))
	for len(b) > 0 {
		n := min(32, len(b))
		sb.WriteString(hex.EncodeToString(b[:n]))
		sb.WriteByte('\n')
		b = b[n:]
	}
	return sb.String()
}

func parseHex(t testing.TB, s string) []byte {
	t.Helper()
	var sb strings.Builder
	for _, line := range strings.Split(s, "\n") {
		if line = strings.TrimSpace(line); line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		sb.WriteString(strings.Join(strings.Fields(line), ""))
	}
	b, err := hex.DecodeString(sb.String())
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// sameCommand compares commands, treating nil and empty maps and bodies as equal.
func sameCommand(a, b *Command) bool {
	return a.Code == b.Code && a.Language == b.Language && a.Version == b.Version &&
		a.Opaque == b.Opaque && a.Flag == b.Flag && a.Remark == b.Remark &&
		maps.Equal(a.ExtFields, b.ExtFields) && bytes.Equal(a.Body, b.Body) && a.Serialize == b.Serialize
}

func assertCommand(t testing.TB, got, want *Command) {
	t.Helper()
	if !sameCommand(got, want) {
		t.Errorf("command mismatch:\n got %+v\nwant %+v", *got, *want)
	}
}

func jsonFrame(header string, body string) []byte {
	b := binary.BigEndian.AppendUint32(nil, uint32(len(header)))
	b = append(b, header...)
	return append(b, body...)
}

// binHeader builds a ROCKETMQ header by hand.
type binHeader struct{ b []byte }

func newBinHeader(code int16, remark string) *binHeader {
	h := &binHeader{}
	h.b = binary.BigEndian.AppendUint16(h.b, uint16(code))
	h.b = append(h.b, byte(LanguageJava))
	h.b = binary.BigEndian.AppendUint16(h.b, 409)
	h.b = binary.BigEndian.AppendUint32(h.b, 11)
	h.b = binary.BigEndian.AppendUint32(h.b, FlagResponse)
	h.b = binary.BigEndian.AppendUint32(h.b, uint32(len(remark)))
	h.b = append(h.b, remark...)
	return h
}

func extBlock(kv ...string) []byte {
	var b []byte
	for i := 0; i < len(kv); i += 2 {
		b = binary.BigEndian.AppendUint16(b, uint16(len(kv[i])))
		b = append(b, kv[i]...)
		b = binary.BigEndian.AppendUint32(b, uint32(len(kv[i+1])))
		b = append(b, kv[i+1]...)
	}
	return b
}

func (h *binHeader) ext(block []byte) []byte {
	out := binary.BigEndian.AppendUint32(append([]byte(nil), h.b...), uint32(len(block)))
	return append(out, block...)
}

func binFrame(header []byte, body string) []byte {
	b := binary.BigEndian.AppendUint32(nil, uint32(RocketMQ)<<24|uint32(len(header)))
	b = append(b, header...)
	return append(b, body...)
}

func TestDecodeFrameErrors(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name  string
		frame []byte
		want  error
		text  string
	}{
		{"no header word", []byte{0, 0}, ErrBadFrame, ""},
		{"header length beyond frame", []byte{0, 0, 0, 10, '{', '}'}, ErrBadFrame, "header length 10"},
		{"unknown serialize type", append([]byte{5, 0, 0, 2}, "{}"...), ErrUnknownSerializeType, "0x05"},
		{"unknown serialize type 0xff", append([]byte{0xff, 0, 0, 2}, "{}"...), ErrUnknownSerializeType, "0xff"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			_, err := DecodeFrame(tt.frame)
			if !errors.Is(err, tt.want) || !strings.Contains(fmt.Sprint(err), tt.text) {
				t.Fatalf("got %v, want %v mentioning %q", err, tt.want, tt.text)
			}
		})
	}
}

func TestRoundTrip(t *testing.T) {
	t.Parallel()
	cmds := []*Command{
		{},
		sendV2Request(bytes.Repeat([]byte{0, 1, 2, 0xff}, 300)),
		sendResponse(),
		{Code: -1, Language: lastLanguage(), Version: -3, Opaque: -2147483648, Flag: 3, Remark: "r"},
		{Code: 105, ExtFields: map[string]string{"topic": "TBW102", "acceptStandardJsonOnly": "true"}},
		{Code: 1, Remark: strings.Repeat("x", 70000), ExtFields: map[string]string{strings.Repeat("k", 300): strings.Repeat("v", 70000)}},
		{Code: 7, Language: 200}, // unknown language travels as an int in JSON
	}
	for _, st := range []SerializeType{JSON, RocketMQ} {
		for i, c := range cmds {
			t.Run(fmt.Sprintf("%s/%d", st, i), func(t *testing.T) {
				t.Parallel()
				frame, err := AppendFrame([]byte("prefix"), c, st)
				if err != nil {
					t.Fatal(err)
				}
				if string(frame[:6]) != "prefix" {
					t.Fatal("AppendFrame clobbered dst")
				}
				got, err := ReadCommand(bytes.NewReader(frame[6:]), 0)
				if err != nil {
					t.Fatal(err)
				}
				want := *c
				want.Serialize = st
				assertCommand(t, got, &want)
			})
		}
	}
}

// lastLanguage is the last named language.
func lastLanguage() LanguageCode { return LanguageCode(len(languageNames) - 1) }

func TestAppendFrameErrors(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		cmd  *Command
		st   SerializeType
		want error
	}{
		{"code beyond int16 in ROCKETMQ", &Command{Code: 40000}, RocketMQ, ErrBadFrame},
		{"version beyond int16 in ROCKETMQ", &Command{Version: -40000}, RocketMQ, ErrBadFrame},
		{"key beyond int16 in ROCKETMQ", &Command{ExtFields: map[string]string{strings.Repeat("k", 40000): "v"}}, RocketMQ, ErrBadFrame},
		{"header beyond 24 bits", &Command{Remark: strings.Repeat("r", 1<<24)}, JSON, ErrFrameTooLarge},
		{"unknown serialize type", &Command{}, 3, ErrUnknownSerializeType},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			dst := []byte("keep")
			out, err := AppendFrame(dst, tt.cmd, tt.st)
			if !errors.Is(err, tt.want) {
				t.Fatalf("got %v, want %v", err, tt.want)
			}
			if string(out) != "keep" {
				t.Errorf("dst changed on error: %q", out)
			}
		})
	}
	// A code beyond int16 is fine in JSON.
	if _, err := AppendFrame(nil, &Command{Code: 40000}, JSON); err != nil {
		t.Errorf("JSON code 40000: %v", err)
	}
}

func TestReadCommandLengthChecks(t *testing.T) {
	t.Parallel()
	const maxFrame = 2048
	frameOfTotal := func(total int) []byte {
		header := `{"code":0}`
		return jsonFrameWithLen(header, strings.Repeat("b", total-4-len(header)))
	}
	tests := []struct {
		name  string
		input []byte
		want  error // nil: accepted
	}{
		{"largest accepted totalLen is max-4", frameOfTotal(maxFrame - 4), nil},
		{"one more is too large", frameOfTotal(maxFrame - 3), ErrFrameTooLarge},
		{"negative", []byte{0x80, 0, 0, 0}, ErrBadFrame},
		{"minus one", []byte{0xff, 0xff, 0xff, 0xff}, ErrBadFrame},
		{"shorter than header word", []byte{0, 0, 0, 3, 0, 0, 0}, ErrBadFrame},
		{"huge", []byte{0x7f, 0xff, 0xff, 0xff}, ErrFrameTooLarge},
		{"empty stream", nil, io.EOF},
		{"truncated prefix", []byte{0, 0}, io.ErrUnexpectedEOF},
		{"truncated frame", frameOfTotal(100)[:50], io.ErrUnexpectedEOF},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			_, err := ReadCommand(bytes.NewReader(tt.input), maxFrame)
			if tt.want == nil && err != nil || tt.want != nil && !errors.Is(err, tt.want) {
				t.Fatalf("got %v, want %v", err, tt.want)
			}
		})
	}
	// The 16 MiB default: MaxFrameSize-4 passes the length check, MaxFrameSize-3 does not.
	if _, err := checkFrameLen(MaxFrameSize-4, 0); err != nil {
		t.Errorf("default max: %v", err)
	}
	if _, err := checkFrameLen(MaxFrameSize-3, 0); !errors.Is(err, ErrFrameTooLarge) {
		t.Errorf("default max + 1: %v", err)
	}
}

func jsonFrameWithLen(header, body string) []byte {
	f := jsonFrame(header, body)
	return append(binary.BigEndian.AppendUint32(nil, uint32(len(f))), f...)
}

// prefixOnlyReader supplies a length prefix and fails the test if more is read: a decoder that
// trusted the length would have to allocate and read it.
type prefixOnlyReader struct {
	t      testing.TB
	prefix []byte
	off    int
}

func (r *prefixOnlyReader) Read(p []byte) (int, error) {
	if r.off >= len(r.prefix) {
		r.t.Errorf("read beyond the length prefix")
		return 0, io.EOF
	}
	n := copy(p, r.prefix[r.off:])
	r.off += n
	return n, nil
}

func TestReadCommandRejectsBeforeAllocating(t *testing.T) {
	// Not parallel: measures process-wide allocation.
	for _, tt := range []struct {
		name   string
		prefix []byte
		want   error
	}{
		{"16 MiB", binary.BigEndian.AppendUint32(nil, MaxFrameSize), ErrFrameTooLarge},
		{"2 GiB - 1", []byte{0x7f, 0xff, 0xff, 0xff}, ErrFrameTooLarge},
		{"negative", []byte{0xff, 0xff, 0xff, 0xfe}, ErrBadFrame},
	} {
		t.Run(tt.name, func(t *testing.T) {
			r := &prefixOnlyReader{t: t, prefix: tt.prefix}
			var before, after runtime.MemStats
			runtime.ReadMemStats(&before)
			const runs = 100
			allocs := testing.AllocsPerRun(runs, func() {
				r.off = 0
				if _, err := ReadCommand(r, MaxFrameSize); !errors.Is(err, tt.want) {
					t.Fatalf("got %v, want %v", err, tt.want)
				}
			})
			runtime.ReadMemStats(&after)
			// Only the error value and the 4-byte prefix buffer may be allocated.
			if allocs > 6 {
				t.Errorf("%v allocations per rejected frame", allocs)
			}
			if perRun := (after.TotalAlloc - before.TotalAlloc) / (runs + 1); perRun > 4096 {
				t.Errorf("%d bytes allocated per rejected frame", perRun)
			}
		})
	}
}

func TestExtFieldsSorted(t *testing.T) {
	t.Parallel()
	ext := map[string]string{}
	for i := range 40 { // more than the on-stack buffer holds
		ext[fmt.Sprintf("%c%d", 'a'+rune(i*7%26), i)] = "v"
	}
	ext["A"], ext["b"], ext["ba"], ext[""] = "1", "2", "3", "4"
	for _, st := range []SerializeType{JSON, RocketMQ} {
		frame, err := AppendFrame(nil, &Command{ExtFields: ext}, st)
		if err != nil {
			t.Fatal(err)
		}
		var keys []string
		switch st {
		case JSON:
			obj := string(frame[bytes.Index(frame, []byte(`"extFields":{`))+len(`"extFields":{`):])
			for _, member := range strings.Split(obj[:strings.Index(obj, "}")], ",") {
				keys = append(keys, strings.Trim(strings.SplitN(member, ":", 2)[0], `"`))
			}
		case RocketMQ:
			h := frame[8:]
			p := 17 + 4
			for p < len(h) {
				kl := int(binary.BigEndian.Uint16(h[p:]))
				keys = append(keys, string(h[p+2:p+2+kl]))
				p += 2 + kl
				p += 4 + int(binary.BigEndian.Uint32(h[p:]))
			}
		}
		if len(keys) != len(ext) || !slices.IsSorted(keys) {
			t.Errorf("%s: ext keys not in byte order: %q", st, keys)
		}
	}
}
