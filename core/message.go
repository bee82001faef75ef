package core

import (
	"sort"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// Property names the producer sets itself (spec §4.5).
const (
	PropertyKeys        = "KEYS"
	PropertyTags        = "TAGS"
	PropertyWait        = "WAIT"
	PropertyDelay       = "DELAY"
	PropertyUniqKey     = "UNIQ_KEY"
	PropertyShardingKey = "__SHARDINGKEY"
	PropertyTranMsg     = "TRAN_MSG"
	PropertyMsgType     = "MSG_TYPE"
)

// Limits from the Java client (spec §4.10).
const (
	// MaxTopicLength is the longest accepted topic name.
	MaxTopicLength = 127
	// MaxGroupLength is the longest accepted producer group name (the 5.x limit).
	MaxGroupLength = 120
	// DefaultMaxMessageSize is the default body limit in bytes, checked before compression.
	DefaultMaxMessageSize = 4 << 20
	// maxPropertiesLength is the broker's limit on the encoded properties (int16).
	maxPropertiesLength = 32767
)

// Message is one message to send. The zero value plus Topic and Body is valid; the
// producer never modifies a Message passed to it.
type Message struct {
	Topic string
	Body  []byte
	// Tags is the single tag string (property TAGS).
	Tags string
	// Keys are indexed by the broker; joined with one space on the wire (property KEYS).
	Keys []string
	// ShardingKey, when set, picks the queue by a hash of the key (ProducerConfig.KeyHash)
	// and keeps per-key order (ProducerConfig.Ordering); the strategy does not move it.
	// Carried as property __SHARDINGKEY.
	ShardingKey string
	// DelayLevel 1..18 (ProducerConfig.MaxDelayLevel) delays delivery by the broker's
	// level table; 0 = none.
	DelayLevel int
	// DeliverAt and Delay are RocketMQ 5.x timer delivery (core/timer.go): at an absolute
	// time (a past one delivers at once), or after a delay from when the broker stores
	// the message. At most one of DelayLevel, DeliverAt and Delay may be set.
	DeliverAt time.Time
	Delay     time.Duration
	// Flag is the user integer carried in the header; default 0.
	Flag int32
	// Properties are user properties; reserved names are refused.
	Properties map[string]string
	// NoWaitStore sets WAIT=false: the broker answers without waiting for flush or
	// replication. Default false (WAIT=true), as in the Java client.
	NoWaitStore bool
	// UniqKey, when set, is the message's UNIQ_KEY instead of a fresh one: a gateway keeps
	// the id its client gave (the RocketMQ v2 ingress). No space, comma or 0x00-0x02.
	UniqKey string
	// SystemProperties are reserved properties a trusted gateway sets, e.g. __BORNHOST,
	// BORN_TIMESTAMP, TRACE_CONTEXT; names that Message fields set (TAGS, KEYS, WAIT,
	// DELAY, UNIQ_KEY, __SHARDINGKEY, the TIMER_* ones) are refused.
	SystemProperties map[string]string
}

var systemTopics = map[string]bool{
	"SCHEDULE_TOPIC_XXXX": true, "RMQ_SYS_TRANS_HALF_TOPIC": true, "RMQ_SYS_TRANS_OP_HALF_TOPIC": true,
	"TRANS_CHECK_MAX_TIME_TOPIC": true, "SELF_TEST_TOPIC": true, "OFFSET_MOVED_EVENT": true,
}

var reservedProperties = func() map[string]bool {
	names := strings.Fields(`TRACE_ON MSG_REGION KEYS TAGS WAIT DELAY RETRY_TOPIC REAL_TOPIC REAL_QID
		TRAN_MSG PGROUP MIN_OFFSET MAX_OFFSET BUYER_ID ORIGIN_MESSAGE_ID TRANSFER_FLAG CORRECTION_FLAG
		MQ2_FLAG RECONSUME_TIME UNIQ_KEY MAX_RECONSUME_TIMES CONSUME_START_TIME POP_CK POP_CK_OFFSET
		1ST_POP_TIME TRAN_PREPARED_QUEUE_OFFSET DUP_INFO EXTEND_UNIQ_INFO INSTANCE_ID CORRELATION_ID
		REPLY_TO_CLIENT TTL ARRIVE_TIME PUSH_REPLY_TIME CLUSTER MSG_TYPE INNER_MULTI_QUEUE_OFFSET
		TIMER_DELAY_MS TIMER_DELAY_SEC TIMER_DELIVER_MS TIMER_ENQUEUE_MS TIMER_DEQUEUE_MS
		TIMER_ROLL_TIMES TIMER_OUT_MS TIMER_DEL_UNIQKEY TIMER_DELAY_LEVEL __BORNHOST BORN_TIMESTAMP
		DLQ_ORIGIN_TOPIC DLQ_ORIGIN_MESSAGE_ID __CRC32#`)
	m := make(map[string]bool, len(names))
	for _, n := range names {
		m[n] = true
	}
	return m
}()

// userRefused are system properties a user property may not set although Java's
// putUserProperty takes them: the producer writes __SHARDINGKEY from ShardingKey (a user
// __SHARDINGKEY beside it would put the queue choice and the stored key at odds), and the
// broker writes the two transaction ones on a half message.
var userRefused = map[string]bool{PropertyShardingKey: true, "__transactionId__": true, PropertyCheckTimes: true}

// propertyHint names the Message field to use instead of a reserved property.
var propertyHint = map[string]string{
	PropertyShardingKey: ": set the message's sharding key instead", PropertyTags: ": set the message's tags instead",
	PropertyKeys: ": set the message's keys instead", PropertyDelay: ": set the message's delay level instead",
	PropertyTimerDeliverMS: ": set the message's deliver-at time instead", PropertyTimerDelayMS: ": set the message's delay instead",
	PropertyTimerDelaySec: ": set the message's delay instead", PropertyUniqKey: ": the producer sets the message id",
}

// IsReservedProperty reports whether name is a system property a user may not set.
func IsReservedProperty(name string) bool { return reservedProperties[name] }

// ValidateTopic checks a topic name against the Java client's rules.
func ValidateTopic(topic string) error {
	return validateName("topic", topic, MaxTopicLength)
}

// ValidateGroup checks a producer group name.
func ValidateGroup(group string) error {
	if err := validateName("group", group, MaxGroupLength); err != nil {
		return err
	}
	if group == "DEFAULT_PRODUCER" || group == "CLIENT_INNER_PRODUCER" {
		return invalid("group.reserved", "producer group %q is reserved", group)
	}
	return nil
}

func validateName(kind, name string, max int) error {
	if strings.TrimSpace(name) == "" {
		return invalid(kind+".blank", "%s name is blank", kind)
	}
	if len(name) > max {
		return invalid(kind+".length", "%s name is %d characters, the limit is %d", kind, len(name), max)
	}
	for i := 0; i < len(name); i++ {
		if !validNameByte(name[i]) {
			r, _ := utf8.DecodeRuneInString(name[i:])
			return invalid(kind+".charset", "%s name %q contains %q; allowed are letters, digits, '%%', '|', '-' and '_'", kind, name, r)
		}
	}
	if kind == "topic" && systemTopics[name] {
		return invalid("topic.system", "topic %q is a system topic and cannot be sent to", name)
	}
	return nil
}

func validNameByte(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' ||
		c == '%' || c == '|' || c == '-' || c == '_'
}

// Validate checks a message before any network I/O (spec §4.10). maxSize <= 0 means
// DefaultMaxMessageSize; delay levels are checked against the default table (1..18).
// Every error is a *ValidationError naming the rule.
func (m *Message) Validate(maxSize int) error { return m.validate(maxSize, MaxDelayLevel) }

func (m *Message) validate(maxSize, maxDelayLevel int) error {
	if m == nil {
		return invalid("message.nil", "message is nil")
	}
	if err := ValidateTopic(m.Topic); err != nil {
		return err
	}
	if maxSize <= 0 {
		maxSize = DefaultMaxMessageSize
	}
	switch {
	case m.Body == nil:
		return invalid("body.nil", "the message body is nil")
	case len(m.Body) == 0:
		return invalid("body.empty", "the message body length is zero")
	case len(m.Body) > maxSize:
		return invalid("body.size", "the message body is %d bytes, the limit is %d", len(m.Body), maxSize)
	}
	if err := m.validateDelay(maxDelayLevel); err != nil {
		return err
	}
	for _, k := range m.Keys {
		if k == "" || strings.ContainsAny(k, " \x01\x02") {
			return invalid("keys.format", "key %q is empty or contains a space or a 0x01/0x02 byte", k)
		}
	}
	if strings.ContainsAny(m.Tags, "\x01\x02") || strings.ContainsAny(m.ShardingKey, "\x01\x02") {
		return invalid("property.separator", "tags and sharding key may not contain 0x01 or 0x02")
	}
	if err := m.validateSystem(); err != nil {
		return err
	}
	for k, v := range m.Properties {
		if strings.TrimSpace(k) == "" {
			return invalid("property.blank", "a user property name is blank")
		}
		// Java's putUserProperty refuses a blank value too; the broker would drop the
		// pair silently, so the message would be acknowledged without it.
		if strings.TrimSpace(v) == "" {
			return invalid("property.blank", "user property %q has a blank value", k)
		}
		if reservedProperties[k] || userRefused[k] {
			return invalid("property.reserved", "%q is a reserved system property name%s", k, propertyHint[k])
		}
		if strings.ContainsAny(k, "\x01\x02") || strings.ContainsAny(v, "\x01\x02") {
			return invalid("property.separator", "property %q contains a 0x01 or 0x02 byte", k)
		}
	}
	return nil
}

// encodeProperties renders the wire properties string (spec §4.4): name 0x01 value 0x02
// for every pair. System properties come first in a fixed order, then user properties
// sorted by name so the encoding is deterministic.
func (m *Message) encodeProperties(dst []byte, uniqKey string) []byte {
	dst, _ = m.appendProperties(dst, uniqKey, false)
	return dst
}

// appendProperties is encodeProperties; with newUniq it appends a fresh UNIQ_KEY in place
// (uniqKey is then ignored) and returns where the key starts, so the caller can take it
// from the finished string without a string of its own.
func (m *Message) appendProperties(dst []byte, uniqKey string, newUniq bool) (out []byte, uniqAt int) {
	if m.Tags != "" {
		dst = appendProperty(dst, PropertyTags, m.Tags)
	}
	if len(m.Keys) > 0 {
		dst = append(dst, PropertyKeys...)
		dst = append(dst, 1)
		for i, k := range m.Keys {
			if i > 0 {
				dst = append(dst, ' ')
			}
			dst = append(dst, k...)
		}
		dst = append(dst, 2)
	}
	if m.DelayLevel > 0 {
		dst = appendProperty(dst, PropertyDelay, strconv.Itoa(m.DelayLevel))
	}
	if m.ShardingKey != "" {
		dst = appendProperty(dst, PropertyShardingKey, m.ShardingKey)
	}
	dst = m.appendTimer(dst)
	dst = m.appendSystemProperties(dst)
	if m.NoWaitStore {
		dst = appendProperty(dst, PropertyWait, "false")
	} else {
		dst = appendProperty(dst, PropertyWait, "true")
	}
	switch {
	case newUniq:
		dst = append(dst, PropertyUniqKey...)
		dst = append(dst, 1)
		uniqAt = len(dst)
		dst = uniqIDs.appendNext(dst)
		dst = append(dst, 2)
	case uniqKey != "":
		dst = appendProperty(dst, PropertyUniqKey, uniqKey)
	}
	switch len(m.Properties) {
	case 0:
	case 1:
		for k, v := range m.Properties {
			dst = appendProperty(dst, k, v)
		}
	default:
		names := make([]string, 0, len(m.Properties))
		for k := range m.Properties {
			names = append(names, k)
		}
		sort.Strings(names)
		for _, k := range names {
			dst = appendProperty(dst, k, m.Properties[k])
		}
	}
	return dst, uniqAt
}

func appendProperty(dst []byte, name, value string) []byte {
	dst = append(dst, name...)
	dst = append(dst, 1)
	dst = append(dst, value...)
	return append(dst, 2)
}

// DecodeProperties parses a wire properties string with the broker's rules: segments
// end with 0x02; a segment without 0x01 inside it, or shorter than 3 bytes, is skipped.
func DecodeProperties(s string) map[string]string {
	props := make(map[string]string)
	for len(s) > 0 {
		seg := s
		if i := strings.IndexByte(s, 2); i >= 0 {
			seg, s = s[:i], s[i+1:]
		} else {
			s = ""
		}
		if len(seg) < 3 {
			continue
		}
		if j := strings.IndexByte(seg, 1); j > 0 && j < len(seg)-1 {
			props[seg[:j]] = seg[j+1:]
		}
	}
	return props
}
