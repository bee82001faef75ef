package daemon

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/producerd/producerd/core"
	"github.com/producerd/producerd/internal/rmqtest"
	"github.com/producerd/producerd/internal/rmqtest/readback"
	"github.com/producerd/producerd/internal/testwait"
)

// TestIntegrationTimerHTTP: a message posted to the HTTP API with deliver_at = now+4s is
// not in its topic before about 4 s and arrives afterwards (RocketMQ 5.3.3 timer wheel).
func TestIntegrationTimerHTTP(t *testing.T) {
	c := rmqtest.Require(t)
	const topic = "IT_Daemon"
	rc := readback.Client(t)
	from := readback.Mark(t, rc, c, topic, 4)
	httpAddr := startDaemon(t, configText(c.NameServer, "it-timer", "rr", 100), hclog.Info).httpAddr

	start := time.Now()
	body := fmt.Sprintf(`{"topic":%q,"body":"timer over http","deliver_at":%q}`, topic, start.Add(4*time.Second).UTC().Format(time.RFC3339Nano))
	resp, err := http.Post("http://"+httpAddr+"/v1/messages", "application/json", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	var out struct {
		Result HTTPResult `json:"result"`
	}
	err = json.NewDecoder(resp.Body).Decode(&out)
	resp.Body.Close()
	if err != nil || resp.StatusCode != http.StatusOK || out.Result.MsgID == "" {
		t.Fatalf("POST: %d %v %+v", resp.StatusCode, err, out)
	}
	var arrived time.Duration
	testwait.Until(time.Until(start.Add(20*time.Second)), func() bool {
		readback.Scan(t, rc, topic, from, func(m *core.MessageExt) bool {
			if m.UniqKey() == out.Result.MsgID {
				arrived = time.Since(start)
			}
			return arrived != 0
		})
		return arrived != 0
	})
	t.Logf("deliver_at now+4s over HTTP: visible after %v", arrived)
	if arrived == 0 || arrived < 3*time.Second {
		t.Fatalf("arrival after %v, want about 4 s", arrived)
	}
}
