package daemon

import (
	"fmt"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/producerd/producerd/internal/config"
	"github.com/producerd/producerd/plugins/sdk"
)

// series counts the series a collector exposes.
func series(c prometheus.Collector) int {
	ch := make(chan prometheus.Metric, 1<<16)
	c.Collect(ch)
	close(ch)
	return len(ch)
}

// 32 brokers x 1,000 topics: per-topic series only when asked for; per-broker always.
func TestMetricCardinality(t *testing.T) {
	t.Parallel()
	for _, perTopic := range []bool{false, true} {
		t.Run(fmt.Sprintf("metrics_per_topic=%v", perTopic), func(t *testing.T) {
			t.Parallel()
			cfg := &config.Config{}
			cfg.Admin.MetricsPerTopic = perTopic
			d := &Daemon{}
			d.cfg.Store(cfg)
			m := newMetrics(d)
			d.met = m
			hooks := m.producerHooks("g")
			const brokers, topics = 32, 1000
			for tp := range topics {
				for b := range brokers {
					hooks.OnAttempt(fmt.Sprintf("T%d", tp), sdk.Outcome{Broker: fmt.Sprintf("broker-%d", b), Kind: sdk.OutcomeOK})
				}
				d.finished("grpc", &group{name: "g"}, fmt.Sprintf("T%d", tp), time.Now(), 2, nil)
			}
			wantSends, wantRetries := brokers, 1
			if perTopic {
				wantSends, wantRetries = brokers*topics, topics
			}
			if got := series(m.sends); got != wantSends {
				t.Errorf("producerd_send_attempts_total has %d series, want %d", got, wantSends)
			}
			if got := series(m.retries); got != wantRetries {
				t.Errorf("producerd_send_retries_total has %d series, want %d", got, wantRetries)
			}
			if got := series(m.attemptLatency); got != brokers {
				t.Errorf("producerd_send_attempt_duration_seconds has %d series, want one per broker (%d)", got, brokers)
			}
		})
	}
}
