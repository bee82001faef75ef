package core

import (
	"context"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"net"
	"strconv"

	"github.com/producerd/producerd/remoting"
)

// TopicConfig is what CreateTopic asks a broker to create.
type TopicConfig struct {
	Topic string
	// ReadQueues and WriteQueues default to 4.
	ReadQueues, WriteQueues int
	// Perm defaults to PermRead|PermWrite.
	Perm int
	// Order marks the topic as ordered.
	Order bool
}

// CreateTopic creates or updates a topic on one broker master (UPDATE_AND_CREATE_TOPIC);
// the broker registers it with the NameServer before answering. It is idempotent.
func CreateTopic(ctx context.Context, rc *remoting.Client, brokerAddr string, tc TopicConfig) error {
	if err := ValidateTopic(tc.Topic); err != nil {
		return err
	}
	if tc.ReadQueues == 0 {
		tc.ReadQueues = 4
	}
	if tc.WriteQueues == 0 {
		tc.WriteQueues = 4
	}
	if tc.Perm == 0 {
		tc.Perm = PermRead | PermWrite
	}
	ext := map[string]string{
		"topic": tc.Topic, "defaultTopic": DefaultCreateTopicKey,
		"readQueueNums": strconv.Itoa(tc.ReadQueues), "writeQueueNums": strconv.Itoa(tc.WriteQueues),
		"perm": strconv.Itoa(tc.Perm), "topicFilterType": "SINGLE_TAG", "topicSysFlag": "0",
		"order": strconv.FormatBool(tc.Order),
	}
	resp, err := rc.InvokeSync(ctx, brokerAddr, remoting.NewRequest(remoting.UpdateAndCreateTopic, ext, nil))
	if err != nil {
		return err
	}
	return remoting.ResponseError(brokerAddr, resp)
}

// MessageExt is a stored message as a broker returns it.
type MessageExt struct {
	Topic       string
	Body        []byte // decompressed
	Properties  map[string]string
	QueueID     int32
	QueueOffset int64
	CommitLog   int64
	SysFlag     int32
	Flag        int32
	BornTime    int64
	StoreTime   int64
	StoreHost   string
	BornHost    string
}

// Keys returns the KEYS property split on spaces.
func (m *MessageExt) Keys() []string { return splitKeys(m.Properties[PropertyKeys]) }

// Tags returns the TAGS property.
func (m *MessageExt) Tags() string { return m.Properties[PropertyTags] }

// UniqKey returns the client message id (UNIQ_KEY).
func (m *MessageExt) UniqKey() string { return m.Properties[PropertyUniqKey] }

func splitKeys(s string) []string {
	var out []string
	start := -1
	for i := 0; i <= len(s); i++ {
		if i == len(s) || s[i] == ' ' {
			if start >= 0 {
				out = append(out, s[start:i])
				start = -1
			}
		} else if start < 0 {
			start = i
		}
	}
	return out
}

// ParseOffsetMsgID splits a broker message id (hex of store IP, port and commit log
// offset) into the store address and the offset.
func ParseOffsetMsgID(id string) (addr string, offset int64, err error) {
	raw, err := hex.DecodeString(id)
	if err != nil {
		return "", 0, fmt.Errorf("core: offset message id %q: %w", id, err)
	}
	var ip net.IP
	switch len(raw) {
	case 16:
		ip = net.IP(raw[:4])
	case 28:
		ip = net.IP(raw[:16])
	default:
		return "", 0, fmt.Errorf("core: offset message id %q has %d bytes, want 16 or 28", id, len(raw))
	}
	rest := raw[len(ip):]
	port := binary.BigEndian.Uint32(rest)
	offset = int64(binary.BigEndian.Uint64(rest[4:]))
	return net.JoinHostPort(ip.String(), strconv.Itoa(int(port))), offset, nil
}

// ViewMessage reads one stored message by its offset message id (VIEW_MESSAGE_BY_ID).
func ViewMessage(ctx context.Context, rc *remoting.Client, topic, offsetMsgID string) (*MessageExt, error) {
	addr, offset, err := ParseOffsetMsgID(offsetMsgID)
	if err != nil {
		return nil, err
	}
	ext := map[string]string{"offset": strconv.FormatInt(offset, 10), "topic": topic}
	resp, err := rc.InvokeSync(ctx, addr, remoting.NewRequest(remoting.ViewMessageByID, ext, nil))
	if err != nil {
		return nil, err
	}
	if err := remoting.ResponseError(addr, resp); err != nil {
		return nil, err
	}
	msgs, err := DecodeMessages(resp.Body)
	if err != nil {
		return nil, err
	}
	if len(msgs) != 1 {
		return nil, fmt.Errorf("core: view message %s: got %d messages", offsetMsgID, len(msgs))
	}
	return msgs[0], nil
}

const (
	magicV1 = -626843481 // topic length is one byte
	magicV2 = -626843477 // topic length is two bytes
)

// DecodeMessages decodes stored messages (the commit log format a broker returns from
// VIEW_MESSAGE_BY_ID and PULL_MESSAGE), decompressing compressed bodies.
func DecodeMessages(b []byte) ([]*MessageExt, error) {
	var out []*MessageExt
	for len(b) > 0 {
		m, n, err := decodeMessage(b)
		if err != nil {
			return out, err
		}
		out = append(out, m)
		b = b[n:]
	}
	return out, nil
}

