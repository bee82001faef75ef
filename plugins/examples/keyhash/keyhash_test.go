package keyhash_test

import (
	"context"
	"errors"
	"hash/fnv"
	"math"
	"testing"

	"github.com/producerd/producerd/plugins/examples/keyhash"
	"github.com/producerd/producerd/plugins/sdk"
	"github.com/producerd/producerd/plugins/sdk/sdktest"
)

func TestConformance(t *testing.T) {
	for _, h := range []keyhash.Hash{keyhash.Java, keyhash.FNV32a} {
		t.Run(h.String(), func(t *testing.T) {
			sdktest.Conformance(t, func(*testing.T) sdk.Selector { return keyhash.New(keyhash.WithHash(h)) })
		})
	}
}

// Java vectors: String.hashCode and |hashCode % n| as printed by a JVM (jshell,
// OpenJDK) running the SelectMessageQueueByHash arithmetic.
var javaVectors = []struct {
	key                     string
	hash                    int32
	mod3, mod7, mod8, mod16 int
}{
	{"", 0, 0, 0, 0, 0},
	{"a", 97, 1, 6, 1, 1},
	{"hello", 99162322, 1, 0, 2, 2},
	{"order-42", 1234255197, 0, 0, 5, 13},
	{"é", 233, 2, 2, 1, 9},
	{"中文", 646394, 2, 0, 2, 10},
	{"😀", 1772899, 1, 2, 3, 3}, // one code point, two UTF-16 units
	{"key-😀-中", -2139800847, 0, 2, 7, 15},
	{"polygenelubricants", math.MinInt32, 2, 2, 0, 0},
	{"hello world", 1794106052, 2, 4, 4, 4},
	{"ORDER_2024_0001", -57878513, 2, 0, 1, 1},
	{"Aa", 2112, 0, 5, 0, 0},
	{"BB", 2112, 0, 5, 0, 0},
}

func TestJavaHash(t *testing.T) {
	t.Parallel()
	for _, v := range javaVectors {
		if got := keyhash.JavaHashCode(v.key); got != v.hash {
			t.Errorf("JavaHashCode(%q) = %d, want %d", v.key, got, v.hash)
		}
		for _, c := range []struct{ n, want int }{{3, v.mod3}, {7, v.mod7}, {8, v.mod8}, {16, v.mod16}} {
			if got := keyhash.Java.Index(v.key, c.n); got != c.want {
				t.Errorf("Java.Index(%q, %d) = %d, want %d", v.key, c.n, got, c.want)
			}
		}
	}
}

func TestInvalidUTF8(t *testing.T) {
	t.Parallel()
	// A lone bad byte reads as U+FFFD (65533).
	if got, want := keyhash.JavaHashCode("a\xff"), int32(97*31+0xFFFD); got != want {
		t.Fatalf("JavaHashCode(a\\xff) = %d, want %d", got, want)
	}
}

func TestFNV32a(t *testing.T) {
	t.Parallel()
	// Published FNV-1a 32-bit vectors.
	for _, v := range []struct {
		key string
		sum uint32
	}{{"", 0x811c9dc5}, {"a", 0xe40c292c}, {"foobar", 0xbf9cf968}} {
		for _, n := range []int{1, 3, 7, 16, 1000} {
			if got, want := keyhash.FNV32a.Index(v.key, n), int(v.sum%uint32(n)); got != want {
				t.Errorf("FNV32a.Index(%q, %d) = %d, want %d", v.key, n, got, want)
			}
		}
	}
	// The Go client: hasher := fnv.New32a(); hasher.Write([]byte(key)); int(hasher.Sum32()) % n.
	for _, v := range javaVectors {
		h := fnv.New32a()
		h.Write([]byte(v.key))
		for _, n := range []int{3, 7, 8, 16} {
			want := int(h.Sum32()) % n
			if want < 0 {
				want = -want
			}
			if got := keyhash.FNV32a.Index(v.key, n); got != want {
				t.Errorf("FNV32a.Index(%q, %d) = %d, want %d", v.key, n, got, want)
			}
		}
	}
}

func TestIndexDegenerate(t *testing.T) {
	t.Parallel()
	for _, h := range []keyhash.Hash{keyhash.Java, keyhash.FNV32a} {
		for _, n := range []int{0, -1} {
			if got := h.Index("hello", n); got != 0 {
				t.Errorf("%v.Index(hello, %d) = %d, want 0", h, n, got)
			}
		}
	}
}

