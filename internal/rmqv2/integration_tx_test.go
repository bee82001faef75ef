package rmqv2_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/producerd/producerd/core"
	"github.com/producerd/producerd/internal/config"
	"github.com/producerd/producerd/internal/daemon"
	"github.com/producerd/producerd/internal/rmqtest"
	"github.com/producerd/producerd/internal/rmqtest/readback"
	"github.com/producerd/producerd/internal/testwait"
	"github.com/producerd/producerd/remoting"
)

// startV2Daemon starts an in-process daemon on the real cluster with a plaintext v2
// listener; extra is TOML appended to [ingress] (auth), producer to the producer table.
func startV2Daemon(t *testing.T, ctx context.Context, c *rmqtest.Cluster, group, ingress, producer string) *daemon.Daemon {
	t.Helper()
	dir := t.TempDir()
	text := fmt.Sprintf(`
[ingress]
grpc = "127.0.0.1:0"
http = ""
rocketmq_grpc_listen = "127.0.0.1:0"
%s

[admin]
listen = ""

[client]
name_servers = [%q]
instance_name = "it-%s"

[[producer]]
group = %q
%s
`, ingress, c.NameServer, group, group, producer)
	return runDaemon(t, ctx, dir, text)
}

// runDaemon starts an in-process daemon with the config text, written to
// dir/producer.toml (relative paths in it are relative to dir), until the test ends.
func runDaemon(t *testing.T, ctx context.Context, dir, text string) *daemon.Daemon {
	t.Helper()
	path := filepath.Join(dir, "producer.toml")
	if err := os.WriteFile(path, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	d, err := daemon.New(daemon.Options{Config: cfg, Logger: hclog.New(&hclog.LoggerOptions{Level: hclog.Warn, Output: os.Stderr}),
		PluginCommand: []string{os.Args[0], "plugin"}})
	if err != nil {
		t.Fatal(err)
	}
	if err := d.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = d.Shutdown(context.Background()) })
	return d
}

// createTopic creates topic on every broker of c and returns read-back marks for it.
func createTopic(t *testing.T, ctx context.Context, c *rmqtest.Cluster, rc *remoting.Client, topic string) readback.Marks {
	t.Helper()
	for _, b := range c.Brokers {
		if err := core.CreateTopic(ctx, rc, b.Addr, core.TopicConfig{Topic: topic}); err != nil {
			t.Fatalf("create %s on %s: %v", topic, b.Name, err)
		}
	}
	return readback.Mark(t, rc, c, topic, 4)
}

