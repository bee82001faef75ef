package wasmabi

import (
	"encoding/binary"
	"time"

	"github.com/producerd/producerd/plugins/sdk"
)

// Description is the decoded output of producerd_describe.
type Description struct {
	Descriptor sdk.Descriptor
	// Flags are the FlagXxx bits: the Descriptor's booleans (already reflected in
	// Descriptor) and the optional calls the module implements.
	Flags uint32
}

// Has reports whether every bit of flag is set.
func (d Description) Has(flag uint32) bool { return d.Flags&flag == flag }

// Flags returns the describe flags of a strategy with Descriptor d that implements the
// listed optional interfaces.
func Flags(d sdk.Descriptor, observer, healthReporter, healthSeeder, configurable bool) uint32 {
	var f uint32
	set := func(on bool, bit uint32) {
		if on {
			f |= bit
		}
	}
	set(d.NeedsMessage, FlagNeedsMessage)
	set(d.LocalApply, FlagLocalApply)
	set(observer, FlagObserver)
	set(healthReporter, FlagHealthReporter)
	set(healthSeeder, FlagHealthSeeder)
	set(configurable, FlagConfigurable)
	return f
}

// AppendDescribe appends the output of producerd_describe:
//
//	u32 flags, i64 urgent latency (nanoseconds), str name
//
// The flags' FlagNeedsMessage and FlagLocalApply bits are taken from d; the others
// from flags.
func AppendDescribe(dst []byte, d sdk.Descriptor, flags uint32) []byte {
	flags &^= FlagNeedsMessage | FlagLocalApply
	flags |= Flags(d, false, false, false, false)
	dst = appendU32(dst, flags)
	dst = appendU64(dst, uint64(d.UrgentLatency))
	return appendStr(dst, d.Name)
}

// DecodeDescribe decodes the output of producerd_describe. Unknown flag bits are kept
// (a newer module may declare more); the caller decides whether to refuse them.
func DecodeDescribe(b []byte) (Description, error) {
	r := reader{b: b}
	var d Description
	d.Flags = r.u32()
	d.Descriptor.UrgentLatency = time.Duration(r.u64())
	d.Descriptor.Name = string(r.str())
	if err := r.done(); err != nil {
		return Description{}, err
	}
	d.Descriptor.NeedsMessage = d.Flags&FlagNeedsMessage != 0
	d.Descriptor.LocalApply = d.Flags&FlagLocalApply != 0
	return d, nil
}

// Flags of the observe input.
const (
	// ObservePolicy asks the module to report, with result code ObservePolicyChanged,
	// whether applying the outcomes changed its health table (ignoring the latency of
	// available brokers): the host then reads the table with producerd_health. A host
	// that decides from the module's policy (LocalApply) sets it.
	ObservePolicy uint32 = 1 << 0
)

// SamePolicy reports whether two health tables give the same policy: the latency of an
// available broker is not part of it (package pick makes a latency the cost of an
// exclusion only). A guest answers ObservePolicyChanged when it differs; the host
// installs a table it reads only when it differs from the installed one.
func SamePolicy(a, b []sdk.BrokerHealth) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		x, y := &a[i], &b[i]
		if x.Broker != y.Broker || x.Available != y.Available || x.Weight != y.Weight || !x.Until.Equal(y.Until) ||
			!x.Available && x.Latency != y.Latency {
			return false
		}
	}
	return true
}

// ObservePolicyChanged is producerd_observe's result when the input had ObservePolicy
// and the module's health table changed since it last reported a change.
const ObservePolicyChanged int32 = 1

// OutcomeRecordSize is the size of one outcome in the observe input.
const OutcomeRecordSize = 24

// maxObserveNames bounds the name table of one observe input (indices are u16).
const maxObserveNames = 1 << 16

// ObserveEncoder writes producerd_observe inputs. It keeps its name table between
// calls so that encoding allocates nothing in steady state. The zero value is ready;
// it is not safe for concurrent use.
type ObserveEncoder struct {
	names []string
	index map[string]uint16 // when names outgrows a linear scan
}

// linearNames is how many names ObserveEncoder looks up by scanning.
const linearNames = 16

