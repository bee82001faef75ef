//go:build !wasip1

package sdk

// This file is the gRPC shim: it only translates between the contract's Go types and
// the generated protocol types. Protocol behaviour lives in server.go and session.go.

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/producerd/producerd/plugins/sdk/internal/strategypb"
)

func descriptorToPB(d Descriptor) *strategypb.Descriptor {
	return &strategypb.Descriptor{
		Name:            d.Name,
		NeedsMessage:    d.NeedsMessage,
		UrgentLatencyNs: int64(d.UrgentLatency),
		LocalApply:      d.LocalApply,
	}
}

func descriptorFromPB(d *strategypb.Descriptor) Descriptor {
	if d == nil {
		return Descriptor{}
	}
	return Descriptor{
		Name:          d.GetName(),
		NeedsMessage:  d.GetNeedsMessage(),
		UrgentLatency: time.Duration(d.GetUrgentLatencyNs()),
		LocalApply:    d.GetLocalApply(),
	}
}

func featuresToPB(f Features) []strategypb.Feature {
	var out []strategypb.Feature
	add := func(ok bool, v strategypb.Feature) {
		if ok {
			out = append(out, v)
		}
	}
	add(f.Observer, strategypb.Feature_FEATURE_OBSERVER)
	add(f.HealthReporter, strategypb.Feature_FEATURE_HEALTH_REPORTER)
	add(f.HealthSeeder, strategypb.Feature_FEATURE_HEALTH_SEEDER)
	add(f.Configurable, strategypb.Feature_FEATURE_CONFIGURABLE)
	add(f.Describer, strategypb.Feature_FEATURE_DESCRIBER)
	return out
}

func featuresFromPB(fs []strategypb.Feature) Features {
	var f Features
	for _, v := range fs {
		switch v {
		case strategypb.Feature_FEATURE_OBSERVER:
			f.Observer = true
		case strategypb.Feature_FEATURE_HEALTH_REPORTER:
			f.HealthReporter = true
		case strategypb.Feature_FEATURE_HEALTH_SEEDER:
			f.HealthSeeder = true
		case strategypb.Feature_FEATURE_CONFIGURABLE:
			f.Configurable = true
		case strategypb.Feature_FEATURE_DESCRIBER:
			f.Describer = true
		}
	}
	return f
}

func healthToPB(rows []BrokerHealth) *strategypb.HealthTable {
	t := &strategypb.HealthTable{Rows: make([]*strategypb.BrokerHealth, len(rows))}
	for i, r := range rows {
		var until int64
		if !r.Until.IsZero() {
			until = r.Until.UnixNano()
		}
		t.Rows[i] = &strategypb.BrokerHealth{
			Broker:        r.Broker,
			Available:     r.Available,
			UntilUnixNano: until,
			LatencyNs:     int64(r.Latency),
			Weight:        r.Weight,
		}
	}
	return t
}

func healthFromPB(t *strategypb.HealthTable) []BrokerHealth {
	rows := make([]BrokerHealth, len(t.GetRows()))
	for i, r := range t.GetRows() {
		var until time.Time
		if r.GetUntilUnixNano() != 0 {
			until = time.Unix(0, r.GetUntilUnixNano())
		}
		rows[i] = BrokerHealth{
			Broker:    r.GetBroker(),
			Available: r.GetAvailable(),
			Until:     until,
			Latency:   time.Duration(r.GetLatencyNs()),
			Weight:    r.GetWeight(),
		}
	}
	return rows
}

// routeToPB encodes a queue list with a broker-name dictionary: queue lists are sorted
// by broker, so consecutive queues share an entry.
func routeToPB(topic string, version uint64, qs []Queue) *strategypb.Route {
	r := &strategypb.Route{
		Topic:       topic,
		Version:     version,
		QueueBroker: make([]uint32, len(qs)),
		QueueId:     make([]int32, len(qs)),
	}
	for i, q := range qs {
		n := len(r.Brokers)
		if n == 0 || r.Brokers[n-1] != q.Broker {
			idx := -1
			for j, b := range r.Brokers {
				if b == q.Broker {
					idx = j
					break
				}
			}
			if idx < 0 {
				r.Brokers = append(r.Brokers, q.Broker)
				idx = len(r.Brokers) - 1
			}
			r.QueueBroker[i] = uint32(idx)
		} else {
			r.QueueBroker[i] = uint32(n - 1)
		}
		r.QueueId[i] = q.ID
	}
	return r
}

var errBadRoute = errors.New("sdk: malformed route")

func routeFromPB(r *strategypb.Route) ([]Queue, error) {
	ids, bs := r.GetQueueId(), r.GetQueueBroker()
	if len(ids) != len(bs) {
		return nil, errBadRoute
	}
	qs := make([]Queue, len(ids))
	for i := range ids {
		if int(bs[i]) >= len(r.GetBrokers()) {
			return nil, errBadRoute
		}
		qs[i] = Queue{Broker: r.Brokers[bs[i]], ID: ids[i]}
	}
	return qs, nil
}

func selectToPB(id uint64, s *Selection, timeout time.Duration) *strategypb.Select {
	p := &strategypb.Select{
		Id:           id,
		Topic:        s.Topic,
		RouteVersion: s.RouteVersion,
		LastBroker:   s.LastBroker,
		Attempt:      uint32(max(s.Attempt, 0)),
		RemainingNs:  int64(s.Remaining),
		TimeoutNs:    int64(timeout),
	}
	if m := s.Message; m != nil {
		p.Message = &strategypb.MessageInfo{Keys: m.Keys, Tags: m.Tags, ShardingKey: m.ShardingKey, Size: int64(m.Size)}
	}
	return p
}

