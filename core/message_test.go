package core

import (
	"bytes"
	"encoding/binary"
	"errors"
	"regexp"
	"strings"
	"testing"
)

func TestValidate(t *testing.T) {
	t.Parallel()
	body := []byte("x")
	tests := []struct {
		name string
		msg  *Message
		rule string // "" = valid
	}{
		{"ok", &Message{Topic: "T_ok-1|%", Body: body}, ""},
		{"nil message", nil, "message.nil"},
		{"blank topic", &Message{Topic: " ", Body: body}, "topic.blank"},
		{"topic with space", &Message{Topic: "a b", Body: body}, "topic.charset"},
		{"topic non-ascii", &Message{Topic: "tôpic", Body: body}, "topic.charset"},
		{"127-char topic", &Message{Topic: strings.Repeat("t", 127), Body: body}, ""},
		{"128-char topic", &Message{Topic: strings.Repeat("t", 128), Body: body}, "topic.length"},
		{"system topic", &Message{Topic: "SCHEDULE_TOPIC_XXXX", Body: body}, "topic.system"},
		{"nil body", &Message{Topic: "T"}, "body.nil"},
		{"empty body", &Message{Topic: "T", Body: []byte{}}, "body.empty"},
		{"max body", &Message{Topic: "T", Body: make([]byte, 4<<20)}, ""},
		{"body 4 MiB + 1", &Message{Topic: "T", Body: make([]byte, 4<<20+1)}, "body.size"},
		{"reserved property", &Message{Topic: "T", Body: body, Properties: map[string]string{"UNIQ_KEY": "x"}}, "property.reserved"},
		{"reserved property TAGS", &Message{Topic: "T", Body: body, Properties: map[string]string{"TAGS": "x"}}, "property.reserved"},
		{"blank property", &Message{Topic: "T", Body: body, Properties: map[string]string{" ": "x"}}, "property.blank"},
		{"separator in value", &Message{Topic: "T", Body: body, Properties: map[string]string{"k": "a\x02b"}}, "property.separator"},
		{"key with space", &Message{Topic: "T", Body: body, Keys: []string{"a b"}}, "keys.format"},
		{"negative delay", &Message{Topic: "T", Body: body, DelayLevel: -1}, "delay.level"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.msg.Validate(0)
			if tt.rule == "" {
				if err != nil {
					t.Fatalf("Validate() = %v, want nil", err)
				}
				return
			}
			var ve *ValidationError
			if !errors.As(err, &ve) || ve.Rule != tt.rule {
				t.Fatalf("Validate() = %v, want rule %s", err, tt.rule)
			}
			if !errors.Is(err, ErrInvalidMessage) {
				t.Fatalf("errors.Is(%v, ErrInvalidMessage) = false", err)
			}
			if !strings.Contains(err.Error(), tt.rule) {
				t.Fatalf("error %q does not name the rule", err)
			}
		})
	}
}

func TestValidateGroup(t *testing.T) {
	t.Parallel()
	for group, ok := range map[string]bool{
		"pg": true, "DEFAULT_PRODUCER": false, "CLIENT_INNER_PRODUCER": false, "": false,
		strings.Repeat("g", 120): true, strings.Repeat("g", 121): false, "a.b": false,
	} {
		if err := ValidateGroup(group); (err == nil) != ok {
			t.Errorf("ValidateGroup(%q) = %v, want ok=%v", group, err, ok)
		}
	}
}

func TestPropertiesRoundTrip(t *testing.T) {
	t.Parallel()
	m := &Message{Topic: "T", Body: []byte("b"), Tags: "TagA", Keys: []string{"k1", "k2"}, DelayLevel: 3,
		ShardingKey: "order-7", Properties: map[string]string{"b": "2", "a": "1"}}
	enc := string(m.encodeProperties(nil, "UNIQ"))
	want := "TAGS\x01TagA\x02KEYS\x01k1 k2\x02DELAY\x013\x02__SHARDINGKEY\x01order-7\x02WAIT\x01true\x02UNIQ_KEY\x01UNIQ\x02a\x011\x02b\x012\x02"
	if enc != want {
		t.Fatalf("encodeProperties = %q, want %q", enc, want)
	}
	got := DecodeProperties(enc)
	for k, v := range map[string]string{"TAGS": "TagA", "KEYS": "k1 k2", "DELAY": "3", "WAIT": "true", "UNIQ_KEY": "UNIQ", "a": "1", "b": "2", PropertyShardingKey: "order-7"} {
		if got[k] != v {
			t.Errorf("decoded %s = %q, want %q", k, got[k], v)
		}
	}
	// Broker decoder rules: short or malformed segments are skipped.
	if p := DecodeProperties("a\x01\x02\x01b\x02ok\x01v\x02x"); len(p) != 1 || p["ok"] != "v" {
		t.Fatalf("malformed segments: %v", p)
	}
}

