package devbroker_test

import (
	"bufio"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"testing"
	"time"

	"github.com/producerd/producerd/devbroker"
	"github.com/producerd/producerd/remoting"
)

// rawConn dials addr and fails the test on error.
func rawConn(t *testing.T, addr string) net.Conn {
	t.Helper()
	nc, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { nc.Close() })
	nc.SetDeadline(time.Now().Add(10 * time.Second))
	return nc
}

// expectClosed reads until the peer closes the connection.
func expectClosed(t *testing.T, nc net.Conn) {
	t.Helper()
	_, err := io.Copy(io.Discard, nc)
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		t.Fatalf("the server kept the connection open")
	}
}

func frame(totalLen int32, rest []byte) []byte {
	b := binary.BigEndian.AppendUint32(nil, uint32(totalLen))
	return append(b, rest...)
}

func TestGarbageClosesOnlyThatConnection(t *testing.T) {
	t.Parallel()
	c := start(t, devbroker.Config{Topics: map[string]int{"TopicTest": 1}, MaxFrameSize: 1 << 20})
	rc := newClient(t, remoting.Config{})
	garbage := map[string][]byte{
		"http":                     []byte("GET / HTTP/1.1\r\nHost: x\r\n\r\n"),
		"negative length":          frame(-5, []byte{0, 0, 0, 0}),
		"length below 4":           frame(2, []byte{0, 0}),
		"over the frame limit":     frame(1<<20, nil),
		"header longer than frame": frame(8, []byte{0, 0, 0, 100, 1, 2, 3, 4}),
		"unknown serialize type":   frame(6, []byte{7, 0, 0, 2, '{', '}'}),
		"bad JSON header":          frame(9, []byte{0, 0, 0, 5, '{', '"', 'c', 'o', 'd'}),
		"short binary header":      frame(9, []byte{1, 0, 0, 5, 0, 1, 2, 3, 4}),
		"truncated frame then EOF": frame(100, []byte{0, 0, 0, 2}),
	}
	for _, addr := range []string{c.NameServerAddr(), c.Broker("broker-a").Addr()} {
		// A healthy connection that must survive the garbage on the others.
		if resp := invoke(t, rc, addr, remoting.NewRequest(remoting.GetMaxOffset, map[string]string{"topic": "TopicTest", "queueId": "0"}, nil)); resp == nil {
			t.Fatal("no response")
		}
		for name, g := range garbage {
			t.Run(name, func(t *testing.T) {
				nc := rawConn(t, addr)
				if _, err := nc.Write(g); err != nil {
					t.Fatal(err)
				}
				if name == "truncated frame then EOF" {
					nc.(*net.TCPConn).CloseWrite()
				}
				expectClosed(t, nc)
			})
		}
		if conns := rc.Conns(); len(conns) == 0 {
			t.Fatalf("the healthy connection was closed")
		}
		invoke(t, rc, addr, remoting.NewRequest(remoting.GetMaxOffset, map[string]string{"topic": "TopicTest", "queueId": "0"}, nil))
	}
	// The broker still works for everyone.
	if resp := invoke(t, rc, c.Broker("broker-a").Addr(), sendV2("TopicTest", 0, "still alive")); resp.Code != 0 {
		t.Errorf("send after garbage: code %d", resp.Code)
	}
}

func TestBadRequestsGetErrorsNotPanics(t *testing.T) {
	t.Parallel()
	c := start(t, devbroker.Config{Topics: map[string]int{"TopicTest": 1}, AutoCreate: true})
	rc := newClient(t, remoting.Config{})
	addr := c.Broker("broker-a").Addr()
	reqs := []*remoting.Command{
		remoting.NewRequest(remoting.SendMessageV2, nil, nil),
		remoting.NewRequest(remoting.SendMessage, map[string]string{"topic": "TopicTest"}, nil),
		remoting.NewRequest(remoting.SendBatchMessage, sendV2("TopicTest", 0, "").ExtFields, []byte{0, 0, 0, 30, 1, 2}),
		remoting.NewRequest(remoting.SendBatchMessage, sendV2("TopicTest", 0, "").ExtFields, frame(1<<30, make([]byte, 40))),
		remoting.NewRequest(remoting.SendBatchMessage, sendV2("TopicTest", 0, "").ExtFields, nil),
		remoting.NewRequest(remoting.HeartBeat, nil, []byte("{not json")),
		remoting.NewRequest(remoting.ViewMessageByID, map[string]string{"offset": "x"}, nil),
		remoting.NewRequest(remoting.ViewMessageByID, map[string]string{"offset": "123456"}, nil),
		remoting.NewRequest(remoting.PullMessage, map[string]string{"topic": "TopicTest"}, nil),
		remoting.NewRequest(remoting.PullMessage, map[string]string{"consumerGroup": "g", "topic": "TopicTest", "queueId": "9", "queueOffset": "0", "maxMsgNums": "1"}, nil),
		remoting.NewRequest(remoting.UpdateAndCreateTopic, map[string]string{"topic": "bad topic", "readQueueNums": "1", "writeQueueNums": "1", "perm": "6"}, nil),
		remoting.NewRequest(remoting.GetMaxOffset, map[string]string{"topic": "TopicTest", "queueId": "99999999999"}, nil),
		sendV2("SCHEDULE_TOPIC_XXXX", 0, "x"),
		sendV2("bad topic!", 0, "x"),
	}
	for i, req := range reqs {
		resp := invoke(t, rc, addr, req)
		if resp.Code == 0 {
			t.Errorf("request %d (%v) succeeded", i, remoting.RequestCode(req.Code))
		}
	}
}

