package devbroker

import (
	"bytes"
	"compress/zlib"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"hash/crc32"
	"io"
	"net"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Stored-message layout constants (spec §4; Java MessageDecoder).
const (
	// magicV1 is MESSAGE_MAGIC_CODE -626843481 (one-byte topic length) as the uint32 on the wire.
	magicV1 uint32 = 0xDAA320A7

	sysFlagCompressed   = 0x1
	sysFlagBornHostV6   = 0x10
	sysFlagStoreHostV6  = 0x20
	compressionTypeMask = 0x700
	compressionZlib     = 0x300

	maxPropertiesLen = 32767
)

// Message is a stored message as Broker.Messages returns it (a copy: changing it changes
// nothing in the broker).
type Message struct {
	Topic       string
	QueueID     int32
	QueueOffset int64
	// CommitLogOffset is the message's position in the broker's commit log.
	CommitLogOffset int64
	// MsgID is the offset message id the send answer carried.
	MsgID string
	// SysFlag is the request's sysFlag, plus the IPv6 host bits when they apply.
	SysFlag int32
	Flag    int32
	// Body is the body as stored: zlib-compressed when SysFlag has 0x1 (see PlainBody).
	Body           []byte
	Properties     map[string]string
	BornTimestamp  time.Time
	StoreTimestamp time.Time
	// BornHost is the sender's address as the broker saw it.
	BornHost       string
	ReconsumeTimes int32
}

// PlainBody returns Body, inflated when the message was stored compressed. Only the ZLIB
// compression type (the default, and legacy type 0) is supported.
func (m *Message) PlainBody() ([]byte, error) {
	if m.SysFlag&sysFlagCompressed == 0 {
		return m.Body, nil
	}
	if t := m.SysFlag & compressionTypeMask; t != 0 && t != compressionZlib {
		return nil, fmt.Errorf("devbroker: compression type 0x%x is not supported", t)
	}
	r, err := zlib.NewReader(bytes.NewReader(m.Body))
	if err != nil {
		return nil, fmt.Errorf("devbroker: inflate body: %w", err)
	}
	defer r.Close()
	out, err := io.ReadAll(io.LimitReader(r, 64<<20))
	if err != nil {
		return nil, fmt.Errorf("devbroker: inflate body: %w", err)
	}
	return out, nil
}

// Tags returns the TAGS property.
func (m *Message) Tags() string { return m.Properties["TAGS"] }

// UniqKey returns the client message id (UNIQ_KEY property).
func (m *Message) UniqKey() string { return m.Properties["UNIQ_KEY"] }

// record is one message in the commit log.
type record struct {
	meta Message // Body and Properties are filled only when a copy is made
	data []byte  // the stored-message encoding
	body [2]int  // body's start and end within data
	prop string  // properties string
	tags string  // TAGS property, for pull filtering
}

type queueKey struct {
	topic string
	id    int32
}

// consumeQueue indexes one queue's retained records: recs[i] has offset min+i; max is the
// next offset to assign.
type consumeQueue struct {
	min, max int64
	recs     []*record
}

// store is a broker's bounded in-memory commit log.
type store struct {
	maxMsgs  int
	maxBytes int64

	mu       sync.Mutex
	log      []*record // ascending commit log offsets
	bytes    int64
	nextPhys int64
	queues   map[queueKey]*consumeQueue
	dropped  int64
}

func newStore(maxMsgs int, maxBytes int64) *store {
	return &store{maxMsgs: maxMsgs, maxBytes: maxBytes, queues: make(map[queueKey]*consumeQueue)}
}

// inMsg is a message to append.
type inMsg struct {
	topic     string
	queueID   int32
	flag      int32
	sysFlag   int32
	bornTime  int64
	bornHost  net.Addr
	body      []byte
	props     string
	reconsume int32
}

// putResult describes one appended message.
type putResult struct {
	phys        int64
	queueOffset int64
	msgID       string
}

// put appends msgs (one queue, consecutive offsets) atomically and evicts the oldest
// records beyond the bounds. storeHost is the broker's listen address.
func (s *store) put(msgs []inMsg, storeHost net.Addr, now time.Time) []putResult {
	storeIP, storePort := splitAddr(storeHost)
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]putResult, len(msgs))
	for i := range msgs {
		m := &msgs[i]
		q := s.queue(m.topic, m.queueID)
		bornIP, bornPort := splitAddr(m.bornHost)
		sysFlag := m.sysFlag &^ (sysFlagBornHostV6 | sysFlagStoreHostV6)
		if len(bornIP) == net.IPv6len {
			sysFlag |= sysFlagBornHostV6
		}
		if len(storeIP) == net.IPv6len {
			sysFlag |= sysFlagStoreHostV6
		}
		r := &record{
			meta: Message{
				Topic: m.topic, QueueID: m.queueID, QueueOffset: q.max, CommitLogOffset: s.nextPhys,
				MsgID: offsetMsgID(storeIP, storePort, s.nextPhys), SysFlag: sysFlag, Flag: m.flag,
				BornTimestamp: time.UnixMilli(m.bornTime), StoreTimestamp: now,
				BornHost: net.JoinHostPort(bornIP.String(), strconv.Itoa(bornPort)), ReconsumeTimes: m.reconsume,
			},
			prop: m.props,
			tags: tagsOf(m.props),
		}
		r.data, r.body = encodeRecord(m, sysFlag, q.max, s.nextPhys, now.UnixMilli(), bornIP, bornPort, storeIP, storePort)
		s.log = append(s.log, r)
		q.recs = append(q.recs, r)
		q.max++
		s.bytes += int64(len(r.data))
		s.nextPhys += int64(len(r.data))
		out[i] = putResult{phys: r.meta.CommitLogOffset, queueOffset: r.meta.QueueOffset, msgID: r.meta.MsgID}
	}
	for len(s.log) > 0 && (len(s.log) > s.maxMsgs || s.bytes > s.maxBytes) {
		s.evictOldest()
	}
	return out
}