// Append appends the input of producerd_observe for outcomes (at most 32768 of them,
// so that the name table fits its u16 indices):
//
//	i64 now, u32 flags (ObservePolicy), u32 name count, then that many str,
//	u32 outcome count, then count × 24-byte records {
//	  u16 topic (name index), u16 broker (name index), i32 queue, u8 kind,
//	  u8 isolation (0 or 1), u16 zero, i32 code, i64 latency (nanoseconds) }
//
// Each distinct topic and broker name crosses once per input; the records have a fixed
// size, so that a module reads them by offset (decoding strings per outcome costs a Go
// module about 0.3 µs each).
func (e *ObserveEncoder) Append(dst []byte, now int64, flags uint32, outcomes []sdk.Outcome) []byte {
	e.names = e.names[:0]
	clear(e.index)
	for i := range outcomes {
		e.lookup(outcomes[i].Topic)
		e.lookup(outcomes[i].Broker)
	}
	dst = appendU64(dst, uint64(now))
	dst = appendU32(dst, flags)
	dst = appendU32(dst, uint32(len(e.names)))
	for _, n := range e.names {
		dst = appendStr(dst, n)
	}
	dst = appendU32(dst, uint32(len(outcomes)))
	le := binary.LittleEndian
	for i := range outcomes {
		o := &outcomes[i]
		var iso byte
		if o.Isolation {
			iso = 1
		}
		dst = le.AppendUint16(dst, e.lookup(o.Topic))
		dst = le.AppendUint16(dst, e.lookup(o.Broker))
		dst = appendU32(dst, uint32(o.Queue))
		dst = append(dst, byte(o.Kind), iso, 0, 0)
		dst = appendU32(dst, uint32(clampI32(o.Code)))
		dst = appendU64(dst, uint64(o.Latency))
	}
	return dst
}

// lookup returns name's index in the table, adding it when new.
func (e *ObserveEncoder) lookup(name string) uint16 {
	if e.index == nil || len(e.names) <= linearNames {
		for i, n := range e.names {
			if n == name {
				return uint16(i)
			}
		}
	} else if i, ok := e.index[name]; ok {
		return i
	}
	if len(e.names) >= maxObserveNames {
		return 0 // unreachable within Append's limit
	}
	i := uint16(len(e.names))
	e.names = append(e.names, name)
	if len(e.names) > linearNames {
		if e.index == nil {
			e.index = make(map[string]uint16)
		}
		if len(e.index) == 0 {
			for k, n := range e.names {
				e.index[n] = uint16(k)
			}
		}
		e.index[name] = i
	}
	return i
}

// AppendObserve appends the input of producerd_observe with no flags (see
// ObserveEncoder.Append).
func AppendObserve(dst []byte, now int64, outcomes []sdk.Outcome) []byte {
	var e ObserveEncoder
	return e.Append(dst, now, 0, outcomes)
}

// Observe is a decoded producerd_observe input. A module reuses one: Decode keeps the
// arrays of Outcomes and of the name table.
type Observe struct {
	Now      int64
	Flags    uint32
	Outcomes []sdk.Outcome
	names    []string
}

// Decode decodes b into o. str turns each name into a string (a guest interns them to
// avoid allocating); nil means string(b). The records are read by fixed offsets in this
// one function: it runs per outcome inside a Go module.
func (o *Observe) Decode(b []byte, str func([]byte) string) error {
	if str == nil {
		str = func(b []byte) string { return string(b) }
	}
	le := binary.LittleEndian
	o.Outcomes, o.names = o.Outcomes[:0], o.names[:0]
	if len(b) < 16 {
		return ErrMalformed
	}
	now, flags, nn := int64(le.Uint64(b)), le.Uint32(b[8:]), le.Uint32(b[12:])
	off := 16
	if uint64(nn)*4 > uint64(len(b)-off) {
		return ErrMalformed
	}
	for range nn {
		start, end := span(b, off)
		if end < 0 {
			return ErrMalformed
		}
		o.names = append(o.names, str(b[start:end]))
		off = end
	}
	if len(b)-off < 4 {
		return ErrMalformed
	}
	n := le.Uint32(b[off:])
	off += 4
	if uint64(n)*OutcomeRecordSize != uint64(len(b)-off) {
		return ErrMalformed
	}
	if cap(o.Outcomes) < int(n) {
		o.Outcomes = make([]sdk.Outcome, 0, n)
	}
	// Field by field into the slots rather than appending composite literals: a struct
	// copy with pointers is a runtime call in a Go module, per outcome.
	out := o.Outcomes[:n]
	names := o.names
	rec := b[off:]
	for i := range out {
		r := rec[i*OutcomeRecordSize : (i+1)*OutcomeRecordSize]
		t, br := int(le.Uint16(r)), int(le.Uint16(r[2:]))
		if t >= len(names) || br >= len(names) || r[9] > 1 || r[10]|r[11] != 0 {
			clear(out[:i])
			return ErrMalformed
		}
		oc := &out[i]
		oc.Topic, oc.Broker = names[t], names[br]
		oc.Queue = int32(le.Uint32(r[4:]))
		oc.Kind = sdk.OutcomeKind(r[8])
		oc.Isolation = r[9] != 0
		oc.Code = int(int32(le.Uint32(r[12:])))
		oc.Latency = time.Duration(le.Uint64(r[16:]))
	}
	o.Outcomes = out
	o.Now, o.Flags = now, flags
	return nil
}

