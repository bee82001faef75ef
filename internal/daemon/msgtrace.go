package daemon

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/producerd/producerd/core"
	"github.com/producerd/producerd/internal/config"
)

// traceGroupPrefix starts the group of a trace producer, as in the Java client
// (TraceConstants.GROUP_NAME_PREFIX).
const traceGroupPrefix = "_INNER_TRACE_PRODUCER-"

// newMsgTracer starts the message-trace writer of a group with message_trace on (nil
// when off): its own producer, group _INNER_TRACE_PRODUCER-<group>, on the group's
// client settings, with the Java trace producer's 5 s send timeout and no hooks (no
// trace of the trace).
func (d *Daemon) newMsgTracer(pc core.ProducerConfig, p config.Producer) (*core.MsgTracer, error) {
	if !p.MessageTrace {
		return nil, nil
	}
	// No namespace: the tools read the trace topic by its plain name.
	tc := core.ProducerConfig{Group: traceGroupPrefix + p.Group, Client: pc.Client, SendTimeout: 5 * time.Second}
	prod, err := core.NewProducer(tc)
	if err != nil {
		return nil, err
	}
	return core.NewMsgTracer(prod, p.MessageTraceTopic, d.log.Named("msgtrace").With("group", p.Group)), nil
}

// msgTraceCollector reports the message-trace writers' counts at scrape time.
type msgTraceCollector struct{ d *Daemon }

var (
	traceDroppedDesc = prometheus.NewDesc("producerd_message_trace_dropped_records_total",
		"Message-trace records dropped because the group's trace queue (2048) was full.", []string{"group"}, nil)
	traceSentDesc = prometheus.NewDesc("producerd_message_trace_messages_total",
		"Trace messages the group's trace writer sent to the trace topic, by result (ok, error).", []string{"group", "result"}, nil)
)

func (c *msgTraceCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- traceDroppedDesc
	ch <- traceSentDesc
}

func (c *msgTraceCollector) Collect(ch chan<- prometheus.Metric) {
	for _, g := range c.d.groupList() {
		if g.tracer == nil {
			continue
		}
		dropped, sent, failed := g.tracer.Stats()
		ch <- prometheus.MustNewConstMetric(traceDroppedDesc, prometheus.CounterValue, float64(dropped), g.name)
		ch <- prometheus.MustNewConstMetric(traceSentDesc, prometheus.CounterValue, float64(sent), g.name, "ok")
		ch <- prometheus.MustNewConstMetric(traceSentDesc, prometheus.CounterValue, float64(failed), g.name, "error")
	}
}
