package daemon

import (
	"net/http"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/producerd/producerd/core"
	"github.com/producerd/producerd/plugins/sdk"
	"github.com/producerd/producerd/remoting"
)

// metrics are the daemon's Prometheus metrics, on a registry of its own (served at
// /metrics on the admin listener). Label values are bounded by the config (groups,
// strategies), the cluster (brokers) and RocketMQ's code table; the topic label of the
// per-send series is "" unless admin.metrics_per_topic (then limits.max_topics bounds it).
type metrics struct {
	reg *prometheus.Registry
	d   *Daemon

	sends           *prometheus.CounterVec   // group, topic, broker, result
	attemptLatency  *prometheus.HistogramVec // broker
	requestLatency  *prometheus.HistogramVec // api, mode
	retries         *prometheus.CounterVec   // group, topic
	decisions       *prometheus.CounterVec   // group
	decisionLatency *prometheus.HistogramVec // group
	rejected        *prometheus.CounterVec   // api, reason
	routeQueries    *prometheus.CounterVec   // result
	connEvents      *prometheus.CounterVec   // event
	connsOpen       prometheus.Gauge
	remoting        *prometheus.CounterVec // request, result
	swaps           *prometheus.CounterVec // group, result
	reloads         *prometheus.CounterVec // result
	fallbacks       *prometheus.CounterVec // group, strategy, reason
	pluginEvents    *prometheus.CounterVec // group, strategy, event
	keyedMoves      *prometheus.CounterVec // group, topic (order.go)
	authFailures    *prometheus.CounterVec // api
	perTopic        atomic.Bool            // some series was given a topic label
}

// latencyBuckets cover 100us..10s.
var latencyBuckets = []float64{.0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10}