func TestUniqKey(t *testing.T) {
	t.Parallel()
	re := regexp.MustCompile(`^[0-9A-F]{32}$|^[0-9A-F]{56}$`)
	seen := make(map[string]bool)
	for range 1000 {
		id := uniqIDs.next()
		if !re.MatchString(id) {
			t.Fatalf("uniq key %q is not 32 or 56 uppercase hex chars", id)
		}
		if seen[id] {
			t.Fatalf("duplicate uniq key %s", id)
		}
		seen[id] = true
	}
	g := newUniqIDGenerator([]byte{10, 1, 2, 3})
	if id := g.next(); !strings.HasPrefix(id, "0A010203") || len(id) != 32 {
		t.Fatalf("IPv4 layout: %s", id)
	}
}

func TestCompressRoundTrip(t *testing.T) {
	t.Parallel()
	body := bytes.Repeat([]byte("producerd "), 1000)
	z, ok := compress(body, DefaultCompressLevel)
	if !ok || len(z) >= len(body) {
		t.Fatalf("compress: ok=%v len=%d", ok, len(z))
	}
	if z[0] != 0x78 { // zlib header (RFC 1950), not raw deflate or gzip
		t.Fatalf("not a zlib stream: first byte %#x", z[0])
	}
	out, err := decompress(z, len(body))
	if err != nil || !bytes.Equal(out, body) {
		t.Fatalf("decompress: %v", err)
	}
	if _, err := decompress(z, len(body)-1); err == nil {
		t.Fatal("decompress beyond the limit succeeded")
	}
}

func TestPrepareCompressionFlags(t *testing.T) {
	t.Parallel()
	p := &Producer{cfg: (&ProducerConfig{Group: "g"}).withDefaults()}
	small, err := p.prepare(&Message{Topic: "T", Body: bytes.Repeat([]byte("a"), 4095)})
	if err != nil {
		t.Fatal(err)
	}
	if small.sysFlag != 0 {
		t.Fatalf("4095-byte body compressed: sysFlag %#x", small.sysFlag)
	}
	big, err := p.prepare(&Message{Topic: "T", Body: bytes.Repeat([]byte("a"), 4096)})
	if err != nil {
		t.Fatal(err)
	}
	if big.sysFlag != sysFlagCompressed|sysFlagCompressionZip {
		t.Fatalf("4096-byte body: sysFlag %#x, want %#x", big.sysFlag, sysFlagCompressed|sysFlagCompressionZip)
	}
	if len(big.uniqKey) == 0 || !strings.Contains(big.props, "UNIQ_KEY\x01"+big.uniqKey+"\x02") {
		t.Fatalf("uniq key missing from properties %q", big.props)
	}
}

func TestBatchEncoding(t *testing.T) {
	t.Parallel()
	p := &Producer{cfg: (&ProducerConfig{Group: "g"}).withDefaults()}
	msgs := []*Message{{Topic: "T", Body: []byte("one"), Tags: "a"}, {Topic: "T", Body: []byte("two"), Flag: 7}}
	pr, err := p.prepareBatch(msgs)
	if err != nil {
		t.Fatal(err)
	}
	if !pr.batch || pr.reqCode != 320 || pr.sysFlag != 0 {
		t.Fatalf("batch prepared wrong: %+v", pr)
	}
	if ids := strings.Split(pr.uniqKey, ","); len(ids) != 2 || ids[0] == ids[1] {
		t.Fatalf("batch ids %q", pr.uniqKey)
	}
	// Walk the records.
	b := pr.body
	for i, m := range msgs {
		total := int(binary.BigEndian.Uint32(b))
		if binary.BigEndian.Uint32(b[4:]) != 0 || binary.BigEndian.Uint32(b[8:]) != 0 {
			t.Fatalf("record %d: magic/crc not zero", i)
		}
		if flag := int32(binary.BigEndian.Uint32(b[12:])); flag != m.Flag {
			t.Fatalf("record %d flag %d", i, flag)
		}
		bl := int(binary.BigEndian.Uint32(b[16:]))
		if string(b[20:20+bl]) != string(m.Body) {
			t.Fatalf("record %d body %q", i, b[20:20+bl])
		}
		pl := int(binary.BigEndian.Uint16(b[20+bl:]))
		props := DecodeProperties(string(b[22+bl : 22+bl+pl]))
		if props["UNIQ_KEY"] == "" || props["TAGS"] != m.Tags {
			t.Fatalf("record %d props %v", i, props)
		}
		if total != 22+bl+pl {
			t.Fatalf("record %d totalSize %d, want %d", i, total, 22+bl+pl)
		}
		b = b[total:]
	}
	if len(b) != 0 {
		t.Fatalf("%d trailing bytes", len(b))
	}

	for name, bad := range map[string][]*Message{
		"batch.empty": {},
		"batch.topic": {{Topic: "T", Body: []byte("x")}, {Topic: "U", Body: []byte("x")}},
		"batch.delay": {{Topic: "T", Body: []byte("x")}, {Topic: "T", Body: []byte("x"), DelayLevel: 2}},
		"body.empty":  {{Topic: "T", Body: []byte{}}},
	} {
		var ve *ValidationError
		if _, err := p.prepareBatch(bad); !errors.As(err, &ve) || ve.Rule != name {
			t.Errorf("%s: got %v", name, err)
		}
	}
}

