package daemon

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/producerd/producerd/core"
	"github.com/producerd/producerd/internal/config"
)

// initOrder creates the keyed-send metric and returns it for registration.
func (m *metrics) initOrder() prometheus.Collector {
	m.keyedMoves = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "producerd_keyed_queue_count_changes_total",
		Help: "Queue count changes seen by keyed sends (sharding keys) of a topic, by group and topic: after one, keys hash to other queues."},
		[]string{"group", "topic"})
	return m.keyedMoves
}

// orderConfig maps a group's ordering, hash and namespace settings to core and counts
// queue count changes under keyed sends.
func (d *Daemon) orderConfig(pc *core.ProducerConfig, p config.Producer) {
	if p.Ordering == "relaxed" {
		pc.Ordering = core.OrderingRelaxed
	}
	if p.Hash == "fnv" {
		pc.KeyHash = core.KeyHashFNV
	}
	pc.Namespace, pc.MaxDelayLevel = p.Namespace, p.MaxDelayLevel
	group := p.Group
	pc.Hooks.OnKeyedQueueCountChange = func(topic string, _, _ int) {
		d.met.keyedMoves.WithLabelValues(group, topic).Inc()
	}
}