// TestIntegrationJavaSDKTransactions: the official Java SDK's transactional messages
// through producerd on the real cluster. A committed transaction is read back once, a
// rolled back one never, and one left open (the SDK's local transaction UNKNOWN) is
// committed by the SDK's TransactionChecker when producerd relays the broker's check-back
// as a RecoverOrphanedTransactionCommand on the client's Telemetry stream (CI brokers
// check every 5 s; the first check comes 6 s after the half message at the earliest).
func TestIntegrationJavaSDKTransactions(t *testing.T) {
	c := rmqtest.Require(t)
	java := javaDriver(t)
	rc := readback.Client(t)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	const topic = "IT_RMQv2_TX"
	from := createTopic(t, ctx, c, rc, topic)
	d := startV2Daemon(t, ctx, c, "it_rmqv2_tx", "", "")

	run := "tx-" + strconv.FormatInt(time.Now().UnixNano(), 36)
	cmd := exec.CommandContext(ctx, java[0], append(java[1:], d.RocketMQGRPCAddr(), topic, run, "1", "plain")...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	acks := map[string]sent{}
	var lines, checked []string
	sc := bufio.NewScanner(stdout)
	for sc.Scan() {
		lines = append(lines, sc.Text())
		if line, ok := strings.CutPrefix(sc.Text(), "SENT "); ok {
			var s sent
			if err := json.Unmarshal([]byte(line), &s); err != nil {
				t.Fatalf("driver line %q: %v", line, err)
			}
			acks[s.Kind] = s
		}
		if rest, ok := strings.CutPrefix(sc.Text(), "CHECKED "); ok {
			checked = append(checked, rest)
		}
		if sc.Text() == "WAITING" {
			break
		}
	}
	// The open transaction's check was answered COMMIT by the SDK: its message appears.
	var got map[string]*core.MessageExt
	if len(acks) == 3 {
		testwait.Until(60*time.Second, func() bool {
			got = map[string]*core.MessageExt{}
			readback.Scan(t, rc, topic, from, func(m *core.MessageExt) bool {
				for _, s := range acks {
					if m.UniqKey() == s.ID {
						got[s.Kind] = m
					}
				}
				return false
			})
			return got["commit"] != nil && got["check"] != nil
		})
	}
	_ = stdin.Close()
	_, _ = io.Copy(io.Discard, stdout)
	if err := cmd.Wait(); err != nil {
		t.Fatalf("Java driver: %v\nstdout:\n%s\nstderr:\n%s", err, strings.Join(lines, "\n"), stderr.Bytes())
	}
	if len(acks) != 3 {
		t.Fatalf("acknowledged %v, want commit, rollback and check\nstdout:\n%s\nstderr:\n%s", acks, strings.Join(lines, "\n"), stderr.Bytes())
	}
	for kind, want := range map[string]bool{"commit": true, "rollback": false, "check": true} {
		m := got[kind]
		if (m != nil) != want {
			t.Errorf("%s transaction %s: read back %v, want %v", kind, acks[kind].ID, m != nil, want)
			continue
		}
		if m != nil && (string(m.Body) != acks[kind].Body || m.Properties["case"] != kind || m.Tags() != "tx") {
			t.Errorf("%s transaction: stored body %q, case %q, tag %q; sent %q", kind, m.Body, m.Properties["case"], m.Tags(), acks[kind].Body)
		}
	}
	// Only the open transaction was checked back: the ended ones were ended before the
	// broker's first check.
	if len(checked) == 0 || !strings.HasSuffix(checked[0], " check") {
		t.Errorf("checker calls %q, want the open transaction's", checked)
	}
	t.Logf("Java SDK transactions through producerd: commit read back, rollback not, open one committed by the checker after %d check(s): %q", len(checked), checked)
}

// TestIntegrationJavaSDKAuthNamespace: the listener has credentials and its group a
// namespace. The Java SDK with the right credentials and namespace (its own
// StaticSessionCredentialsProvider and setNamespace) sends, and its messages are stored
// in the namespaced topic; a wrong secret and no credentials are refused UNAUTHORIZED
// (UnauthorizedException), another namespace FORBIDDEN (ForbiddenException).
func TestIntegrationJavaSDKAuthNamespace(t *testing.T) {
	c := rmqtest.Require(t)
	java := javaDriver(t)
	rc := readback.Client(t)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	const topic, ns = "IT_RMQv2_NS", "itns"
	stored := core.WithNamespace(ns, topic)
	from := createTopic(t, ctx, c, rc, stored)
	d := startV2Daemon(t, ctx, c, "it_rmqv2_ns", "[ingress.rocketmq_grpc_auth]\naccess_key = \"it-ak\"\nsecret_key = \"it-secret-1\"\n",
		fmt.Sprintf("namespace = %q", ns))

	drive := func(env ...string) (acks []sent, out string, err error) {
		t.Helper()
		cmd := exec.CommandContext(ctx, java[0], append(java[1:], d.RocketMQGRPCAddr(), topic, strconv.FormatInt(time.Now().UnixNano(), 36), "1", "plain")...)
		cmd.Env = append(os.Environ(), env...)
		b, err := cmd.CombinedOutput()
		for _, line := range strings.Split(string(b), "\n") {
			if rest, ok := strings.CutPrefix(line, "SENT "); ok {
				var s sent
				if json.Unmarshal([]byte(rest), &s) == nil {
					acks = append(acks, s)
				}
			}
		}
		return acks, string(b), err
	}
	acks, out, err := drive("RMQV2_ACCESS_KEY=it-ak", "RMQV2_SECRET_KEY=it-secret-1", "RMQV2_NAMESPACE="+ns)
	if err != nil || len(acks) != 10 {
		t.Fatalf("right credentials and namespace: %v, %d acknowledged\n%s", err, len(acks), out)
	}
	ids := make([]string, len(acks))
	for i, s := range acks {
		ids[i] = s.ID
	}
	if n := readback.Missing(t, rc, stored, from, ids); n != 0 {
		t.Errorf("%d of %d acknowledged messages not in %s", n, len(ids), stored)
	}
	for _, tc := range []struct {
		name, want string
		env        []string
	}{
		{"wrong secret", "UnauthorizedException", []string{"RMQV2_ACCESS_KEY=it-ak", "RMQV2_SECRET_KEY=wrong", "RMQV2_NAMESPACE=" + ns}},
		{"no credentials", "UnauthorizedException", []string{"RMQV2_NAMESPACE=" + ns}},
		{"other namespace", "ForbiddenException", []string{"RMQV2_ACCESS_KEY=it-ak", "RMQV2_SECRET_KEY=it-secret-1", "RMQV2_NAMESPACE=other"}},
	} {
		acks, out, err := drive(tc.env...)
		if err == nil || len(acks) != 0 || !strings.Contains(out, tc.want) {
			t.Errorf("%s: exit %v, %d acknowledged, want a failure with %s\n%s", tc.name, err, len(acks), tc.want, out)
		}
		if strings.Contains(out, "it-secret-1") {
			t.Errorf("%s: the output shows the secret", tc.name)
		}
	}
}