func (s *store) queue(topic string, id int32) *consumeQueue {
	k := queueKey{topic, id}
	q := s.queues[k]
	if q == nil {
		q = &consumeQueue{}
		s.queues[k] = q
	}
	return q
}

// evictOldest drops the first commit log record; it is also the first of its queue.
func (s *store) evictOldest() {
	r := s.log[0]
	s.log[0] = nil
	s.log = s.log[1:]
	s.bytes -= int64(len(r.data))
	s.dropped++
	if q := s.queues[queueKey{r.meta.Topic, r.meta.QueueID}]; q != nil && len(q.recs) > 0 && q.recs[0] == r {
		q.recs[0] = nil
		q.recs = q.recs[1:]
		q.min++
	}
}

// byPhys returns the stored encoding of the record at commit log offset phys.
func (s *store) byPhys(phys int64) ([]byte, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	i := sort.Search(len(s.log), func(i int) bool { return s.log[i].meta.CommitLogOffset >= phys })
	if i == len(s.log) || s.log[i].meta.CommitLogOffset != phys {
		return nil, false
	}
	return s.log[i].data, true
}

// offsets returns a queue's min and max (next) offsets; zeros for an unknown queue.
func (s *store) offsets(topic string, id int32) (lo, hi int64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if q := s.queues[queueKey{topic, id}]; q != nil {
		return q.min, q.max
	}
	return 0, 0
}

// pullStatus mirrors the Java GetMessageStatus values the pull path distinguishes.
type pullStatus int

const (
	pullFound pullStatus = iota
	pullNoMessageInQueue
	pullOffsetTooSmall
	pullOffsetOverflowOne
	pullOffsetOverflowBadly
	pullNoMatched
)

// pull returns up to maxNums records of a queue from offset, at most maxBytes in total
// (at least one), whose tags pass match; next is the offset to pull from next time.
func (s *store) pull(topic string, id int32, offset int64, maxNums, maxBytes int, match func(tags string) bool) (data [][]byte, next, lo, hi int64, st pullStatus) {
	s.mu.Lock()
	defer s.mu.Unlock()
	q := s.queues[queueKey{topic, id}]
	if q == nil || q.max == 0 {
		return nil, 0, 0, 0, pullNoMessageInQueue
	}
	lo, hi = q.min, q.max
	switch {
	case q.min == q.max:
		return nil, q.min, lo, hi, pullNoMessageInQueue
	case offset < q.min:
		return nil, q.min, lo, hi, pullOffsetTooSmall
	case offset == q.max:
		return nil, offset, lo, hi, pullOffsetOverflowOne
	case offset > q.max:
		if q.min == 0 {
			return nil, q.min, lo, hi, pullOffsetOverflowBadly
		}
		return nil, q.max, lo, hi, pullOffsetOverflowBadly
	}
	next = offset
	size := 0
	for i := int(offset - q.min); i < len(q.recs) && len(data) < maxNums; i++ {
		r := q.recs[i]
		if len(data) > 0 && size+len(r.data) > maxBytes {
			break
		}
		next++
		if !match(r.tags) {
			continue
		}
		data = append(data, r.data)
		size += len(r.data)
	}
	if len(data) == 0 {
		return nil, next, lo, hi, pullNoMatched
	}
	return data, next, lo, hi, pullFound
}

