// Package keyhash is an example third-party strategy: it sends every message with the
// same key to the same queue, so a consumer sees one key's messages in order, and it
// places keys exactly as the Java or the Go RocketMQ client does, so a mixed fleet of
// producers keeps per-key order.
//
// # Rules
//
//   - The key is Selection.Message.ShardingKey; when that is empty, the first non-empty
//     entry of Message.Keys; when there is none (or Message is nil), the message has no
//     key.
//   - A keyed message goes to Queues[Hash.Index(key, len(Queues))], on every attempt:
//     LastBroker is ignored, because moving a key to another queue would break its
//     order (the Java client's selector sends do not retry on another broker either).
//   - A message without a key goes round-robin from a random start per topic with
//     last-broker avoidance on a retry (the first queue from the position onwards not
//     on LastBroker): package pick's walk with the zero policy.
//   - Select never blocks, ignores ctx, allocates nothing and returns ErrNoQueues for
//     an empty list. Describe returns Name "keyhash" and NeedsMessage true.
//
// # Hashes
//
// Java (the default) is RocketMQ's SelectMessageQueueByHash over String.hashCode:
// h = Σ s[i]·31^(n-1-i) over the UTF-16 code units of the key in int32 arithmetic
// (wrapping), then index = |h % size| with Java's truncated remainder. That is the
// current Java code (4.9.x and 5.x: hashCode() % size, then Math.abs); older releases
// took Math.abs(h) % size, which agrees for every h except math.MinInt32, where it yields
// a negative index and throws unless size is a power of two (then both give 0). Keys
// should be valid UTF-8 (proto3 strings are); in an invalid key each bad byte is read as
// U+FFFD, as Go's range over a string does, which may differ from how a Java decoder
// would have read a truncated sequence.
//
// FNV32a is rocketmq-client-go v2's hashQueueSelector: FNV-1a 32-bit over the key's
// bytes, then int(sum) % size (negated if negative). On 64-bit platforms int(sum) is
// never negative, so the index is sum % size; Index computes exactly that on every
// platform (the Go client built for a 32-bit platform differs for sums ≥ 2³¹).
package keyhash

import (
	"context"
	"fmt"

	"github.com/producerd/producerd/plugins/sdk"
	"github.com/producerd/producerd/plugins/sdk/pick"
)

// Hash selects how a key maps to a queue index.
type Hash uint8

const (
	// Java is the Java client's SelectMessageQueueByHash over String.hashCode.
	Java Hash = iota
	// FNV32a is rocketmq-client-go v2's hashQueueSelector.
	FNV32a
)

// String returns "java" or "fnv32a".
func (h Hash) String() string {
	switch h {
	case Java:
		return "java"
	case FNV32a:
		return "fnv32a"
	}
	return "unknown"
}

// Index returns the queue index of key among n queues, in [0, n). It returns 0 when n
// is not positive.
func (h Hash) Index(key string, n int) int {
	if n <= 0 {
		return 0
	}
	if h == FNV32a {
		return int(uint64(fnv32a(key)) % uint64(n))
	}
	// Go's % truncates like Java's; the result's magnitude is below n, so negating it
	// cannot overflow.
	v := int64(JavaHashCode(key)) % int64(n)
	if v < 0 {
		v = -v
	}
	return int(v)
}

// JavaHashCode returns Java's String.hashCode of s: the polynomial hash with base 31
// over its UTF-16 code units, wrapping in int32.
func JavaHashCode(s string) int32 {
	var h int32
	for _, r := range s { // invalid UTF-8 bytes arrive as U+FFFD
		if r >= 0x10000 {
			hi, lo := utf16Pair(r)
			h = 31*h + int32(hi)
			h = 31*h + int32(lo)
			continue
		}
		h = 31*h + int32(r)
	}
	return h
}

// utf16Pair returns the surrogate pair encoding r (0x10000 ≤ r ≤ 0x10FFFF).
func utf16Pair(r rune) (hi, lo uint16) {
	r -= 0x10000
	return uint16(0xD800 + (r>>10)&0x3FF), uint16(0xDC00 + r&0x3FF)
}

// fnv32a is FNV-1a, 32-bit, over the bytes of s (hash/fnv's New32a without the
// allocations).
func fnv32a(s string) uint32 {
	const offset32, prime32 = 2166136261, 16777619
	h := uint32(offset32)
	for i := 0; i < len(s); i++ {
		h ^= uint32(s[i])
		h *= prime32
	}
	return h
}

// Option configures a selector built by New.
type Option func(*selector)

// WithHash selects the hash; the default is Java.
func WithHash(h Hash) Option { return func(s *selector) { s.hash = h } }

var (
	_ sdk.Selector  = (*selector)(nil)
	_ sdk.Describer = (*selector)(nil)
)

// New returns a key-hash Selector that also implements sdk.Describer.
func New(opts ...Option) sdk.Selector {
	s := &selector{}
	for _, o := range opts {
		o(s)
	}
	s.rr = pick.New(pick.Options{})
	return s
}

type selector struct {
	hash Hash
	rr   *pick.Picker // messages without a key
}

// Describe implements sdk.Describer.
func (s *selector) Describe() sdk.Descriptor {
	return sdk.Descriptor{Name: "keyhash", NeedsMessage: true}
}

// Select implements sdk.Selector.
func (s *selector) Select(_ context.Context, sel *sdk.Selection) (int, error) {
	n := len(sel.Queues)
	if n == 0 {
		return -1, ErrNoQueues
	}
	if key := keyOf(sel.Message); key != "" {
		return s.hash.Index(key, n), nil
	}
	return s.rr.Pick(sel), nil
}

func keyOf(m *sdk.MessageInfo) string {
	if m == nil {
		return ""
	}
	if m.ShardingKey != "" {
		return m.ShardingKey
	}
	for _, k := range m.Keys {
		if k != "" {
			return k
		}
	}
	return ""
}

// Settings are keyhash's settings (JSON, unknown keys rejected).
type Settings struct {
	// Hash is "java" (default) or "fnv32a".
	Hash string `json:"hash"`
}

// Build is keyhash's sdk.Constructor: the one parser of its settings.
func Build(settings []byte) (sdk.Selector, error) {
	var s Settings
	if err := sdk.DecodeSettings(settings, &s); err != nil {
		return nil, err
	}
	switch s.Hash {
	case "", "java":
		return New(WithHash(Java)), nil
	case "fnv32a":
		return New(WithHash(FNV32a)), nil
	}
	return nil, &sdk.SettingError{Key: "hash", Err: fmt.Errorf("%q is not java or fnv32a", s.Hash)}
}
