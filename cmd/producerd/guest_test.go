package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/producerd/producerd/devbroker"
	"github.com/producerd/producerd/internal/testwait"
	"github.com/producerd/producerd/internal/wasmtest"
)

// TestMisbehavingGuests: WebAssembly strategies that never return (a loop, a loop-free
// call tree), trap, or allocate without bound. Built by hand (internal/wasmtest) they
// fail even the trial decision, and `producerd validate` refuses them. Built through
// the Go SDK (host/wasm/testdata/sdkbadguest, which passes the trial and misbehaves by
// topic) under `producerd run`: every send succeeds (its decisions fall back), /healthz
// keeps answering on the ingress and the admin listener, the circuit opens and
// `producerd status` says why; then SIGTERM exits 0.
func TestMisbehavingGuests(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary and a WebAssembly module")
	}
	kinds := []string{"loop", "recurse", "trap", "grow"}
	topics := map[string]int{"TopicTest": 4}
	for _, k := range kinds {
		topics[k] = 4
	}
	dev, err := devbroker.Start(context.Background(), devbroker.Config{Brokers: []string{"broker-a", "broker-b"}, Topics: topics})
	if err != nil {
		t.Fatal(err)
	}
	defer dev.Close()
	bin := buildBinary(t)
	dir := t.TempDir()
	sdkGuest := filepath.Join(dir, "sdkbadguest.wasm")
	build := exec.Command("go", "build", "-buildmode=c-shared", "-o", sdkGuest, "../../host/wasm/testdata/sdkbadguest")
	build.Env = append(os.Environ(), "GOOS=wasip1", "GOARCH=wasm", "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build sdkbadguest: %v\n%s", err, out)
	}

	httpAddr, adminAddr := freeAddr(t), freeAddr(t)
	var cfg strings.Builder
	fmt.Fprintf(&cfg, "[ingress]\ngrpc = \"\"\nhttp = %q\n[admin]\nlisten = %q\n[client]\nname_servers = [%q]\n", httpAddr, adminAddr, dev.NameServerAddr())
	// group → the topics its sends go to.
	groups := map[string][]string{"sdk": kinds}
	fmt.Fprintf(&cfg, "[strategy.sdk]\nplugin = %q\n[[producer]]\ngroup = \"sdk\"\nstrategy = \"sdk\"\n", sdkGuest)
	// Hand-built modules fail every decision, the trial decision included: the daemon
	// refuses them before they go live (validate says so), so they never hold it.
	for _, k := range kinds {
		path, err := wasmtest.Write(dir, wasmtest.Kind(k))
		if err != nil {
			t.Fatal(err)
		}
		hand := filepath.Join(dir, "hand-"+k+".toml")
		text := fmt.Sprintf("[client]\nname_servers = [%q]\n[strategy.hand]\nplugin = %q\n[[producer]]\ngroup = \"hand\"\nstrategy = \"hand\"\n", dev.NameServerAddr(), path)
		if err := os.WriteFile(hand, []byte(text), 0o600); err != nil {
			t.Fatal(err)
		}
		if code, _, errOut := runCLI("validate", "-c", hand); code != 1 || !strings.Contains(errOut, "failed its health check") {
			t.Errorf("validate with a %s module: %d %s", k, code, errOut)
		}
	}
	cfgPath := filepath.Join(dir, "producer.toml")
	if err := os.WriteFile(cfgPath, []byte(cfg.String()), 0o600); err != nil {
		t.Fatal(err)
	}

	run := exec.Command(bin, "run", "-c", cfgPath)
	_, exited := startRun(t, run)
	client := &http.Client{Timeout: 10 * time.Second}
	healthy := func(addr string) error {
		resp, err := client.Get("http://" + addr + "/healthz")
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("/healthz on %s: %s", addr, resp.Status)
		}
		return nil
	}
	status := func() string {
		out, _ := exec.Command(bin, "status", "-admin", adminAddr).CombinedOutput()
		return string(out)
	}
	for deadline := time.Now().Add(60 * time.Second); healthy(httpAddr) != nil || groupStatus(status(), "sdk") == ""; {
		if time.Now().After(deadline) {
			t.Fatalf("the daemon did not come up; status:\n%s", status())
		}
		select {
		case err := <-exited:
			exited <- err
			t.Fatalf("producerd run exited: %v", err)
		case <-time.After(50 * time.Millisecond):
		}
	}

	// Health checks run all along; none may fail.
	var healthErr atomic.Pointer[error]
	stopHealth := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		tick := time.NewTicker(10 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-stopHealth:
				return
			default:
			}
			for _, addr := range []string{httpAddr, adminAddr} {
				if err := healthy(addr); err != nil {
					healthErr.CompareAndSwap(nil, &err)
				}
			}
			select {
			case <-stopHealth:
				return
			case <-tick.C:
			}
		}
	})
	var sends atomic.Int64
	var slowest atomic.Int64 // ns, reported (not asserted: timing is the machine's)
	send := func(group, topic string) error {
		body := fmt.Sprintf(`{"producer_group":%q,"topic":%q,"body":"hello"}`, group, topic)
		start := time.Now()
		defer func() {
			sends.Add(1)
			d := int64(time.Since(start))
			for cur := slowest.Load(); d > cur && !slowest.CompareAndSwap(cur, d); cur = slowest.Load() {
			}
		}()
		resp, err := client.Post("http://"+httpAddr+"/v1/messages", "application/json", strings.NewReader(body))
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != http.StatusOK || !strings.Contains(string(b), "SEND_OK") {
			return fmt.Errorf("send to %s/%s: %d %s", group, topic, resp.StatusCode, b)
		}
		return nil
	}
	// Send through every group until its circuit is open (every send must succeed).
	for group, tops := range groups {
		wg.Go(func() {
			deadline := time.Now().Add(60 * time.Second)
			for n := 0; ; n++ {
				topic := tops[n%len(tops)]
				if group == "sdk" && n >= len(tops) {
					topic = "loop" // after one of each, keep it failing one way
				}
				if err := send(group, topic); err != nil {
					t.Errorf("%v", err)
					return
				}
				if n%10 == 9 && strings.Contains(groupStatus(status(), group), "breaker-open") {
					return
				}
				if time.Now().After(deadline) {
					t.Errorf("group %s: the circuit did not open after %d sends", group, n+1)
					return
				}
			}
		})
	}
	// The senders return once their circuit is open (or fail the test) within 60 s each;
	// the status check below fails any group whose circuit is not open by then.
	testwait.Until(2*time.Minute, func() bool { return allOpen(status(), groups) || t.Failed() })
	close(stopHealth)
	wg.Wait()
	if p := healthErr.Load(); p != nil {
		t.Errorf("a health check failed while guests misbehaved: %v", *p)
	}
	st := status()
	t.Logf("%d sends, the slowest took %v; status:\n%s", sends.Load(), time.Duration(slowest.Load()), st)
	for group := range groups {
		gs := groupStatus(st, group)
		if !strings.Contains(gs, "breaker-open") || !strings.Contains(gs, "last error: circuit open") {
			t.Errorf("group %s status does not say the circuit is open:\n%s", group, gs)
		}
	}

	if err := syscall.Kill(run.Process.Pid, syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-exited:
		exited <- err
		if err != nil {
			t.Fatalf("producerd run exited with %v after SIGTERM", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("producerd run did not exit after SIGTERM")
	}
}

// groupStatus returns the parts of `producerd status` about group: its row of the
// GROUP table and its detail section (plugins, fault table, last error); "" when the
// group is not there.
func groupStatus(status, group string) string {
	i := strings.Index(status, "\nGROUP ")
	if i < 0 {
		return ""
	}
	row := regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(group) + ` +.*$`).FindString(status[i:])
	if row == "" {
		return ""
	}
	detail := ""
	if j := strings.Index(status, "\nGROUP "+group+"\n"); j >= 0 {
		detail = status[j+1:]
		if k := strings.Index(detail[1:], "\nGROUP "); k >= 0 {
			detail = detail[:k+1]
		}
	}
	return row + "\n" + detail
}

func allOpen(status string, groups map[string][]string) bool {
	for group := range groups {
		if !strings.Contains(groupStatus(status, group), "breaker-open") {
			return false
		}
	}
	return true
}
