package daemon

import (
	"fmt"
	"net"
	"strings"
	"testing"
)

// TestHTTPHeaderOnlyBodiesChargeWhatArrived: clients that announce a Content-Length of
// ~8 MiB and send one byte must not reserve the in-flight bytes (review defect 4):
// eight of them would hold the whole 64 MiB budget and every other send would get 429
// until read_timeout.
func TestHTTPHeaderOnlyBodiesChargeWhatArrived(t *testing.T) {
	c := startCluster(t)
	h := start(t, c, "rr", 100)
	const conns, announced = 8, 8388600
	for range conns {
		conn, err := net.Dial("tcp", h.httpAddr)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { conn.Close() })
		req := fmt.Sprintf("POST /v1/messages HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n{", announced)
		if _, err := conn.Write([]byte(req)); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, "the daemon to read the first bytes", func() bool { _, b := h.d.limit.load(); return b >= conns })
	if _, b := h.d.limit.load(); b > conns*4096 {
		t.Fatalf("%d in-flight bytes charged for %d requests that sent one byte each", b, conns)
	}
	body := strings.Repeat("x", 20<<10)
	for i := range 5 {
		code, resp := post(t, "http://"+h.httpAddr+"/v1/messages", `{"topic":"TopicTest","body":"`+body+`"}`)
		if code != 200 {
			t.Fatalf("send %d next to stalled bodies: %d %s", i, code, resp)
		}
	}
}
