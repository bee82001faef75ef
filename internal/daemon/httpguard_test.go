package daemon

import (
	"io"
	"net/http"
	"strings"
	"testing"
)

// TestIngressHTTPRefusesBrowsers: review finding 12. A web page can make a browser on
// this machine post text/plain (no CORS preflight) with its own Origin, or reach the
// loopback listener under a rebound DNS name; the ingress refuses all of them, as the
// admin API does, and stores nothing. Programs sending JSON are unaffected.
func TestIngressHTTPRefusesBrowsers(t *testing.T) {
	c := startCluster(t)
	h := start(t, c, "rr", 1000)
	const topic = "GuardTopic"
	body := `{"topic":"` + topic + `","body":"from a web page"}`
	for _, tc := range []struct {
		name        string
		path        string
		host        string
		header      map[string]string
		code        int
		wantInError string
	}{
		{"text/plain from a foreign origin", "/v1/messages", "", map[string]string{"Content-Type": "text/plain", "Origin": "http://evil.example"}, 403, "cross-origin"},
		{"JSON from a foreign origin", "/v1/messages", "", map[string]string{"Content-Type": "application/json", "Origin": "http://evil.example"}, 403, "cross-origin"},
		{"text/plain without an origin", "/v1/messages", "", map[string]string{"Content-Type": "text/plain"}, 415, "application/json"},
		{"form", "/v1/messages", "", map[string]string{"Content-Type": "application/x-www-form-urlencoded"}, 415, "application/json"},
		{"cross-site fetch", "/v1/messages", "", map[string]string{"Content-Type": "application/json", "Sec-Fetch-Site": "cross-site"}, 403, "cross-site"},
		{"rebound DNS name", "/v1/messages", "evil.example", map[string]string{"Content-Type": "application/json"}, 403, "not a loopback name"},
		{"transaction begin, text/plain", "/v1/transactions", "", map[string]string{"Content-Type": "text/plain"}, 415, "application/json"},
		{"JSON", "/v1/messages", "", map[string]string{"Content-Type": "application/json; charset=utf-8"}, 200, ""},
		{"same origin", "/v1/messages", "", map[string]string{"Content-Type": "application/json", "Origin": "http://" + h.httpAddr}, 200, ""},
		{"program header", "/v1/messages", "localhost", map[string]string{"Content-Type": "text/plain", AdminRequestHeader: "1"}, 200, ""},
	} {
		req, err := http.NewRequest(http.MethodPost, "http://"+h.httpAddr+tc.path, strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		for k, v := range tc.header {
			req.Header.Set(k, v)
		}
		if tc.host != "" {
			req.Host = tc.host
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		out, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != tc.code || !strings.Contains(string(out), tc.wantInError) {
			t.Errorf("%s: %d %s, want %d with %q", tc.name, resp.StatusCode, out, tc.code, tc.wantInError)
		}
	}
	if n := len(stored(c, topic)); n != 3 {
		t.Fatalf("%d messages stored, want the 3 programs' ones", n)
	}
}