func TestKeyChoice(t *testing.T) {
	t.Parallel()
	qs := sdktest.Queues(4, 4) // 16 queues
	tests := []struct {
		name string
		msg  *sdk.MessageInfo
		want int // -1: no key, anything valid
	}{
		{"sharding key", &sdk.MessageInfo{ShardingKey: "hello", Keys: []string{"a"}}, 2},
		{"first key", &sdk.MessageInfo{Keys: []string{"order-42", "hello"}}, 13},
		{"first non-empty key", &sdk.MessageInfo{Keys: []string{"", "key-😀-中"}}, 15},
		{"min int32 hash", &sdk.MessageInfo{ShardingKey: "polygenelubricants"}, 0},
		{"no key", &sdk.MessageInfo{}, -1},
		{"nil message", nil, -1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			sel := keyhash.New()
			for attempt := range 3 {
				s := &sdk.Selection{Topic: "t", RouteVersion: 1, Queues: qs, Message: tc.msg, Attempt: attempt}
				if attempt > 0 {
					s.LastBroker = qs[max(tc.want, 0)].Broker
				}
				i, err := sel.Select(context.Background(), s)
				if err != nil || i < 0 || i >= len(qs) {
					t.Fatalf("Select = %d, %v", i, err)
				}
				if tc.want >= 0 && i != tc.want {
					t.Fatalf("attempt %d: Select = %d, want %d (a key keeps its queue, even on a retry)", attempt, i, tc.want)
				}
			}
		})
	}
}

func TestNoKeyRoundRobin(t *testing.T) {
	t.Parallel()
	sel := keyhash.New()
	rt := sdktest.NewRoute("t", sdktest.Queues(3, 2))
	counts := make(map[sdk.Queue]int)
	for range 60 {
		s := rt.First()
		s.Message = &sdk.MessageInfo{}
		counts[sdktest.MustSelect(t, sel, s)]++
	}
	for _, q := range rt.Queues {
		if counts[q] != 10 {
			t.Errorf("queue %v picked %d times, want 10", q, counts[q])
		}
	}
}

func TestDescribeAndEmpty(t *testing.T) {
	t.Parallel()
	sel := keyhash.New(keyhash.WithHash(keyhash.FNV32a))
	if d := sdktest.Describe(sel); d != (sdk.Descriptor{Name: "keyhash", NeedsMessage: true}) {
		t.Errorf("Describe() = %+v", d)
	}
	if _, err := sel.Select(context.Background(), &sdk.Selection{}); !errors.Is(err, keyhash.ErrNoQueues) {
		t.Errorf("empty Select error = %v, want ErrNoQueues", err)
	}
	if keyhash.Hash(9).String() != "unknown" {
		t.Error("unknown Hash should print as unknown")
	}
}

var sink int

func BenchmarkSelect(b *testing.B) {
	ctx := context.Background()
	qs := sdktest.Queues(4, 8)
	for _, bc := range []struct {
		name string
		h    keyhash.Hash
		msg  *sdk.MessageInfo
	}{
		{"java", keyhash.Java, &sdk.MessageInfo{ShardingKey: "ORDER_2024_0001"}},
		{"fnv32a", keyhash.FNV32a, &sdk.MessageInfo{ShardingKey: "ORDER_2024_0001"}},
		{"no-key", keyhash.Java, &sdk.MessageInfo{}},
	} {
		b.Run(bc.name, func(b *testing.B) {
			sel := keyhash.New(keyhash.WithHash(bc.h))
			s := &sdk.Selection{Topic: "t", RouteVersion: 1, Queues: qs, Message: bc.msg}
			b.ReportAllocs()
			for b.Loop() {
				i, _ := sel.Select(ctx, s)
				sink += i
			}
		})
	}
}

func TestBuildSettings(t *testing.T) {
	t.Parallel()
	rt := sdktest.NewRoute("t", sdktest.Queues(3, 4))
	for _, tc := range []struct {
		settings string
		hash     keyhash.Hash
		key      string // of the SettingError; "" when valid
	}{
		{``, keyhash.Java, ""},
		{`{"hash":"java"}`, keyhash.Java, ""},
		{`{"hash":"fnv32a"}`, keyhash.FNV32a, ""},
		{`{"hash":"md5"}`, 0, "hash"},
		{`{"salt":"x"}`, 0, "salt"},
	} {
		sel, err := keyhash.Build([]byte(tc.settings))
		if tc.key != "" {
			var se *sdk.SettingError
			if !errors.As(err, &se) || se.Key != tc.key {
				t.Errorf("Build(%s) = %v, want a SettingError for %s", tc.settings, err, tc.key)
			}
			continue
		}
		if err != nil {
			t.Fatalf("Build(%s): %v", tc.settings, err)
		}
		s := rt.First()
		s.Message = &sdk.MessageInfo{ShardingKey: "order-42"}
		if got, want := sdktest.MustSelect(t, sel, s), rt.Queues[tc.hash.Index("order-42", len(rt.Queues))]; got != want {
			t.Errorf("Build(%s) placed the key on %v, want %v", tc.settings, got, want)
		}
	}
}