func newMetrics(d *Daemon) *metrics {
	m := &metrics{reg: prometheus.NewRegistry(), d: d}
	f := func(c prometheus.Collector) { m.reg.MustRegister(c) }
	m.sends = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "producerd_send_attempts_total",
		Help: "Send attempts to brokers by group, topic, broker and result (SEND_OK, a RocketMQ response code name, TIMEOUT, CONNECT_FAILED, OTHER)."},
		[]string{"group", "topic", "broker", "result"})
	m.attemptLatency = prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "producerd_send_attempt_duration_seconds",
		Help: "Latency of send attempts by broker.", Buckets: latencyBuckets}, []string{"broker"})
	m.requestLatency = prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "producerd_request_duration_seconds",
		Help: "Time from accepting a message to answering it, by API (grpc, stream, batch, http) and outcome (ok, error).", Buckets: latencyBuckets},
		[]string{"api", "outcome"})
	m.retries = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "producerd_send_retries_total",
		Help: "Attempts beyond the first, by group and topic."}, []string{"group", "topic"})
	m.decisions = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "producerd_strategy_decisions_total",
		Help: "Queue decisions by group, whoever made them; producerd_strategy_fallbacks_total counts those the strategy did not make."},
		[]string{"group"})
	m.decisionLatency = prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "producerd_strategy_decision_duration_seconds",
		Help: "Latency of queue decisions by group.", Buckets: []float64{1e-7, 1e-6, 5e-6, 1e-5, 5e-5, 1e-4, 5e-4, 1e-3, 5e-3, .01, .05}},
		[]string{"group"})
	m.rejected = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "producerd_rejected_total",
		Help: "Messages refused before sending, by API and reason (resource_exhausted, unavailable, invalid, unknown_group)."},
		[]string{"api", "reason"})
	m.routeQueries = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "producerd_route_queries_total",
		Help: "Route queries (GET_ROUTEINFO_BY_TOPIC) to NameServers by result."}, []string{"result"})
	m.connEvents = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "producerd_connection_events_total",
		Help: "Broker and NameServer connections opened and closed (closed_error: closed by a failure)."}, []string{"event"})
	m.connsOpen = prometheus.NewGauge(prometheus.GaugeOpts{Name: "producerd_connections_open", Help: "Open broker and NameServer connections."})
	m.remoting = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "producerd_remoting_requests_total",
		Help: "Remoting requests by request code and result (a response code name or a transport error)."}, []string{"request", "result"})
	m.swaps = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "producerd_strategy_swaps_total",
		Help: "Strategy swaps by group and result (ok, error)."}, []string{"group", "result"})
	m.reloads = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "producerd_config_reloads_total",
		Help: "Config reloads by result (ok, error)."}, []string{"result"})
	m.fallbacks = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "producerd_strategy_fallbacks_total",
		Help: "Decisions the strategy did not make (the host or core decided in-process), by group, strategy and reason (timeout, error, out_of_range, down, breaker, ..., core when core's round-robin decided)."},
		[]string{"group", "strategy", "reason"})
	m.pluginEvents = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "producerd_plugin_events_total",
		Help: "Strategy plugin process events by group, strategy and event (crash, restart, crash_loop, rollback)."},
		[]string{"group", "strategy", "event"})
	m.authFailures = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "producerd_admin_auth_failures_total",
		Help: "Admin calls refused for a missing or wrong token, by API (grpc, http)."}, []string{"api"})
	for _, c := range []prometheus.Collector{m.authFailures, m.sends, m.attemptLatency, m.requestLatency, m.retries, m.decisions,
		m.decisionLatency, m.rejected, m.routeQueries, m.connEvents, m.connsOpen, m.remoting, m.swaps, m.reloads,
		m.fallbacks, m.pluginEvents} {
		f(c)
	}
	f(m.initOrder())
	m.zeroSeries()
	f(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "producerd_inflight_messages", Help: "Messages accepted and not yet answered."},
		func() float64 { n, _ := d.limit.load(); return float64(n) }))
	f(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "producerd_inflight_bytes", Help: "Bytes of the messages in flight, and of HTTP bodies being read."},
		func() float64 { _, b := d.limit.load(); return float64(b) }))
	f(&strategyCollector{d: d})
	f(collectors.NewGoCollector())
	f(collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

// rejectReasons are the reason labels of producerd_rejected_total (Daemon.reject).
var rejectReasons = []string{"resource_exhausted", "unavailable", "invalid", "unknown_group"}

// zeroSeries creates the series of the label values known from the start at 0, so a
// rate() or an alert on them works before their first event.
func (m *metrics) zeroSeries() {
	for _, api := range []string{apiGRPC, apiStream, apiBatch, apiHTTP, apiRMQv2} {
		for _, r := range rejectReasons {
			m.rejected.WithLabelValues(api, r)
		}
	}
	for _, r := range []string{"ok", "error"} {
		m.reloads.WithLabelValues(r)
	}
	for _, api := range []string{"grpc", "http"} {
		m.authFailures.WithLabelValues(api)
	}
	for _, e := range []string{"opened", "closed", "closed_error"} {
		m.connEvents.WithLabelValues(e)
	}
	m.routeQueries.WithLabelValues("SUCCESS")
}

func (m *metrics) handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{Registry: m.reg})
}

// topic is the topic label value of the per-send series: the topic itself only when
// admin.metrics_per_topic is on, else "" (one series per group, broker and result).
func (m *metrics) topic(topic string) string {
	if cfg := m.d.Config(); cfg != nil && cfg.Admin.MetricsPerTopic {
		if !m.perTopic.Load() {
			m.perTopic.Store(true)
		}
		return topic
	}
	return ""
}

// forgetTopic drops the series of a topic the group no longer tracks. Until a series
// had a topic label there are none, and the scan over every series is skipped.
func (m *metrics) forgetTopic(group, topic string) {
	if !m.perTopic.Load() {
		return
	}
	l := prometheus.Labels{"group": group, "topic": topic}
	m.sends.DeletePartialMatch(l)
	m.retries.DeletePartialMatch(l)
}