func TestDecodeStoredMessage(t *testing.T) {
	t.Parallel()
	body, _ := compress(bytes.Repeat([]byte("z"), 5000), 5)
	props := []byte("KEYS\x01k1 k2\x02TAGS\x01t\x02UNIQ_KEY\x01ABC\x02")
	var b []byte
	b = binary.BigEndian.AppendUint32(b, 0) // total, patched below
	b = binary.BigEndian.AppendUint32(b, uint32(0xDAA320AB))
	b = binary.BigEndian.AppendUint32(b, 0)       // crc
	b = binary.BigEndian.AppendUint32(b, 3)       // queue id
	b = binary.BigEndian.AppendUint32(b, 0)       // flag
	b = binary.BigEndian.AppendUint64(b, 42)      // queue offset
	b = binary.BigEndian.AppendUint64(b, 1000)    // commit log offset
	b = binary.BigEndian.AppendUint32(b, 0x301)   // sysflag: compressed zlib
	b = binary.BigEndian.AppendUint64(b, 1)       // born
	b = append(b, 127, 0, 0, 1, 0, 0, 0x30, 0x39) // born host
	b = binary.BigEndian.AppendUint64(b, 2)       // store time
	b = append(b, 127, 0, 0, 1, 0, 0, 0x2a, 0x9f) // store host :10911
	b = binary.BigEndian.AppendUint32(b, 0)       // reconsume
	b = binary.BigEndian.AppendUint64(b, 0)       // prepared tx offset
	b = binary.BigEndian.AppendUint32(b, uint32(len(body)))
	b = append(b, body...)
	b = binary.BigEndian.AppendUint16(b, 1)
	b = append(b, 'T')
	b = binary.BigEndian.AppendUint16(b, uint16(len(props)))
	b = append(b, props...)
	binary.BigEndian.PutUint32(b, uint32(len(b)))

	msgs, err := DecodeMessages(append(b, b...))
	if err != nil || len(msgs) != 2 {
		t.Fatalf("DecodeMessages: %d, %v", len(msgs), err)
	}
	m := msgs[0]
	if m.Topic != "T" || m.QueueID != 3 || m.QueueOffset != 42 || len(m.Body) != 5000 || m.StoreHost != "127.0.0.1:10911" ||
		m.Tags() != "t" || m.UniqKey() != "ABC" || strings.Join(m.Keys(), ",") != "k1,k2" {
		t.Fatalf("decoded %+v", m)
	}
	if _, err := DecodeMessages(b[:len(b)-3]); err == nil {
		t.Fatal("truncated message decoded")
	}
}

func TestParseOffsetMsgID(t *testing.T) {
	t.Parallel()
	addr, off, err := ParseOffsetMsgID("7F00000100002A9F00000000000003E8")
	if err != nil || addr != "127.0.0.1:10911" || off != 1000 {
		t.Fatalf("= %s %d %v", addr, off, err)
	}
	if _, _, err := ParseOffsetMsgID("zz"); err == nil {
		t.Fatal("bad id accepted")
	}
}

// BenchmarkCompress16KiB measures the zlib level-5 compression of a 16 KiB body, the
// dominant CPU cost of large sends: go test -run '^$' -bench Compress -benchmem ./core/
func BenchmarkCompress16KiB(b *testing.B) {
	body := make([]byte, 16<<10)
	for i := range body {
		body[i] = byte('a' + (i*7+i/13)%26)
	}
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	for b.Loop() {
		if _, ok := compress(body, DefaultCompressLevel); !ok {
			b.Fatal("not compressed")
		}
	}
}