func decodeMessage(b []byte) (*MessageExt, int, error) {
	r := reader{b: b}
	total := int(r.i32())
	if r.err != nil || total < 4 || total > len(b) {
		return nil, 0, fmt.Errorf("core: stored message: bad total size %d of %d bytes", total, len(b))
	}
	r.b = b[:total]
	magic := r.i32()
	if magic != magicV1 && magic != magicV2 {
		return nil, 0, fmt.Errorf("core: stored message: unknown magic code %d", magic)
	}
	m := &MessageExt{}
	r.i32() // body CRC
	m.QueueID = r.i32()
	m.Flag = r.i32()
	m.QueueOffset = r.i64()
	m.CommitLog = r.i64()
	m.SysFlag = r.i32()
	m.BornTime = r.i64()
	m.BornHost = r.host(m.SysFlag&0x10 != 0)
	m.StoreTime = r.i64()
	m.StoreHost = r.host(m.SysFlag&0x20 != 0)
	r.i32() // reconsume times
	r.i64() // prepared transaction offset
	m.Body = r.bytes(int(r.i32()))
	var topicLen int
	if magic == magicV2 {
		topicLen = int(uint16(r.i16()))
	} else {
		topicLen = int(r.u8())
	}
	m.Topic = string(r.bytes(topicLen))
	m.Properties = DecodeProperties(string(r.bytes(int(uint16(r.i16())))))
	if r.err != nil {
		return nil, 0, fmt.Errorf("core: stored message: %w", r.err)
	}
	if m.SysFlag&sysFlagCompressed != 0 {
		body, err := decompress(m.Body, remoting.MaxFrameSize)
		if err != nil {
			return nil, 0, fmt.Errorf("core: stored message body: %w", err)
		}
		m.Body = body
	}
	return m, total, nil
}

// reader reads big-endian fields, remembering the first short read.
type reader struct {
	b   []byte
	off int
	err error
}

func (r *reader) take(n int) []byte {
	if r.err != nil {
		return nil
	}
	if n < 0 || r.off+n > len(r.b) {
		r.err = fmt.Errorf("truncated at byte %d (want %d more of %d)", r.off, n, len(r.b))
		return nil
	}
	out := r.b[r.off : r.off+n]
	r.off += n
	return out
}

func (r *reader) u8() uint8 {
	if b := r.take(1); b != nil {
		return b[0]
	}
	return 0
}

func (r *reader) i16() int16 {
	if b := r.take(2); b != nil {
		return int16(binary.BigEndian.Uint16(b))
	}
	return 0
}

func (r *reader) i32() int32 {
	if b := r.take(4); b != nil {
		return int32(binary.BigEndian.Uint32(b))
	}
	return 0
}

func (r *reader) i64() int64 {
	if b := r.take(8); b != nil {
		return int64(binary.BigEndian.Uint64(b))
	}
	return 0
}

func (r *reader) bytes(n int) []byte { return r.take(n) }

func (r *reader) host(v6 bool) string {
	n := 4
	if v6 {
		n = 16
	}
	ip := r.take(n)
	port := r.i32()
	if ip == nil {
		return ""
	}
	return net.JoinHostPort(net.IP(ip).String(), strconv.Itoa(int(port)))
}

// MaxOffset returns a queue's next offset (GET_MAX_OFFSET): the number of messages ever
// written to it.
func MaxOffset(ctx context.Context, rc *remoting.Client, brokerAddr, topic string, queueID int32) (int64, error) {
	ext := map[string]string{"topic": topic, "queueId": strconv.Itoa(int(queueID))}
	resp, err := rc.InvokeSync(ctx, brokerAddr, remoting.NewRequest(remoting.GetMaxOffset, ext, nil))
	if err != nil {
		return 0, err
	}
	if err := remoting.ResponseError(brokerAddr, resp); err != nil {
		return 0, err
	}
	return strconv.ParseInt(resp.ExtFields["offset"], 10, 64)
}

// PullMessages reads up to max messages of one queue from offset (PULL_MESSAGE without
// long polling), for verification tools and tests. It returns the messages and the next
// offset; no messages and next == offset means the queue holds nothing more yet.
func PullMessages(ctx context.Context, rc *remoting.Client, brokerAddr, group, topic string, queueID int32, offset int64, max int) ([]*MessageExt, int64, error) {
	ext := map[string]string{
		"consumerGroup": group, "topic": topic, "queueId": strconv.Itoa(int(queueID)),
		"queueOffset": strconv.FormatInt(offset, 10), "maxMsgNums": strconv.Itoa(max),
		// FLAG_SUBSCRIPTION (4): the subscription travels with the request, so the group
		// needs no consumer heartbeat (without it 5.x answers 24 "group info not exist").
		"sysFlag": "4", "commitOffset": "0", "suspendTimeoutMillis": "0",
		"subscription": "*", "subVersion": "0", "expressionType": "TAG",
	}
	resp, err := rc.InvokeSync(ctx, brokerAddr, remoting.NewRequest(remoting.PullMessage, ext, nil))
	if err != nil {
		return nil, offset, err
	}
	next := offset
	if v, err := strconv.ParseInt(resp.ExtFields["nextBeginOffset"], 10, 64); err == nil {
		next = v
	}
	switch remoting.ResponseCode(resp.Code) {
	case remoting.Success:
		msgs, err := DecodeMessages(resp.Body)
		return msgs, next, err
	case remoting.PullNotFound, remoting.PullRetryImmediately, remoting.PullOffsetMoved:
		return nil, next, nil
	}
	return nil, offset, remoting.ResponseError(brokerAddr, resp)
}