// producerHooks returns the core hooks of one group.
func (m *metrics) producerHooks(group string) core.ProducerHooks {
	dl := m.decisionLatency.WithLabelValues(group)
	all, fb := m.decisions.WithLabelValues(group), m.fallbacks.WithLabelValues(group, "", "core")
	for _, r := range []string{"ok", "error", "rolled_back"} {
		m.swaps.WithLabelValues(group, r)
	}
	return core.ProducerHooks{
		OnAttempt: func(topic string, o sdk.Outcome) {
			m.sends.WithLabelValues(group, m.topic(topic), o.Broker, outcomeResult(o)).Inc()
			m.attemptLatency.WithLabelValues(o.Broker).Observe(o.Latency.Seconds())
		},
		OnDecision: func(latency time.Duration, fallback bool, _ error) {
			dl.Observe(latency.Seconds())
			all.Inc()
			if fallback {
				fb.Inc()
			}
		},
	}
}

func outcomeResult(o sdk.Outcome) string {
	switch o.Kind {
	case sdk.OutcomeOK:
		return "SEND_OK"
	case sdk.OutcomeStoredNotOK, sdk.OutcomeBrokerError:
		return remoting.ResponseCode(o.Code).String()
	case sdk.OutcomeTimeout:
		return "TIMEOUT"
	case sdk.OutcomeConnectFailure:
		return "CONNECT_FAILED"
	}
	return "OTHER"
}

// remotingHooks returns the transport hooks of the client instance.
func (m *metrics) remotingHooks() remoting.Hooks {
	return remoting.Hooks{
		OnRequest: func(e remoting.RequestEvent) {
			result := "SUCCESS"
			switch {
			case e.Err != nil:
				result = transportResult(e.Err)
			case e.Oneway:
				result = "ONEWAY"
			default:
				result = e.ResponseCode.String()
			}
			m.remoting.WithLabelValues(e.Code.String(), result).Inc()
			if e.Code == remoting.GetRouteInfoByTopic {
				m.routeQueries.WithLabelValues(result).Inc()
			}
		},
		OnConn: func(e remoting.ConnEvent) {
			switch {
			case e.Open:
				m.connEvents.WithLabelValues("opened").Inc()
				m.connsOpen.Inc()
			case e.Err != nil:
				m.connEvents.WithLabelValues("closed_error").Inc()
				m.connsOpen.Dec()
			default:
				m.connEvents.WithLabelValues("closed").Inc()
				m.connsOpen.Dec()
			}
		},
	}
}

func transportResult(err error) string {
	switch {
	case errorsIs(err, remoting.ErrTimeout):
		return "TIMEOUT"
	case errorsIs(err, remoting.ErrConnect):
		return "CONNECT_FAILED"
	case errorsIs(err, remoting.ErrConnClosed):
		return "CONN_CLOSED"
	case errorsIs(err, remoting.ErrSend):
		return "SEND_FAILED"
	case errorsIs(err, remoting.ErrTooManyRequests):
		return "TOO_MANY_REQUESTS"
	}
	return "OTHER"
}

// strategyCollector reads the strategies' state at scrape time: isolated brokers,
// plugin restarts, the active generation.
type strategyCollector struct{ d *Daemon }

var (
	isolatedDesc = prometheus.NewDesc("producerd_isolated_brokers",
		"Brokers the group's strategy currently isolates (from its published health).", []string{"group", "strategy"}, nil)
	restartsDesc = prometheus.NewDesc("producerd_plugin_restarts_total",
		"Restarts of the plugin processes of the group's active strategy, as the host reports them (a swap starts a new count).", []string{"group", "strategy"}, nil)
	generationDesc = prometheus.NewDesc("producerd_strategy_generation",
		"Generation of the group's active strategy (increases with every swap).", []string{"group", "strategy"}, nil)
)

func (c *strategyCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- isolatedDesc
	ch <- restartsDesc
	ch <- generationDesc
}

func (c *strategyCollector) Collect(ch chan<- prometheus.Metric) {
	now := time.Now()
	for _, g := range c.d.groupList() {
		st := g.strategyStatus()
		ch <- prometheus.MustNewConstMetric(isolatedDesc, prometheus.GaugeValue, float64(isolated(st.Health, now)), g.name, st.Name)
		ch <- prometheus.MustNewConstMetric(restartsDesc, prometheus.CounterValue, float64(st.Restarts), g.name, st.Name)
		ch <- prometheus.MustNewConstMetric(generationDesc, prometheus.GaugeValue, float64(st.Generation), g.name, st.Name)
	}
}
