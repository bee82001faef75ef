package wasmabi

import (
	"encoding/binary"
	"math"
	"time"

	"github.com/producerd/producerd/plugins/sdk"
)

// AppendSelect appends the input of producerd_select for s to dst:
//
//	u8   flags (SelectHasQueues, SelectHasMessage)
//	u8×3 zero
//	u32  attempt
//	i64  now, Unix nanoseconds
//	u64  route version
//	i64  remaining budget, nanoseconds
//	u32  route slot (host-assigned, < MaxRouteSlots)
//	u32  zero
//	str  topic ("" unless SelectHasQueues)
//	str  last broker ("" on a first attempt)
//	when SelectHasQueues:
//	  u32 broker count, then that many str (a broker table)
//	  u32 queue count, then that many (u32 broker table index, i32 queue id)
//	when SelectHasMessage:
//	  u32 body size, str sharding key, str tags, u32 key count, then that many str
//
// The route slot names the topic's queue list inside the module: a select with
// withQueues defines slot (topic, route version, queues), and later selects refer to it
// by slot and version alone, so the module finds its route by index instead of hashing
// the topic. The host assigns slots per module instance. The message goes when
// s.Message is set. The broker table gets one entry per run of equal consecutive
// brokers (the host sorts queues by broker, so normally one per broker).
func AppendSelect(dst []byte, s *sdk.Selection, now int64, slot uint32, withQueues bool) []byte {
	var flags byte
	if withQueues {
		flags |= SelectHasQueues
	}
	if s.Message != nil {
		flags |= SelectHasMessage
	}
	dst = append(dst, flags, 0, 0, 0)
	dst = appendU32(dst, clampU32(s.Attempt))
	dst = appendU64(dst, uint64(now))
	dst = appendU64(dst, s.RouteVersion)
	dst = appendU64(dst, uint64(s.Remaining))
	dst = appendU32(dst, slot)
	dst = appendU32(dst, 0)
	if withQueues {
		dst = appendStr(dst, s.Topic)
	} else {
		dst = appendU32(dst, 0)
	}
	dst = appendStr(dst, s.LastBroker)
	if withQueues {
		runs := 0
		for i, q := range s.Queues {
			if i == 0 || q.Broker != s.Queues[i-1].Broker {
				runs++
			}
		}
		dst = appendU32(dst, uint32(runs))
		for i, q := range s.Queues {
			if i == 0 || q.Broker != s.Queues[i-1].Broker {
				dst = appendStr(dst, q.Broker)
			}
		}
		dst = appendU32(dst, uint32(len(s.Queues)))
		run := -1
		for i, q := range s.Queues {
			if i == 0 || q.Broker != s.Queues[i-1].Broker {
				run++
			}
			dst = appendU32(dst, uint32(run))
			dst = appendU32(dst, uint32(q.ID))
		}
	}
	if m := s.Message; m != nil {
		dst = appendU32(dst, clampU32(m.Size))
		dst = appendStr(dst, m.ShardingKey)
		dst = appendStr(dst, m.Tags)
		dst = appendU32(dst, uint32(len(m.Keys)))
		for _, k := range m.Keys {
			dst = appendStr(dst, k)
		}
	}
	return dst
}

// Select is a parsed producerd_select input. Its byte slices alias the input buffer
// and are valid only until that buffer is written again.
type Select struct {
	Flags        uint8
	Attempt      uint32
	Now          int64
	RouteVersion uint64
	Remaining    time.Duration
	// Slot is the route slot, below MaxRouteSlots.
	Slot uint32
	// Topic is empty unless HasQueues.
	Topic      []byte
	LastBroker []byte
	// NumQueues is the length of the queue list when HasQueues.
	NumQueues int

	brokers []byte // broker table: NumBrokers strings
	nb      int
	queues  []byte // NumQueues × 8 bytes
	message []byte
}

// HasQueues reports whether the input carries the queue list.
func (s *Select) HasQueues() bool { return s.Flags&SelectHasQueues != 0 }

// HasMessage reports whether the input carries a message.
func (s *Select) HasMessage() bool { return s.Flags&SelectHasMessage != 0 }

