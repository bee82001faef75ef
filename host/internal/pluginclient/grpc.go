package pluginclient

// This file is the host side of the gRPC shim: it only translates between the
// contract's Go types and the generated protocol types. The plugin side is in package
// sdk (grpc.go), the shared parts in internal/strategywire.

import (
	"time"

	"github.com/producerd/producerd/internal/strategywire"
	"github.com/producerd/producerd/internal/strategywire/strategypb"
	"github.com/producerd/producerd/plugins/sdk"
)

func descriptorFromPB(d *strategypb.Descriptor) sdk.Descriptor {
	if d == nil {
		return sdk.Descriptor{}
	}
	return sdk.Descriptor{
		Name:          d.GetName(),
		NeedsMessage:  d.GetNeedsMessage(),
		UrgentLatency: time.Duration(d.GetUrgentLatencyNs()),
		LocalApply:    d.GetLocalApply(),
	}
}

func featuresFromPB(fs []strategypb.Feature) strategywire.Features {
	var f strategywire.Features
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

// routeToPB encodes a queue list with a broker-name dictionary: queue lists are sorted
// by broker, so consecutive queues share an entry.
func routeToPB(topic string, version uint64, qs []sdk.Queue) *strategypb.Route {
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

func selectToPB(id uint64, s *sdk.Selection, timeout time.Duration) *strategypb.Select {
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

func (b *outcomeBatch) add(o *sdk.Outcome) {
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
