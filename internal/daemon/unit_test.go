package daemon

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"testing"

	"google.golang.org/grpc/codes"

	"github.com/hashicorp/go-hclog"

	"github.com/producerd/producerd/core"
	"github.com/producerd/producerd/internal/config"
	"github.com/producerd/producerd/remoting"
)

func TestLimiter(t *testing.T) {
	t.Parallel()
	l := newLimiter(2, 100)
	if err := l.acquire(1, 60); err != nil {
		t.Fatal(err)
	}
	if err := l.acquire(1, 60); !errors.Is(err, errBusy) {
		t.Fatalf("over the byte bound: %v", err)
	}
	if err := l.acquire(1, 40); err != nil {
		t.Fatal(err)
	}
	if err := l.acquire(1, 0); !errors.Is(err, errBusy) {
		t.Fatalf("over the message bound: %v", err)
	}
	l.release(1, 60)
	l.release(1, 40)
	// A message bigger than the byte bound passes alone.
	if err := l.acquire(1, 500); err != nil {
		t.Fatalf("a big message alone: %v", err)
	}
	l.setDraining(true)
	if err := l.acquire(1, 1); !errors.Is(err, errDraining) {
		t.Fatalf("while draining: %v", err)
	}
	done := make(chan int64)
	go func() { done <- l.wait(context.Background()) }()
	l.release(1, 500)
	if n := <-done; n != 0 {
		t.Fatalf("wait returned %d", n)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	l.setDraining(false)
	_ = l.acquire(1, 1)
	if n := l.wait(ctx); n != 1 {
		t.Fatalf("wait with an ended context returned %d", n)
	}
}

// TestLimiterRequests: a take counts as overlapped only while other messages are in
// flight; a batch is one request, bytes reserved alone none.
func TestLimiterRequests(t *testing.T) {
	t.Parallel()
	l := newLimiter(100, 1<<20)
	for range 3 { // one at a time
		if err := l.acquire(1, 10); err != nil {
			t.Fatal(err)
		}
		l.release(1, 10)
	}
	if err := l.reserve(10); err != nil { // a body being read: no request
		t.Fatal(err)
	}
	l.release(0, 10)
	if err := l.acquire(32, 10); err != nil { // a batch alone
		t.Fatal(err)
	}
	if err := l.acquireWait(context.Background(), 1, 10); err != nil { // beside it
		t.Fatal(err)
	}
	if adm, over := l.requests(); adm != 5 || over != 1 {
		t.Fatalf("requests %d, overlapped %d; want 5 and 1", adm, over)
	}
}

func TestErrorToPB(t *testing.T) {
	t.Parallel()
	brokerErr := &remoting.Error{Addr: "a", Code: remoting.TopicNotExist, Remark: "no topic"}
	for _, tc := range []struct {
		err    error
		code   codes.Code
		reason string
		rmq    int32
	}{
		{errBusy, codes.ResourceExhausted, "RESOURCE_EXHAUSTED", 0},
		{errDraining, codes.Unavailable, "UNAVAILABLE", 0},
		{core.ErrClosed, codes.Unavailable, "UNAVAILABLE", 0},
		{fmt.Errorf("%w x", ErrUnknownGroup), codes.InvalidArgument, "UNKNOWN_GROUP", 0},
		{&core.ValidationError{Rule: "r", Msg: "m"}, codes.InvalidArgument, "INVALID_MESSAGE", 0},
		{&core.SendError{Topic: "t", Attempts: 3, Last: brokerErr}, codes.NotFound, "TOPIC_NOT_EXIST", 17},
		{&core.SendError{Last: &remoting.Error{Code: remoting.SystemBusy}}, codes.Unavailable, "SYSTEM_BUSY", 2},
		{&core.SendError{Timeout: true, Last: remoting.ErrTimeout}, codes.DeadlineExceeded, "TIMEOUT", 0},
		{&core.SendError{Last: fmt.Errorf("%w: dial", remoting.ErrConnect)}, codes.Unavailable, "CONNECT_FAILED", 0},
		{fmt.Errorf("%w x", core.ErrNoRoute), codes.NotFound, "NO_ROUTE", 0},
		{context.Canceled, codes.Canceled, "CANCELED", 0},
		{errors.New("boom"), codes.Unknown, "INTERNAL", 0},
	} {
		pe := errorToPB(tc.err)
		if codes.Code(pe.GetGrpcCode()) != tc.code || pe.GetReason() != tc.reason || pe.GetCode() != tc.rmq {
			t.Errorf("%v: got %v", tc.err, pe)
		}
	}
}

func TestTokenOK(t *testing.T) {
	t.Parallel()
	cfg := &config.Config{Admin: config.Admin{Token: "abc"}, Daemon: config.Daemon{MaxInflightMessages: 1, MaxInflightBytes: 1}}
	d, err := New(Options{Config: cfg, PluginCommand: []string{"x"}})
	if err != nil {
		t.Fatal(err)
	}
	for auth, want := range map[string]bool{"Bearer abc": true, "Bearer abd": false, "abc": false, "": false, "Bearer ": false, "Bearer abcd": false} {
		if got := d.tokenOK(auth); got != want {
			t.Errorf("tokenOK(%q) = %v", auth, got)
		}
	}
	cfg.Admin.Token = ""
	if d.tokenOK("") || d.tokenOK("Bearer ") {
		t.Error("no token at all: calls must fail (the daemon generates one when it listens)")
	}
}

// TestCheck: validate's dry run reports what Start would refuse before binding: a CA
// file without a certificate (finding 9).
func TestCheck(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	ca := dir + "/ca.pem"
	if err := os.WriteFile(ca, []byte("not a certificate"), 0o600); err != nil {
		t.Fatal(err)
	}
	src := fmt.Sprintf("[client]\nname_servers = [\"127.0.0.1:9876\"]\ntls = true\ntls_ca = %q\n[[producer]]\n", ca)
	cfg, err := config.Parse("p.toml", []byte(src), dir)
	if err != nil {
		t.Fatal(err)
	}
	if err := Check(cfg); err == nil || !strings.Contains(err.Error(), "no PEM certificate") {
		t.Fatalf("Check = %v", err)
	}
	cfg.Client.TLS = false
	if err := Check(cfg); err != nil {
		t.Fatalf("Check without TLS = %v", err)
	}
}

// TestWarnExposure: a non-loopback listener allowed by insecure = true is warned about
// at every start (finding 7); loopback ones are not.
func TestWarnExposure(t *testing.T) {
	t.Parallel()
	var buf syncBuffer
	cfg := &config.Config{Daemon: config.Daemon{MaxInflightMessages: 1, MaxInflightBytes: 1},
		Ingress: config.Ingress{GRPC: "0.0.0.0:7380", HTTP: "127.0.0.1:7381", Insecure: true},
		Admin:   config.Admin{Listen: "[::]:7390", Insecure: true}}
	d, err := New(Options{Config: cfg, PluginCommand: []string{"x"}, Logger: hclog.New(&hclog.LoggerOptions{Output: &buf})})
	if err != nil {
		t.Fatal(err)
	}
	d.warnExposure(cfg)
	log := buf.String()
	if strings.Count(log, "INSECURE") != 2 || !strings.Contains(log, "0.0.0.0:7380") || !strings.Contains(log, "[::]:7390") || strings.Contains(log, "7381") {
		t.Fatalf("warnings:\n%s", log)
	}
}
