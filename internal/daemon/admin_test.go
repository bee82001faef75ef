package daemon

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/producerd/producerd/api/producerdpb"
	"github.com/producerd/producerd/devbroker"
)

// adminEndpoints is every admin HTTP endpoint with a body a program would send.
var adminEndpoints = []struct{ method, path, body string }{
	{"GET", "/v1/admin/status", ""},
	{"GET", "/v1/admin/strategies", ""},
	{"POST", "/v1/admin/strategies/swap", `{"name":"rr"}`},
	{"POST", "/v1/admin/reload", `{}`},
	{"POST", "/v1/admin/drain", `{}`},
	{"POST", "/v1/admin/resume", `{}`},
	{"POST", "/v1/admin/topics", `{"topic":"CsrfTopic"}`},
	{"GET", "/debug/pprof/", ""},
	{"GET", "/metrics", ""},
}

func adminDo(t *testing.T, method, url, body string, hdr map[string]string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// TestAdminBrowserRequests: a web page cannot reach the admin API: a foreign Origin is
// refused on every endpoint even with the right token, a text/plain POST (a "simple"
// request a page may send without a preflight) is refused, and a rebinding Host is
// refused (finding 7).
func TestAdminBrowserRequests(t *testing.T) {
	c := startCluster(t)
	h := start(t, c, "rr", 100)
	base := "http://" + h.adminAddr
	auth := "Bearer " + testToken
	for _, ep := range adminEndpoints {
		code, body := adminDo(t, ep.method, base+ep.path, ep.body, map[string]string{
			"Origin": "http://evil.example", "Content-Type": "application/json", "Authorization": auth})
		if code != http.StatusForbidden {
			t.Errorf("%s %s with a foreign Origin: %d %s", ep.method, ep.path, code, body)
		}
		if ep.method == "POST" {
			code, body = adminDo(t, ep.method, base+ep.path, ep.body, map[string]string{"Content-Type": "text/plain", "Authorization": auth})
			if code != http.StatusForbidden {
				t.Errorf("%s %s as text/plain: %d %s", ep.method, ep.path, code, body)
			}
		}
		req, _ := http.NewRequest(ep.method, base+ep.path, strings.NewReader(ep.body))
		req.Host = "evil.example:7390"
		req.Header.Set("Authorization", auth)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusForbidden {
			t.Errorf("%s %s with Host evil.example: %d", ep.method, ep.path, resp.StatusCode)
		}
	}
	if h.d.limit.isDraining() {
		t.Fatal("a refused drain drained the daemon")
	}
	// A program's requests pass: same-origin, JSON or the custom header.
	if code, body := adminDo(t, "POST", base+"/v1/admin/resume", "", map[string]string{AdminRequestHeader: "1", "Authorization": auth}); code != 200 {
		t.Errorf("resume with %s: %d %s", AdminRequestHeader, code, body)
	}
	if code, body := adminDo(t, "GET", base+"/v1/admin/status", "", map[string]string{"Origin": base, "Authorization": auth}); code != 200 {
		t.Errorf("same-origin status: %d %s", code, body)
	}
	// pprof is off unless enabled.
	if code, _ := adminDo(t, "GET", base+"/debug/pprof/", "", map[string]string{"Authorization": auth}); code != http.StatusNotFound {
		t.Errorf("pprof without admin.pprof: %d, want 404", code)
	}
}

// TestAdminAuthFailures: wrong tokens are refused, counted in the metric and logged at
// most once per interval; the token never appears in the log (issue 13).
func TestAdminAuthFailures(t *testing.T) {
	c := startCluster(t)
	h := start(t, c, "rr", 100)
	for range 5 {
		code, _ := adminDo(t, "GET", "http://"+h.adminAddr+"/v1/admin/status", "", map[string]string{"Authorization": "Bearer wrong"})
		if code != http.StatusUnauthorized {
			t.Fatalf("wrong token: %d", code)
		}
	}
	ctx := metadata.AppendToOutgoingContext(callCtx(t), "authorization", "Bearer wrong")
	if _, err := h.admin.Status(ctx, &producerdpb.StatusRequest{}); status.Code(err) != codes.Unauthenticated {
		t.Fatalf("gRPC with a wrong token: %v", err)
	}
	_, metrics := adminDo(t, "GET", "http://"+h.adminAddr+"/metrics", "", nil)
	for _, want := range []string{`producerd_admin_auth_failures_total{api="http"} 5`, `producerd_admin_auth_failures_total{api="grpc"} 1`} {
		if !strings.Contains(metrics, want) {
			t.Errorf("metrics lack %s", want)
		}
	}
	log := h.log.String()
	if n := strings.Count(log, "admin authentication failed"); n != 1 {
		t.Errorf("%d failure logs for 6 failures within %v, want 1", n, authLogEvery)
	}
	if strings.Contains(log, testToken) {
		t.Error("the log holds the admin token")
	}
}

// TestGeneratedToken: with no token configured the daemon generates one into a file
// only the user can read, logs its path (never its value), refuses calls without it,
// and removes the file at shutdown (finding 7).
func TestGeneratedToken(t *testing.T) {
	c := startCluster(t)
	dir := t.TempDir()
	tokFile := filepath.Join(dir, "run", "admin.token")
	text := strings.Replace(configText(c.NameServerAddr(), instanceName(t), "rr", 100),
		fmt.Sprintf("token = %q", testToken), fmt.Sprintf("generated_token_file = %q", tokFile), 1)
	h := startText(t, c, text)
	fi, err := os.Stat(tokFile)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("token file mode %04o, want 0600", fi.Mode().Perm())
	}
	b, _ := os.ReadFile(tokFile)
	tok := strings.TrimSpace(string(b))
	if len(tok) < 20 {
		t.Fatalf("token %d chars", len(tok))
	}
	if log := h.log.String(); strings.Contains(log, tok) || !strings.Contains(log, tokFile) {
		t.Error("the log must name the token file and never the token")
	}
	if root, warned := os.Geteuid() == 0, strings.Contains(h.log.String(), "runs as root"); root != warned {
		t.Errorf("running as root: %v, warned: %v", root, warned)
	}
	base := "http://" + h.adminAddr + "/v1/admin/status"
	if code, _ := adminDo(t, "GET", base, "", nil); code != http.StatusUnauthorized {
		t.Errorf("no token: %d", code)
	}
	if code, _ := adminDo(t, "GET", base, "", map[string]string{"Authorization": "Bearer " + tok}); code != 200 {
		t.Errorf("generated token: %d", code)
	}
	if err := h.d.Shutdown(callCtx(t)); err != nil {
		t.Fatal(err)
	}
	h.stopped = true
	if _, err := os.Stat(tokFile); !os.IsNotExist(err) {
		t.Errorf("token file after shutdown: %v", err)
	}
}