// selectionFromPB fills s (and msg, used when the request carries a message) from p.
// The queue list is resolved by the caller.
func selectionFromPB(p *strategypb.Select, s *Selection, msg *MessageInfo) {
	*s = Selection{
		Topic:        p.GetTopic(),
		RouteVersion: p.GetRouteVersion(),
		LastBroker:   p.GetLastBroker(),
		Attempt:      int(p.GetAttempt()),
		Remaining:    time.Duration(p.GetRemainingNs()),
	}
	if m := p.GetMessage(); m != nil {
		*msg = MessageInfo{Keys: m.GetKeys(), Tags: m.GetTags(), ShardingKey: m.GetShardingKey(), Size: int(m.GetSize())}
		s.Message = msg
	}
}

// outcomeBatch accumulates outcomes as the parallel arrays of strategypb.Outcomes.
type outcomeBatch struct {
	pb    *strategypb.Outcomes
	names map[string]uint32
}

func (b *outcomeBatch) len() int {
	if b.pb == nil {
		return 0
	}
	return len(b.pb.Kind)
}

func (b *outcomeBatch) name(s string) uint32 {
	if i, ok := b.names[s]; ok {
		return i
	}
	i := uint32(len(b.pb.Names))
	b.pb.Names = append(b.pb.Names, s)
	b.names[s] = i
	return i
}

func (b *outcomeBatch) add(o *Outcome) {
	if b.pb == nil {
		b.pb = &strategypb.Outcomes{}
		if b.names == nil {
			b.names = make(map[string]uint32)
		}
	}
	p := b.pb
	p.Topic = append(p.Topic, b.name(o.Topic))
	p.Broker = append(p.Broker, b.name(o.Broker))
	p.Queue = append(p.Queue, o.Queue)
	p.LatencyNs = append(p.LatencyNs, int64(o.Latency))
	p.Kind = append(p.Kind, uint32(o.Kind))
	p.Code = append(p.Code, int32(o.Code))
	p.Isolation = append(p.Isolation, o.Isolation)
}

// take returns the accumulated message and starts a new batch.
func (b *outcomeBatch) take() *strategypb.Outcomes {
	p := b.pb
	b.pb = nil
	clear(b.names)
	return p
}

func outcomesFromPB(p *strategypb.Outcomes, out []Outcome) ([]Outcome, error) {
	n := len(p.GetKind())
	if len(p.GetTopic()) != n || len(p.GetBroker()) != n || len(p.GetQueue()) != n ||
		len(p.GetLatencyNs()) != n || len(p.GetCode()) != n || len(p.GetIsolation()) != n {
		return out, errors.New("sdk: malformed outcome batch")
	}
	names := p.GetNames()
	name := func(i uint32) string {
		if int(i) < len(names) {
			return names[i]
		}
		return ""
	}
	for i := range n {
		out = append(out, Outcome{
			Topic:     name(p.Topic[i]),
			Broker:    name(p.Broker[i]),
			Queue:     p.Queue[i],
			Latency:   time.Duration(p.LatencyNs[i]),
			Kind:      OutcomeKind(p.Kind[i]),
			Code:      int(p.Code[i]),
			Isolation: p.Isolation[i],
		})
	}
	return out, nil
}

// codeOf maps a plugin-side error to the code that crosses the process boundary.
func codeOf(err error) strategypb.Code {
	switch {
	case err == nil:
		return strategypb.Code_CODE_OK
	case errors.Is(err, context.DeadlineExceeded):
		return strategypb.Code_CODE_DEADLINE_EXCEEDED
	case errors.Is(err, context.Canceled):
		return strategypb.Code_CODE_CANCELED
	case errors.Is(err, ErrInvalidSettings):
		return strategypb.Code_CODE_INVALID_SETTINGS
	case errors.Is(err, ErrSelectPanic):
		return strategypb.Code_CODE_PANIC
	case errors.Is(err, ErrRouteUnknown):
		return strategypb.Code_CODE_ROUTE_UNKNOWN
	case errors.Is(err, ErrUnsupportedVersion):
		return strategypb.Code_CODE_UNSUPPORTED_VERSION
	}
	return strategypb.Code_CODE_SELECT_FAILED
}

// errOf maps a code and message received from a plugin back to a Go error wrapping a
// sentinel of this package.
func errOf(code strategypb.Code, msg string) error {
	var base error
	switch code {
	case strategypb.Code_CODE_OK:
		return nil
	case strategypb.Code_CODE_SELECT_FAILED:
		base = ErrSelectFailed
	case strategypb.Code_CODE_PANIC:
		base = ErrSelectPanic
	case strategypb.Code_CODE_ROUTE_UNKNOWN:
		base = ErrRouteUnknown
	case strategypb.Code_CODE_DEADLINE_EXCEEDED:
		base = ErrDecisionTimeout
	case strategypb.Code_CODE_INVALID_SETTINGS:
		base = ErrInvalidSettings
	case strategypb.Code_CODE_UNSUPPORTED_VERSION:
		base = ErrUnsupportedVersion
	case strategypb.Code_CODE_CANCELED:
		base = context.Canceled
	default:
		base = fmt.Errorf("%w (code %d)", ErrRemote, code)
	}
	if msg == "" {
		return base
	}
	return fmt.Errorf("%w: %s", base, msg)
}
