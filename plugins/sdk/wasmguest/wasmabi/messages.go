package wasmabi

import (
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

// outcomeMin is the smallest encoded outcome: two empty strings and the fixed fields.
const outcomeMin = 4 + 4 + 4 + 1 + 1 + 2 + 4 + 8

// AppendObserve appends the input of producerd_observe:
//
//	i64 now, u32 count, then count × {
//	  str topic, str broker, i32 queue, u8 kind, u8 isolation (0 or 1), u8×2 zero,
//	  i32 code, i64 latency (nanoseconds) }
func AppendObserve(dst []byte, now int64, outcomes []sdk.Outcome) []byte {
	dst = appendU64(dst, uint64(now))
	dst = appendU32(dst, uint32(len(outcomes)))
	for i := range outcomes {
		o := &outcomes[i]
		dst = appendStr(dst, o.Topic)
		dst = appendStr(dst, o.Broker)
		dst = appendU32(dst, uint32(o.Queue))
		var iso byte
		if o.Isolation {
			iso = 1
		}
		dst = append(dst, byte(o.Kind), iso, 0, 0)
		dst = appendU32(dst, uint32(clampI32(o.Code)))
		dst = appendU64(dst, uint64(o.Latency))
	}
	return dst
}

// DecodeObserve decodes the input of producerd_observe, appending the outcomes to
// dst[:0]. str turns each topic and broker name into a string (a guest interns them
// to avoid allocating); nil means string(b).
func DecodeObserve(b []byte, dst []sdk.Outcome, str func([]byte) string) (now int64, out []sdk.Outcome, err error) {
	if str == nil {
		str = func(b []byte) string { return string(b) }
	}
	r := reader{b: b}
	now = int64(r.u64())
	n := r.count(outcomeMin)
	out = dst[:0]
	for range n {
		topic, broker := r.str(), r.str()
		queue := int32(r.u32())
		kind, iso := r.u8(), r.u8()
		r.take(2)
		code := int32(r.u32())
		latency := time.Duration(r.u64())
		if r.bad {
			break
		}
		out = append(out, sdk.Outcome{
			Topic:     str(topic),
			Broker:    str(broker),
			Queue:     queue,
			Latency:   latency,
			Kind:      sdk.OutcomeKind(kind),
			Code:      int(code),
			Isolation: iso != 0,
		})
	}
	if err := r.done(); err != nil {
		return 0, dst[:0], err
	}
	return now, out, nil
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