// ParseSelect parses and fully validates a producerd_select input into s without
// allocating. The common case (no queue list, no message) reads fixed offsets only:
// in a Go module every call costs, and this runs once per decision.
func ParseSelect(b []byte, s *Select) error {
	le := binary.LittleEndian
	if len(b) < SelectHeaderSize+8 {
		return ErrMalformed
	}
	flags := b[0]
	if flags&^(SelectHasQueues|SelectHasMessage) != 0 || b[1]|b[2]|b[3] != 0 || le.Uint32(b[36:]) != 0 {
		return ErrMalformed
	}
	slot := le.Uint32(b[32:])
	if slot >= MaxRouteSlots {
		return ErrMalformed
	}
	off := SelectHeaderSize
	topic, off, ok := strAt(b, off)
	if !ok || len(topic) > 0 && flags&SelectHasQueues == 0 {
		return ErrMalformed
	}
	last, off, ok := strAt(b, off)
	if !ok {
		return ErrMalformed
	}
	s.Flags = flags
	s.Attempt = le.Uint32(b[4:])
	s.Now = int64(le.Uint64(b[8:]))
	s.RouteVersion = le.Uint64(b[16:])
	s.Remaining = time.Duration(le.Uint64(b[24:]))
	s.Slot = slot
	s.Topic = topic
	s.LastBroker = last
	s.NumQueues, s.nb, s.brokers, s.queues, s.message = 0, 0, nil, nil, nil
	if off == len(b) && flags == 0 {
		return nil
	}
	return s.parseTail(b[off:])
}

// strAt reads the string at off: a u32 length and its bytes.
func strAt(b []byte, off int) ([]byte, int, bool) {
	if len(b)-off < 4 {
		return nil, off, false
	}
	n := binary.LittleEndian.Uint32(b[off:])
	off += 4
	if uint64(n) > uint64(len(b)-off) {
		return nil, off, false
	}
	end := off + int(n)
	return b[off:end:end], end, true
}

// parseTail parses the queue list and the message.
func (s *Select) parseTail(b []byte) error {
	r := reader{b: b}
	if s.HasQueues() {
		start := r.b
		s.nb = r.count(4)
		for range s.nb {
			r.str()
		}
		if r.bad {
			return ErrMalformed
		}
		s.brokers = start[4 : len(start)-len(r.b)]
		s.NumQueues = r.count(8)
		s.queues = r.take(8 * s.NumQueues)
		for i := 0; i+8 <= len(s.queues); i += 8 {
			if uint64(binary.LittleEndian.Uint32(s.queues[i:])) >= uint64(s.nb) {
				return ErrMalformed
			}
		}
	}
	if s.HasMessage() {
		start := r.b
		r.u32()
		r.str()
		r.str()
		for n := r.count(4); n > 0; n-- {
			r.str()
		}
		if r.bad {
			return ErrMalformed
		}
		s.message = start[:len(start)-len(r.b)]
	}
	return r.done()
}

// Queues decodes the queue list into dst (reused when it has room), allocating one
// string per broker table entry. It returns nil when the input has no queue list.
func (s *Select) Queues(dst []sdk.Queue) []sdk.Queue {
	if !s.HasQueues() {
		return nil
	}
	names := make([]string, s.nb)
	r := reader{b: s.brokers}
	for i := range names {
		names[i] = string(r.str())
	}
	dst = dst[:0]
	for i := 0; i+8 <= len(s.queues); i += 8 {
		idx := binary.LittleEndian.Uint32(s.queues[i:])
		dst = append(dst, sdk.Queue{Broker: names[idx], ID: int32(binary.LittleEndian.Uint32(s.queues[i+4:]))})
	}
	return dst
}

// Message decodes the message into m, reusing m.Keys' array when it has room. str
// turns each string's bytes into a string: nil copies them; a guest may alias the
// input buffer instead (see wasmguest). It reports false when the input has no
// message.
func (s *Select) Message(m *sdk.MessageInfo, str func([]byte) string) bool {
	if !s.HasMessage() {
		return false
	}
	if str == nil {
		str = func(b []byte) string { return string(b) }
	}
	// ParseSelect validated the message: read it by offsets.
	b := s.message
	m.Size = int(min(uint64(binary.LittleEndian.Uint32(b)), math.MaxInt32))
	key, off, _ := strAt(b, 4)
	tags, off, _ := strAt(b, off)
	m.ShardingKey, m.Tags = str(key), str(tags)
	n := int(binary.LittleEndian.Uint32(b[off:]))
	off += 4
	m.Keys = m.Keys[:0]
	for range n {
		var k []byte
		k, off, _ = strAt(b, off)
		m.Keys = append(m.Keys, str(k))
	}
	return true
}