// messages returns copies of the retained messages of topic (all topics when topic is "").
func (s *store) messages(topic string) []Message {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []Message
	for _, r := range s.log {
		if topic != "" && r.meta.Topic != topic {
			continue
		}
		m := r.meta
		m.Body = append([]byte(nil), r.data[r.body[0]:r.body[1]]...)
		m.Properties = decodeProperties(r.prop)
		out = append(out, m)
	}
	return out
}

// counts returns the number of retained records, their bytes and the number evicted.
func (s *store) counts() (n int, b, dropped int64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.log), s.bytes, s.dropped
}

// encodeRecord renders the stored-message format (V1 magic) and returns it with the body's
// position in it.
func encodeRecord(m *inMsg, sysFlag int32, queueOffset, phys, storeTime int64, bornIP net.IP, bornPort int, storeIP net.IP, storePort int) ([]byte, [2]int) {
	total := 4 + 4 + 4 + 4 + 4 + 8 + 8 + 4 + 8 + len(bornIP) + 4 + 8 + len(storeIP) + 4 + 4 + 8 +
		4 + len(m.body) + 1 + len(m.topic) + 2 + len(m.props)
	b := make([]byte, 0, total)
	be := binary.BigEndian
	b = be.AppendUint32(b, uint32(total))
	b = be.AppendUint32(b, magicV1)
	b = be.AppendUint32(b, crc32.ChecksumIEEE(m.body)&0x7FFFFFFF)
	b = be.AppendUint32(b, uint32(m.queueID))
	b = be.AppendUint32(b, uint32(m.flag))
	b = be.AppendUint64(b, uint64(queueOffset))
	b = be.AppendUint64(b, uint64(phys))
	b = be.AppendUint32(b, uint32(sysFlag))
	b = be.AppendUint64(b, uint64(m.bornTime))
	b = append(b, bornIP...)
	b = be.AppendUint32(b, uint32(bornPort))
	b = be.AppendUint64(b, uint64(storeTime))
	b = append(b, storeIP...)
	b = be.AppendUint32(b, uint32(storePort))
	b = be.AppendUint32(b, uint32(m.reconsume))
	b = be.AppendUint64(b, 0) // prepared transaction offset
	b = be.AppendUint32(b, uint32(len(m.body)))
	start := len(b)
	b = append(b, m.body...)
	end := len(b)
	b = append(b, byte(len(m.topic)))
	b = append(b, m.topic...)
	b = be.AppendUint16(b, uint16(len(m.props)))
	b = append(b, m.props...)
	return b, [2]int{start, end}
}

// splitAddr returns an address's IP (4 bytes for IPv4) and port; unknown addresses map to
// 0.0.0.0:0.
func splitAddr(a net.Addr) (net.IP, int) {
	var ip net.IP
	port := 0
	if ta, ok := a.(*net.TCPAddr); ok && ta != nil {
		ip, port = ta.IP, ta.Port
	}
	if v4 := ip.To4(); v4 != nil {
		return v4, port
	}
	if len(ip) == net.IPv6len {
		return ip, port
	}
	return net.IPv4zero.To4(), port
}

// offsetMsgID renders the broker message id: uppercase hex of IP, port (4 bytes) and commit
// log offset (8 bytes).
func offsetMsgID(ip net.IP, port int, phys int64) string {
	b := make([]byte, 0, len(ip)+12)
	b = append(b, ip...)
	b = binary.BigEndian.AppendUint32(b, uint32(port))
	b = binary.BigEndian.AppendUint64(b, uint64(phys))
	return strings.ToUpper(hex.EncodeToString(b))
}

// decodeProperties parses a properties string with the broker's rules (spec §4.4).
func decodeProperties(s string) map[string]string {
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

// tagsOf extracts the TAGS property from a properties string.
func tagsOf(props string) string { return decodeProperties(props)["TAGS"] }

// addProperty appends name=value to a properties string unless name is present.
func addProperty(props, name, value string) string {
	if _, ok := decodeProperties(props)[name]; ok {
		return props
	}
	return props + name + "\x01" + value + "\x02"
}
