package daemon

import (
	"context"
	"encoding/json"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/producerd/producerd/api/producerdpb"
)

// gRPC and HTTP sends over ingress.unix; the socket has ingress.unix_mode and is removed
// at shutdown.
func TestUnixSocketIngress(t *testing.T) {
	t.Parallel()
	c := startCluster(t)
	// A short directory: socket paths are limited to about 100 bytes.
	dir, err := os.MkdirTemp("", "pd")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	sock := filepath.Join(dir, "in.sock")
	text := strings.Replace(configText(c.NameServerAddr(), instanceName(t), "rr", 1000),
		"[ingress]\n", "[ingress]\nunix = \""+sock+"\"\nunix_mode = 0o660\n", 1)
	h := startText(t, c, text)

	fi, err := os.Stat(sock)
	if err != nil || fi.Mode()&os.ModeSocket == 0 || fi.Mode().Perm() != 0o660 {
		t.Fatalf("socket %s: %v, %v; want a socket with mode 0660", sock, fi.Mode(), err)
	}

	cc, err := grpc.NewClient("unix://"+sock, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer cc.Close()
	resp, err := producerdpb.NewIngressClient(cc).Send(callCtx(t), &producerdpb.SendRequest{Message: &producerdpb.Message{
		Topic: testTopic, Body: []byte("over grpc on a unix socket")}})
	if err != nil {
		t.Fatalf("gRPC send over the socket: %v", err)
	}
	if m, ok := stored(c, testTopic)[resp.GetResult().GetMsgId()]; !ok || string(m.Body) != "over grpc on a unix socket" {
		t.Fatalf("stored %+v (ok %v)", m, ok)
	}

	hc := &http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, "unix", sock)
	}}}
	defer hc.CloseIdleConnections()
	hr, err := hc.Post("http://producerd/v1/messages", "application/json",
		strings.NewReader(`{"topic":"`+testTopic+`","body":"over http"}`))
	if err != nil {
		t.Fatalf("HTTP send over the socket: %v", err)
	}
	defer hr.Body.Close()
	var out struct {
		Result struct {
			MsgID string `json:"msg_id"`
		} `json:"result"`
	}
	if err := json.NewDecoder(hr.Body).Decode(&out); err != nil || hr.StatusCode != http.StatusOK {
		t.Fatalf("HTTP status %d, %v", hr.StatusCode, err)
	}
	if m, ok := stored(c, testTopic)[out.Result.MsgID]; !ok || string(m.Body) != "over http" {
		t.Fatalf("stored %+v (ok %v) for %q", m, ok, out.Result.MsgID)
	}

	if err := h.d.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	h.stopped = true
	if _, err := os.Lstat(sock); !os.IsNotExist(err) {
		t.Fatalf("socket still there after shutdown: %v", err)
	}
}

// A path that is not a socket is never replaced; a stale socket is.
func TestListenUnixExistingPath(t *testing.T) {
	t.Parallel()
	dir, err := os.MkdirTemp("", "pd")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	file := filepath.Join(dir, "file")
	if err := os.WriteFile(file, []byte("keep"), 0o600); err != nil {
		t.Fatal(err)
	}
	if u, err := listenUnix(file, 0o600, 0); err == nil {
		u.Close()
		t.Fatal("listenUnix replaced a regular file")
	}
	stale := filepath.Join(dir, "stale.sock")
	ln, err := net.Listen("unix", stale)
	if err != nil {
		t.Fatal(err)
	}
	ln.(*net.UnixListener).SetUnlinkOnClose(false)
	ln.Close()
	u, err := listenUnix(stale, 0o600, 0)
	if err != nil {
		t.Fatalf("stale socket: %v", err)
	}
	u.start(4)
	if _, err := listenUnix(stale, 0o600, 0); err == nil {
		t.Fatal("listenUnix took a socket in use")
	}
	u.Close()
}
