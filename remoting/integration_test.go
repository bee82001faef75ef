package remoting

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/producerd/producerd/internal/rmqtest"
)

// Integration tests against the real Apache RocketMQ cluster (testinfra/rocketmq/cluster.sh).
// They skip when no cluster runs, and fail under CI=true.

const itTopic = "IT_Remoting"

func TestIntegrationRouteQuery(t *testing.T) {
	t.Parallel() // before Require: the shared lock must not be held while RequireExclusive runs
	cl := rmqtest.Require(t)
	standard := regexp.MustCompile(`"brokerAddrs":\{"0":"[^"]+"`)
	bare := regexp.MustCompile(`"brokerAddrs":\{0:"[^"]+"`)
	for _, topic := range []string{itTopic, "TBW102"} {
		for _, version := range []int32{409, 317} {
			t.Run(topic+"/v"+strconv.Itoa(int(version)), func(t *testing.T) {
				t.Parallel()
				c := newClient(t, Config{Version: version})
				c.SetNameServers([]string{cl.NameServer})
				resp, addr, err := c.InvokeNameServer(ctxTimeout(t, 10*time.Second),
					NewRequest(GetRouteInfoByTopic, map[string]string{"topic": topic}, nil))
				if err != nil {
					t.Fatal(err)
				}
				if err := ResponseError(addr, resp); err != nil {
					t.Fatal(err)
				}
				body := string(resp.Body)
				want, other := standard, bare
				if version < 401 {
					want, other = bare, standard
				}
				if !want.MatchString(body) || other.MatchString(body) {
					t.Errorf("version %d: route body lacks the %v form:\n%s", version, want, body)
				}
				for _, b := range cl.Brokers {
					if !strings.Contains(body, `"brokerName":"`+b.Name+`"`) || !strings.Contains(body, b.Addr) {
						t.Errorf("route of %s lacks %s (%s):\n%s", topic, b.Name, b.Addr, body)
					}
				}
				if topic == itTopic && !strings.Contains(body, `"writeQueueNums":4`) {
					t.Errorf("route of %s lacks 4 write queues:\n%s", topic, body)
				}
			})
		}
	}
}

func uniqKey(t *testing.T) string {
	b := make([]byte, 16)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return strings.ToUpper(hex.EncodeToString(b))
}

// rawSend builds a SEND_MESSAGE_V2 request by hand (spec §4.2).
func rawSend(t *testing.T, queueID int, body string) *Command {
	return NewRequest(SendMessageV2, map[string]string{
		"a": "producerd_it_remoting",
		"b": itTopic,
		"c": "TBW102",
		"d": "4",
		"e": strconv.Itoa(queueID),
		"f": "0",
		"g": strconv.FormatInt(time.Now().UnixMilli(), 10),
		"h": "0",
		"i": "UNIQ_KEY\x01" + uniqKey(t) + "\x02WAIT\x01true\x02",
		"j": "0",
		"k": "false",
		"m": "false",
	}, []byte(body))
}

func TestIntegrationSendMessageV2(t *testing.T) {
	t.Parallel() // before Require: the shared lock must not be held while RequireExclusive runs
	cl := rmqtest.Require(t)
	broker := cl.Broker(t, "broker-a")
	for _, st := range []SerializeType{JSON, RocketMQ} {
		t.Run(st.String(), func(t *testing.T) {
			t.Parallel()
			c := newClient(t, Config{Serialize: st})
			resp, err := sendWithRetry(t, c, broker.Addr, 2, 30*time.Second)
			if err != nil {
				t.Fatal(err)
			}
			ext := resp.ExtFields
			if len(ext["msgId"]) != 32 || ext["queueId"] != "2" {
				t.Errorf("response ext %v, want a 32-hex msgId and queueId 2", ext)
			}
			if _, err := strconv.ParseInt(ext["queueOffset"], 10, 64); err != nil {
				t.Errorf("queueOffset %q: %v", ext["queueOffset"], err)
			}
		})
	}
}

// sendWithRetry sends to queueID until SUCCESS or the deadline: a broker that just started or
// resumed may answer SYSTEM_BUSY (or time out) for a moment.
func sendWithRetry(t *testing.T, c *Client, addr string, queueID int, within time.Duration) (*Command, error) {
	t.Helper()
	deadline := time.Now().Add(within)
	var last error
	for time.Now().Before(deadline) {
		resp, err := c.InvokeSync(ctxTimeout(t, 3*time.Second), addr, rawSend(t, queueID, "hello from producerd"))
		if err == nil {
			if err = ResponseError(addr, resp); err == nil {
				return resp, nil
			}
		}
		last = err
		time.Sleep(200 * time.Millisecond) // back off between attempts against a busy broker
	}
	return nil, last
}

// syncBuffer is a goroutine-safe log sink.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

func maxOffset(t *testing.T, c *Client, addr string, queueID int) int64 {
	t.Helper()
	resp, err := c.InvokeSync(ctxTimeout(t, 10*time.Second), addr, NewRequest(GetMaxOffset,
		map[string]string{"topic": itTopic, "queueId": strconv.Itoa(queueID)}, nil))
	if err != nil {
		t.Fatal(err)
	}
	if err := ResponseError(addr, resp); err != nil {
		t.Fatal(err)
	}
	off, err := strconv.ParseInt(resp.ExtFields["offset"], 10, 64)
	if err != nil {
		t.Fatalf("offset in %v: %v", resp.ExtFields, err)
	}
	return off
}