// DecodeObserve decodes the input of producerd_observe, appending the outcomes to
// dst[:0] (see Observe.Decode).
func DecodeObserve(b []byte, dst []sdk.Outcome, str func([]byte) string) (now int64, out []sdk.Outcome, err error) {
	o := Observe{Outcomes: dst}
	if err := o.Decode(b, str); err != nil {
		return 0, dst[:0], err
	}
	return o.Now, o.Outcomes, nil
}

// AppendNow appends the input of producerd_health: i64 now (Unix nanoseconds).
func AppendNow(dst []byte, now int64) []byte { return appendU64(dst, uint64(now)) }

// DecodeNow decodes the input of producerd_health.
func DecodeNow(b []byte) (int64, error) {
	r := reader{b: b}
	now := int64(r.u64())
	return now, r.done()
}

// rowMin is the smallest encoded health row.
const rowMin = 4 + 1 + 3 + 8 + 8

// AppendHealth appends the output of producerd_health:
//
//	u32 count, then count × {
//	  str broker, u8 available (0 or 1), u16 weight (0 = unweighted), u8 zero,
//	  i64 until (Unix nanoseconds, 0 = none), i64 latency (nanoseconds) }
//
// The weight sits in what ABI version 1 first defined as zero padding, so a guest that
// writes zeros publishes no weights and a host that skips them ignores them.
func AppendHealth(dst []byte, rows []sdk.BrokerHealth) []byte {
	dst = appendU32(dst, uint32(len(rows)))
	for i := range rows {
		row := &rows[i]
		dst = appendStr(dst, row.Broker)
		var avail byte
		if row.Available {
			avail = 1
		}
		w := min(row.Weight, 0xFFFF)
		dst = append(dst, avail, byte(w), byte(w>>8), 0)
		dst = appendU64(dst, uint64(unixNanos(row.Until)))
		dst = appendU64(dst, uint64(row.Latency))
	}
	return dst
}

// DecodeHealth decodes the output of producerd_health.
func DecodeHealth(b []byte) ([]sdk.BrokerHealth, error) {
	r := reader{b: b}
	rows := decodeRows(&r)
	if err := r.done(); err != nil {
		return nil, err
	}
	return rows, nil
}

func decodeRows(r *reader) []sdk.BrokerHealth {
	n := r.count(rowMin)
	if r.bad || n == 0 {
		return nil
	}
	rows := make([]sdk.BrokerHealth, 0, n)
	for range n {
		broker := r.str()
		avail := r.u8()
		var weight uint32
		if pad := r.take(3); pad != nil {
			weight = uint32(pad[0]) | uint32(pad[1])<<8
		}
		until := int64(r.u64())
		latency := time.Duration(r.u64())
		if r.bad {
			return nil
		}
		rows = append(rows, sdk.BrokerHealth{
			Broker:    string(broker),
			Available: avail != 0,
			Until:     fromUnixNanos(until),
			Latency:   latency,
			Weight:    weight,
		})
	}
	return rows
}

// AppendSeed appends the input of producerd_seed: i64 now, then the rows encoded as
// the output of producerd_health.
func AppendSeed(dst []byte, now int64, rows []sdk.BrokerHealth) []byte {
	return AppendHealth(AppendNow(dst, now), rows)
}

// DecodeSeed decodes the input of producerd_seed.
func DecodeSeed(b []byte) (now int64, rows []sdk.BrokerHealth, err error) {
	r := reader{b: b}
	now = int64(r.u64())
	rows = decodeRows(&r)
	if err := r.done(); err != nil {
		return 0, nil, err
	}
	return now, rows, nil
}
