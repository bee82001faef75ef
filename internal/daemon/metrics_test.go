package daemon

import (
	"bytes"
	"net/http"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus/testutil/promlint"
)

// TestMetricsLint: /metrics passes promlint (units in names, _total on counters, help
// on every metric), the counters with known label values have their zero series from
// the start, and plugin restarts are a counter.
func TestMetricsLint(t *testing.T) {
	c := startCluster(t)
	h := startText(t, c, configText(c.NameServerAddr(), instanceName(t), "rr", 100)+"message_trace = true\n")
	resp, err := http.Get("http://" + h.adminAddr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	var body bytes.Buffer
	_, _ = body.ReadFrom(resp.Body)
	resp.Body.Close()
	problems, err := promlint.New(bytes.NewReader(body.Bytes())).Lint()
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		t.Errorf("promlint: %s: %s", p.Metric, p.Text)
	}
	text := body.String()
	for _, want := range []string{
		`producerd_rejected_total{api="http",reason="resource_exhausted"} 0`,
		`producerd_rejected_total{api="stream",reason="unknown_group"} 0`,
		`producerd_config_reloads_total{result="error"} 0`,
		`producerd_admin_auth_failures_total{api="grpc"} 0`,
		`producerd_strategy_swaps_total{group="g1",result="error"} 0`,
		`producerd_connection_events_total{event="closed_error"} 0`,
		"# TYPE producerd_plugin_restarts_total counter",
		`producerd_message_trace_messages_total{group="g1",result="error"} 0`,
		`producerd_message_trace_dropped_records_total{group="g1"} 0`,
		`producerd_strategy_fallbacks_total{group="g1",reason="timeout",strategy="rr"} 0`,
		`producerd_plugin_events_total{event="crash",group="g1",strategy="rr"} 0`,
	} {
		if !strings.Contains(text, want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
}
