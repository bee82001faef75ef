//go:build !wasip1

package sdk

// This file is the gRPC shim: it only translates between the contract's Go types and
// the generated protocol types. Protocol behaviour lives in server.go; the host side is
// host/internal/pluginclient.

import (
	"errors"
	"time"

	"github.com/producerd/producerd/internal/strategywire"
	"github.com/producerd/producerd/internal/strategywire/strategypb"
)

func descriptorToPB(d Descriptor) *strategypb.Descriptor {
	return &strategypb.Descriptor{
		Name:            d.Name,
		NeedsMessage:    d.NeedsMessage,
		UrgentLatencyNs: int64(d.UrgentLatency),
		LocalApply:      d.LocalApply,
	}
}

func featuresToPB(f strategywire.Features) []strategypb.Feature {
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

// settingProblemsToPB lists the *SettingError values of a constructor's error, so that
// the host can place each at its key's line in its config.
func settingProblemsToPB(err error) []*strategypb.SettingProblem {
	var out []*strategypb.SettingProblem
	for _, se := range strategywire.ErrorsOf[*SettingError](err) {
		p := &strategypb.SettingProblem{Key: se.Key}
		if se.Err != nil {
			p.Message = se.Err.Error()
		}
		out = append(out, p)
	}
	return out
}