// TestReadiness: with the NameServer down /readyz is 503 and grpc.health NOT_SERVING
// while /healthz stays 200; once it comes up both turn ready within a route refresh
// (finding 8).
func TestReadiness(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	nsPort := ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	ns := fmt.Sprintf("127.0.0.1:%d", nsPort)
	text := strings.Replace(configText(ns, instanceName(t), "rr", 100), `heartbeat = "100ms"`,
		"heartbeat = \"100ms\"\nroute_refresh = \"300ms\"\napi_timeout = \"200ms\"\nconnect_timeout = \"200ms\"", 1)
	h := startText(t, nil, text)
	ctx := callCtx(t)
	if code, body := adminDo(t, "GET", "http://"+h.httpAddr+"/readyz", "", nil); code != http.StatusServiceUnavailable || !strings.Contains(body, "NameServer") {
		t.Fatalf("/readyz with the NameServer down: %d %s", code, body)
	}
	if code, _ := adminDo(t, "GET", "http://"+h.httpAddr+"/healthz", "", nil); code != 200 {
		t.Fatalf("/healthz with the NameServer down: %d", code)
	}
	hc := healthpb.NewHealthClient(h.dial(h.grpcAddr))
	if r, err := hc.Check(ctx, &healthpb.HealthCheckRequest{}); err != nil || r.GetStatus() != healthpb.HealthCheckResponse_NOT_SERVING {
		t.Fatalf("grpc.health with the NameServer down: %v %v", r, err)
	}
	st, err := h.admin.Status(adminCtx(t), &producerdpb.StatusRequest{})
	if err != nil || st.GetReady() || st.GetNotReadyReason() == "" {
		t.Fatalf("status: ready=%v reason=%q err=%v", st.GetReady(), st.GetNotReadyReason(), err)
	}

	cl, err := devbroker.Start(ctx, devbroker.Config{NameServerPort: nsPort, Brokers: []string{"broker-a"}, AutoCreate: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cl.Close() })
	waitFor(t, "ready", func() bool {
		code, _ := adminDo(t, "GET", "http://"+h.httpAddr+"/readyz", "", nil)
		return code == 200
	})
	waitFor(t, "SERVING", func() bool {
		r, err := hc.Check(ctx, &healthpb.HealthCheckRequest{})
		return err == nil && r.GetStatus() == healthpb.HealthCheckResponse_SERVING
	})
	_ = time.Second
}
