package wasmabi

import (
	"encoding/binary"
	"math"
	"time"
	"unsafe"

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

	// The message, when HasMessage: its fields, and keys, the key strings (NumKeys
	// of them, each a u32 length and its bytes, validated).
	Size        int
	ShardingKey []byte
	Tags        []byte
	NumKeys     int
	keys        []byte
}

// HasQueues reports whether the input carries the queue list.
func (s *Select) HasQueues() bool { return s.Flags&SelectHasQueues != 0 }

// HasMessage reports whether the input carries a message.
func (s *Select) HasMessage() bool { return s.Flags&SelectHasMessage != 0 }

// ParseSelect parses and fully validates a producerd_select input into s without
// allocating. It runs once per decision inside a Go module, where every function call
// costs tens of nanoseconds (Go's WebAssembly calls are resumable and spill to the Go
// stack): the header and the message are therefore read by offsets in this one
// function, with inlined helpers only; the queue list, which crosses once per route
// version, goes through parseQueues.
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
	ts, te := span(b, SelectHeaderSize)
	if te < 0 || te > ts && flags&SelectHasQueues == 0 {
		return ErrMalformed
	}
	ls, le2 := span(b, te)
	if le2 < 0 {
		return ErrMalformed
	}
	s.Flags = flags
	s.Attempt = le.Uint32(b[4:])
	s.Now = int64(le.Uint64(b[8:]))
	s.RouteVersion = le.Uint64(b[16:])
	s.Remaining = time.Duration(le.Uint64(b[24:]))
	s.Slot = slot
	s.Topic = b[ts:te:te]
	s.LastBroker = b[ls:le2:le2]
	s.NumQueues, s.nb, s.brokers, s.queues = 0, 0, nil, nil
	s.Size, s.ShardingKey, s.Tags, s.NumKeys, s.keys = 0, nil, nil, 0, nil
	off := le2
	if flags&SelectHasQueues != 0 {
		if off = s.parseQueues(b, off); off < 0 {
			return ErrMalformed
		}
	}
	if flags&SelectHasMessage != 0 {
		if len(b)-off < 4 {
			return ErrMalformed
		}
		s.Size = int(min(uint64(le.Uint32(b[off:])), math.MaxInt32))
		ks, ke := span(b, off+4)
		if ke < 0 {
			return ErrMalformed
		}
		gs, ge := span(b, ke)
		if ge < 0 || len(b)-ge < 4 {
			return ErrMalformed
		}
		n := le.Uint32(b[ge:])
		off = ge + 4
		if uint64(n)*4 > uint64(len(b)-off) {
			return ErrMalformed
		}
		start := off
		for range n {
			if _, off = span(b, off); off < 0 {
				return ErrMalformed
			}
		}
		s.ShardingKey = b[ks:ke:ke]
		s.Tags = b[gs:ge:ge]
		s.NumKeys = int(n)
		s.keys = b[start:off:off]
	}
	if off != len(b) {
		return ErrMalformed
	}
	return nil
}

// span returns the bounds of the string at off (a u32 length and its bytes): its
// bytes are b[start:end], and end is where the next field starts. end is -1 when the
// string does not fit in b (off itself may be -1, from a previous span).
func span(b []byte, off int) (start, end int) {
	if off < 0 || len(b)-off < 4 {
		return 0, -1
	}
	n := uint64(binary.LittleEndian.Uint32(b[off:]))
	if off += 4; n > uint64(len(b)-off) {
		return 0, -1
	}
	return off, off + int(n)
}

// parseQueues parses the queue list at off and returns the offset after it, or -1.
func (s *Select) parseQueues(b []byte, off int) int {
	le := binary.LittleEndian
	if len(b)-off < 4 {
		return -1
	}
	nb := le.Uint32(b[off:])
	off += 4
	if uint64(nb)*4 > uint64(len(b)-off) {
		return -1
	}
	start := off
	for range nb {
		if _, off = span(b, off); off < 0 {
			return -1
		}
	}
	brokers := b[start:off:off]
	if len(b)-off < 4 {
		return -1
	}
	nq := le.Uint32(b[off:])
	off += 4
	if uint64(nq)*8 > uint64(len(b)-off) {
		return -1
	}
	queues := b[off : off+8*int(nq) : off+8*int(nq)]
	for i := 0; i+8 <= len(queues); i += 8 {
		if le.Uint32(queues[i:]) >= nb {
			return -1
		}
	}
	s.nb, s.brokers, s.NumQueues, s.queues = int(nb), brokers, int(nq), queues
	return off + len(queues)
}

// Queues decodes the queue list into dst (reused when it has room), allocating one
// string per broker table entry. It returns nil when the input has no queue list.
func (s *Select) Queues(dst []sdk.Queue) []sdk.Queue {
	if !s.HasQueues() {
		return nil
	}
	names := make([]string, s.nb)
	off := 0
	for i := range names {
		var start int
		start, off = span(s.brokers, off)
		names[i] = string(s.brokers[start:off])
	}
	dst = dst[:0]
	for i := 0; i+8 <= len(s.queues); i += 8 {
		idx := binary.LittleEndian.Uint32(s.queues[i:])
		dst = append(dst, sdk.Queue{Broker: names[idx], ID: int32(binary.LittleEndian.Uint32(s.queues[i+4:]))})
	}
	return dst
}

// Key returns the message's key k (0 ≤ k < NumKeys) and the offset of the next one;
// start with off = 0. A guest walks the keys with it without a callback per key.
func (s *Select) Key(off int) (key []byte, next int) {
	start, end := span(s.keys, off)
	if end < 0 {
		return nil, len(s.keys)
	}
	return s.keys[start:end:end], end
}

// Message decodes the message into m, reusing m.Keys' array when it has room. With
// alias its strings alias the input instead of copying it: for a guest, whose input
// buffer is not written again while the decision uses them (valid only during the
// call; copying would allocate on every decision, and a Go module collects garbage
// inside the call that triggers it, which costs milliseconds). It reports false when
// the input has no message.
func (s *Select) Message(m *sdk.MessageInfo, alias bool) bool {
	if !s.HasMessage() {
		return false
	}
	str := func(b []byte) string {
		if alias && len(b) > 0 {
			return unsafe.String(unsafe.SliceData(b), len(b))
		}
		return string(b)
	}
	m.Size = s.Size
	m.ShardingKey, m.Tags = str(s.ShardingKey), str(s.Tags)
	m.Keys = m.Keys[:0]
	off := 0
	for range s.NumKeys {
		var k []byte
		k, off = s.Key(off)
		m.Keys = append(m.Keys, str(k))
	}
	return true
}
