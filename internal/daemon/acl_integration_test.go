package daemon

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protojson"

	"github.com/producerd/producerd/api/producerdpb"
	"github.com/producerd/producerd/core"
	"github.com/producerd/producerd/internal/rmqtest"
	"github.com/producerd/producerd/internal/rmqtest/readback"
	"github.com/producerd/producerd/internal/testwait"
	"github.com/producerd/producerd/remoting"
)

// TestIntegrationACL against a RocketMQ 5.3.3 broker with authentication (ACL 2.0) on: the
// right key pair (secret from an environment variable) sends and the message is read
// back; a wrong secret gets the broker's denial as a non-retryable error after one
// attempt; neither secret appears in the daemon's log (debug level), status or metrics.
func TestIntegrationACL(t *testing.T) {
	c := rmqtest.RequireACL(t)
	const topic = "IT_Acl"
	wrong := "wrong-secret-" + fmt.Sprint(time.Now().UnixNano())
	t.Setenv("PRODUCERD_TEST_ACL_SECRET", rmqtest.ACLSecretKey)

	start := func(instance, secretLine string) (*Daemon, producerdpb.IngressClient, *syncBuffer, string) {
		t.Helper()
		text := strings.Replace(configText(c.NameServer, instance, "rr", 100), "heartbeat = \"100ms\"\n",
			"heartbeat = \"100ms\"\naccess_key = \""+rmqtest.ACLAccessKey+"\"\n"+secretLine+"\n", 1)
		h := startDaemon(t, text, hclog.Trace)
		return h.d, h.ingress, h.log, h.adminAddr
	}

	good, goodIngress, goodLog, goodAdmin := start("it-acl-good", `secret_key_env = "PRODUCERD_TEST_ACL_SECRET"`)
	var res *producerdpb.SendResponse
	var err error
	testwait.Until(20*time.Second, func() bool {
		// The first send auto-creates the topic through TBW102; until the NameServer
		// routes it, a send may find no route.
		res, err = goodIngress.Send(context.Background(), &producerdpb.SendRequest{Message: &producerdpb.Message{Topic: topic, Body: []byte("signed")}})
		return err == nil
	})
	if err != nil {
		t.Fatalf("send with the right key pair: %v\nlog:\n%s", err, goodLog.String())
	}
	rc, err := remoting.NewClient(remoting.Config{Credentials: &remoting.Credentials{AccessKey: rmqtest.ACLAccessKey, SecretKey: rmqtest.ACLSecretKey}})
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	id := res.GetResult().GetMsgId()
	m := readback.Find(t, rc, topic, readback.Marks{readback.Queue{Broker: c.Brokers[0].Name, Addr: c.Brokers[0].Addr, ID: res.GetResult().GetQueueId()}: res.GetResult().GetQueueOffset()},
		func(m *core.MessageExt) bool { return m.UniqKey() == id })
	if string(m.Body) != "signed" {
		t.Errorf("read back %q", m.Body)
	}

	bad, badIngress, badLog, badAdmin := start("it-acl-bad", `secret_key = "`+wrong+`"`)
	_, err = badIngress.Send(context.Background(), &producerdpb.SendRequest{Message: &producerdpb.Message{Topic: topic, Body: []byte("unsigned")}})
	if err == nil {
		t.Fatal("a send with a wrong secret succeeded")
	}
	t.Logf("wrong secret: %v (reason %s)", err, errReason(err))
	if !strings.Contains(status.Convert(err).Message(), "1 attempt") {
		t.Errorf("the denial was retried: %v", err)
	}

	// The secrets never leave the process: logs, status, metrics.
	for _, d := range []struct {
		d     *Daemon
		log   *syncBuffer
		admin string
	}{{good, goodLog, goodAdmin}, {bad, badLog, badAdmin}} {
		st, _ := protojson.Marshal(d.d.Status())
		resp, err := http.Get("http://" + d.admin + "/metrics")
		if err != nil {
			t.Fatal(err)
		}
		metrics, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		for _, secret := range []string{rmqtest.ACLSecretKey, wrong} {
			for what, text := range map[string]string{"log": d.log.String(), "status": string(st), "metrics": string(metrics)} {
				if strings.Contains(text, secret) {
					t.Errorf("the secret is in the %s", what)
				}
			}
		}
	}
}