func TestIntegrationOneway(t *testing.T) {
	t.Parallel() // before Require: the shared lock must not be held while RequireExclusive runs
	cl := rmqtest.Require(t)
	broker := cl.Broker(t, "broker-a")
	var logs syncBuffer
	h := newHookRecorder()
	c := newClient(t, Config{Hooks: h.hooks(), Logger: hclog.New(&hclog.LoggerOptions{Output: &logs, Level: hclog.Debug})})
	if _, err := sendWithRetry(t, c, broker.Addr, 3, 30*time.Second); err != nil { // warm up
		t.Fatal(err)
	}
	before := maxOffset(t, c, broker.Addr, 3)
	if err := c.InvokeOneway(ctxTimeout(t, 10*time.Second), broker.Addr, rawSend(t, 3, "oneway")); err != nil {
		t.Fatal(err)
	}
	if conns := c.Conns(); len(conns) != 1 || conns[0].Pending != 0 {
		t.Fatalf("Conns = %+v, want no pending entry for a oneway request", conns)
	}
	// The broker stored it ...
	eventually(t, "the oneway message to be stored", func() bool { return maxOffset(t, c, broker.Addr, 3) > before })
	// ... and answered nothing: every response that arrived had a pending request.
	if strings.Contains(logs.String(), "dropped response") {
		t.Errorf("a response arrived for the oneway request:\n%s", logs.String())
	}
	var oneway int
	for _, e := range h.requests() {
		if e.Oneway {
			oneway++
			if e.Err != nil || e.ResponseBytes != 0 {
				t.Errorf("oneway event %+v", e)
			}
		}
	}
	if oneway != 1 {
		t.Errorf("%d oneway events", oneway)
	}
}

func TestIntegrationClosedPortFailsFast(t *testing.T) {
	t.Parallel()
	rmqtest.Require(t)
	c := newClient(t, Config{})
	start := time.Now()
	_, err := c.InvokeSync(ctxTimeout(t, time.Minute), closedAddr(t), rawSend(t, 0, "x"))
	if !errors.Is(err, ErrConnect) {
		t.Fatalf("got %v, want ErrConnect", err)
	}
	t.Logf("refused after %v", time.Since(start))
}

// TestIntegrationStoppedBroker stops broker-a: a request times out at its deadline and, the peer
// looking hung, the connection is closed; after SIGCONT the next requests succeed on a fresh one.
func TestIntegrationStoppedBroker(t *testing.T) {
	cl := rmqtest.RequireExclusive(t)
	broker := cl.Broker(t, "broker-a")
	h := newHookRecorder()
	c := newClient(t, Config{Hooks: h.hooks()})
	if _, err := sendWithRetry(t, c, broker.Addr, 0, 30*time.Second); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cl.Signal(t, "broker-a", syscall.SIGCONT) })
	cl.Signal(t, "broker-a", syscall.SIGSTOP)
	stopped := time.Now()
	// SIGSTOP is asynchronous: wait until every thread of the JVM has stopped.
	eventually(t, "broker-a to stop", func() bool { return allThreadsStopped(t, broker.PID) })

	ctx, cancel := context.WithTimeout(context.Background(), 1500*time.Millisecond)
	defer cancel()
	deadline, _ := ctx.Deadline()
	_, err := c.InvokeSync(ctx, broker.Addr, rawSend(t, 0, "while stopped"))
	if !errors.Is(err, ErrTimeout) || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("got %v, want ErrTimeout", err)
	}
	if early := time.Until(deadline); early > 0 {
		t.Errorf("timed out %v before the deadline", early)
	}
	if e := h.nextClose(t); e.Addr != broker.Addr || e.Err == nil {
		t.Errorf("close event %+v, want the silent connection closed", e)
	}

	cl.Signal(t, "broker-a", syscall.SIGCONT)
	resp, err := sendWithRetry(t, c, broker.Addr, 0, 60*time.Second)
	if err != nil {
		t.Fatalf("after SIGCONT: %v", err)
	}
	if resp.ExtFields["msgId"] == "" {
		t.Errorf("response %v", resp.ExtFields)
	}
	conns := c.Conns()
	if len(conns) != 1 || !conns[0].OpenedAt.After(stopped) {
		t.Errorf("Conns = %+v, want one connection opened after the stop", conns)
	}
}

// allThreadsStopped reports whether every thread of pid is in the stopped state (Linux /proc).
func allThreadsStopped(t *testing.T, pid int) bool {
	t.Helper()
	stats, err := filepath.Glob(fmt.Sprintf("/proc/%d/task/*/stat", pid))
	if err != nil || len(stats) == 0 {
		t.Fatalf("threads of pid %d: %v", pid, err)
	}
	for _, path := range stats {
		data, err := os.ReadFile(path)
		if err != nil {
			return false // a thread exited meanwhile; look again
		}
		// The state follows the parenthesised command name, which may contain spaces.
		rest := string(data[bytes.LastIndexByte(data, ')')+1:])
		if f := strings.Fields(rest); len(f) == 0 || f[0] != "T" {
			return false
		}
	}
	return true
}