// TestOnewayFlagGetsNoAnswer checks on the wire that a flagged oneway request is not
// answered while an unflagged one is.
func TestOnewayFlagGetsNoAnswer(t *testing.T) {
	t.Parallel()
	c := start(t, devbroker.Config{Topics: map[string]int{"TopicTest": 1}})
	nc := rawConn(t, c.Broker("broker-a").Addr())
	oneway := sendV2("TopicTest", 0, "oneway")
	oneway.Opaque, oneway.Flag = 1, remoting.FlagOneway
	normal := sendV2("TopicTest", 0, "normal")
	normal.Opaque = 2
	var buf []byte
	for _, req := range []*remoting.Command{oneway, normal} {
		var err error
		if buf, err = remoting.AppendFrame(buf, req, remoting.RocketMQ); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := nc.Write(buf); err != nil {
		t.Fatal(err)
	}
	resp, err := remoting.ReadCommand(bufio.NewReader(nc), 0)
	if err != nil {
		t.Fatal(err)
	}
	if resp.Opaque != 2 || !resp.IsResponse() || resp.Code != 0 || resp.Serialize != remoting.RocketMQ {
		t.Errorf("first answer: opaque %d flag %d code %d", resp.Opaque, resp.Flag, resp.Code)
	}
	if got := len(c.Broker("broker-a").Messages("TopicTest")); got != 2 {
		t.Errorf("stored %d messages, want 2", got)
	}
}

// TestNameServerAnswersRequestsThatCameTogether: route requests that arrive in one
// write are all answered, in order (the NameServer writes their answers together), a
// oneway among them included; a request followed by part of the next frame is answered
// at once, not held until the rest of that frame arrives.
func TestNameServerAnswersRequestsThatCameTogether(t *testing.T) {
	t.Parallel()
	c := start(t, devbroker.Config{Topics: map[string]int{"TopicTest": 1}})
	nc := rawConn(t, c.NameServerAddr())
	br := bufio.NewReader(nc)
	route := func(opaque int32, flag int32) []byte {
		req := remoting.NewRequest(remoting.GetRouteInfoByTopic, map[string]string{"topic": "TopicTest"}, nil)
		req.Opaque, req.Flag = opaque, flag
		b, err := remoting.AppendFrame(nil, req, remoting.JSON)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	expect := func(opaque int32) {
		t.Helper()
		resp, err := remoting.ReadCommand(br, 0)
		if err != nil {
			t.Fatalf("waiting for the answer to %d: %v", opaque, err)
		}
		if resp.Opaque != opaque || resp.Code != 0 || len(resp.Body) == 0 {
			t.Fatalf("got opaque %d code %d (%d body bytes), want the route for %d", resp.Opaque, resp.Code, len(resp.Body), opaque)
		}
	}
	var together []byte
	for i := range int32(8) {
		flag := int32(0)
		if i == 7 {
			flag = remoting.FlagOneway // the last one: the others must not wait for an answer
		}
		together = append(together, route(i+1, flag)...)
	}
	if _, err := nc.Write(together); err != nil {
		t.Fatal(err)
	}
	for i := range int32(7) {
		expect(i + 1)
	}
	next := route(20, 0)
	if _, err := nc.Write(append(route(10, 0), next[:len(next)/2]...)); err != nil {
		t.Fatal(err)
	}
	expect(10)
	if _, err := nc.Write(next[len(next)/2:]); err != nil {
		t.Fatal(err)
	}
	expect(20)

	// A request followed by a frame flagged as a response (skipped), then by garbage
	// (the connection closes): its answer still comes, first.
	resp := remoting.NewRequest(remoting.GetRouteInfoByTopic, nil, nil)
	resp.Opaque, resp.Flag = 31, remoting.FlagResponse
	respFrame, err := remoting.AppendFrame(nil, resp, remoting.JSON)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := nc.Write(append(route(30, 0), respFrame...)); err != nil {
		t.Fatal(err)
	}
	expect(30)
	if _, err := nc.Write(append(route(32, 0), frame(8, []byte{0, 0, 0, 0xff, 0, 0, 0, 0})...)); err != nil {
		t.Fatal(err)
	}
	expect(32)
	expectClosed(t, nc)
}
