package core

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/producerd/producerd/devbroker"
	"github.com/producerd/producerd/remoting"
)

// storedRecord encodes a message in the commit-log format a broker puts in a
// CHECK_TRANSACTION_STATE body (MessageDecoder.encode, magic V1, IPv4 hosts).
func storedRecord(topic string, queueID int32, body []byte, props string, born time.Time) []byte {
	var b []byte
	i32 := func(v int32) { b = binary.BigEndian.AppendUint32(b, uint32(v)) }
	i64 := func(v int64) { b = binary.BigEndian.AppendUint64(b, uint64(v)) }
	i32(0) // total, patched below
	i32(magicV1)
	i32(0) // body CRC
	i32(queueID)
	i32(0)    // flag
	i64(7)    // queue offset
	i64(4096) // physical offset
	i32(0)    // sysFlag
	i64(born.UnixMilli())
	b = append(b, 127, 0, 0, 1)
	i32(5000)
	i64(born.UnixMilli())
	b = append(b, 127, 0, 0, 1)
	i32(10911)
	i32(0) // reconsume times
	i64(0) // prepared transaction offset
	i32(int32(len(body)))
	b = append(b, body...)
	b = append(b, byte(len(topic)))
	b = append(b, topic...)
	b = binary.BigEndian.AppendUint16(b, uint16(len(props)))
	b = append(b, props...)
	binary.BigEndian.PutUint32(b, uint32(len(b)))
	return b
}

// fakeBroker accepts connections and hands every frame it reads to frames.
func fakeBroker(t *testing.T) (string, chan *remoting.Command) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	frames := make(chan *remoting.Command, 8)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				r := bufio.NewReader(c)
				for {
					var l [4]byte
					if _, err := io.ReadFull(r, l[:]); err != nil {
						return
					}
					buf := make([]byte, binary.BigEndian.Uint32(l[:]))
					if _, err := io.ReadFull(r, buf); err != nil {
						return
					}
					if cmd, err := remoting.DecodeFrame(buf); err == nil {
						frames <- cmd
					}
				}
			}()
		}
	}()
	return ln.Addr().String(), frames
}

// TestCheckBackAnswer: a CHECK_TRANSACTION_STATE is decoded for the group's checker and
// answered with END_TRANSACTION, oneway, to the address the check came from, with the
// check's offsets and fromTransactionCheck=true; without a checker, or when it fails, the
// answer is UNKNOWN (0).
func TestCheckBackAnswer(t *testing.T) {
	dev, err := devbroker.Start(context.Background(), devbroker.Config{Brokers: []string{"broker-a"}, Topics: map[string]int{"T": 4}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { dev.Close() })
	p, err := NewProducer(ProducerConfig{Group: "txg", Namespace: "ns", Client: ClientConfig{NameServers: []string{dev.NameServerAddr()}}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close(context.Background()) })
	addr, frames := fakeBroker(t)
	props := string(appendProperty(appendProperty(appendProperty(appendProperty(appendProperty(appendProperty(nil,
		PropertyKeys, "a b"), PropertyUniqKey, "UNIQ1"), PropertyTranMsg, "true"), PropertyProducerGroup, "ns%txg"),
		PropertyCheckTimes, "2"), "app", "v"))
	check := func() *remoting.Command {
		req := remoting.NewRequest(remoting.CheckTransactionState, map[string]string{
			"tranStateTableOffset": "11", "commitLogOffset": "4096", "msgId": "UNIQ1", "transactionId": "UNIQ1",
			"offsetMsgId": "7F00000100002A9F0000000000001000", "topic": halfTopic, "bname": "broker-a"},
			storedRecord("ns%T", 3, []byte("body"), props, time.Now()))
		req.Flag = remoting.FlagOneway
		return req
	}
	next := func() *remoting.Command {
		t.Helper()
		select {
		case f := <-frames:
			return f
		case <-time.After(10 * time.Second):
			t.Fatal("no END_TRANSACTION")
		}
		return nil
	}

	got := make(chan *TransactionCheck, 1)
	p.SetTransactionChecker(TransactionCheckerFunc(func(_ context.Context, c *TransactionCheck) (TransactionState, error) {
		got <- c
		return TransactionCommit, nil
	}))
	p.client.onServerRequest(addr, check())
	end := next()
	c := <-got
	if c.ID != "UNIQ1" || c.Topic != "T" || c.Group != "txg" || c.QueueID != 3 || c.Broker != "broker-a" || c.Addr != addr ||
		string(c.Body) != "body" || len(c.Keys) != 2 || c.CheckTimes != 2 || len(c.Properties) != 1 || c.Properties["app"] != "v" {
		t.Errorf("check %+v", c)
	}
	want := map[string]string{"producerGroup": "ns%txg", "tranStateTableOffset": "11", "commitLogOffset": "4096",
		"commitOrRollback": "8", "fromTransactionCheck": "true", "msgId": "UNIQ1", "transactionId": "UNIQ1",
		"topic": halfTopic, "bname": "broker-a"}
	if end.Code != int32(remoting.EndTransaction) || !end.IsOneway() {
		t.Errorf("answer code %d oneway %v, want END_TRANSACTION oneway", end.Code, end.IsOneway())
	}
	for k, v := range want {
		if end.ExtFields[k] != v {
			t.Errorf("END_TRANSACTION %s = %q, want %q", k, end.ExtFields[k], v)
		}
	}

	p.SetTransactionChecker(TransactionCheckerFunc(func(context.Context, *TransactionCheck) (TransactionState, error) {
		return TransactionCommit, errors.New("db down")
	}))
	p.client.onServerRequest(addr, check())
	if end := next(); end.ExtFields["commitOrRollback"] != "0" || end.Remark == "" {
		t.Errorf("failing checker: commitOrRollback %q remark %q, want 0 and the error", end.ExtFields["commitOrRollback"], end.Remark)
	}
	p.SetTransactionChecker(nil)
	p.client.onServerRequest(addr, check())
	if end := next(); end.ExtFields["commitOrRollback"] != "0" {
		t.Errorf("no checker: commitOrRollback %q, want 0", end.ExtFields["commitOrRollback"])
	}

	// A checker that asks for the broker's verdict (OnAnswered): the answer is a request,
	// and the verdict reaches it (this fake broker never answers: the send's timeout).
	verdict := make(chan error, 1)
	p.SetTransactionChecker(TransactionCheckerFunc(func(_ context.Context, c *TransactionCheck) (TransactionState, error) {
		c.OnAnswered(func(err error) { verdict <- err })
		return TransactionRollback, nil
	}))
	p.client.onServerRequest(addr, check())
	if end := next(); end.IsOneway() || end.ExtFields["commitOrRollback"] != "12" {
		t.Errorf("acknowledged answer: oneway %v, commitOrRollback %q; want a request with 12", end.IsOneway(), end.ExtFields["commitOrRollback"])
	}
	select {
	case err := <-verdict:
		if err == nil {
			t.Error("verdict nil from a broker that never answered")
		}
	case <-time.After(20 * time.Second):
		t.Fatal("OnAnswered never called")
	}
}

// TestEncodeHalfMessage: a half message is encoded once, with TRAN_MSG and PGROUP in the
// properties and the PREPARED flag, and its properties limit counts them: a message
// that fits as a normal send may not fit as a half message.
func TestEncodeHalfMessage(t *testing.T) {
	p := &Producer{cfg: ProducerConfig{Group: "txGroup", MaxMessageSize: DefaultMaxMessageSize, MaxDelayLevel: MaxDelayLevel}}
	m := &Message{Topic: "T", Body: []byte("b"), Properties: map[string]string{"k": "v"}}
	var pr prepared
	if err := p.encodeInto(&pr, m, true); err != nil {
		t.Fatal(err)
	}
	props := DecodeProperties(pr.props)
	if props[PropertyTranMsg] != "true" || props[PropertyProducerGroup] != "txGroup" || props["k"] != "v" || props[PropertyUniqKey] != pr.uniqKey {
		t.Errorf("half message properties %q", props)
	}
	if !pr.half || pr.sysFlag&sysFlagPrepared == 0 {
		t.Errorf("half %v, sysFlag %#x: want a prepared half message", pr.half, pr.sysFlag)
	}
	if err := p.encodeInto(&pr, m, false); err != nil || pr.half || pr.sysFlag&sysFlagPrepared != 0 {
		t.Errorf("a normal message after a half one: err %v, half %v, sysFlag %#x", err, pr.half, pr.sysFlag)
	}
	if _, ok := DecodeProperties(pr.props)[PropertyTranMsg]; ok {
		t.Error("a normal message carries TRAN_MSG")
	}

	// Fill the properties to 10 bytes under the limit as a normal message.
	var base prepared
	m.Properties = map[string]string{"pad": "x"}
	if err := p.encodeInto(&base, m, false); err != nil {
		t.Fatal(err)
	}
	m.Properties["pad"] = strings.Repeat("x", maxPropertiesLength-len(base.props)-10+1)
	if err := p.encodeInto(&base, m, false); err != nil {
		t.Fatalf("normal message under the limit: %v", err)
	}
	var ve *ValidationError
	if err := p.encodeInto(&pr, m, true); !errors.As(err, &ve) || ve.Rule != "properties.size" {
		t.Errorf("half message over the limit with TRAN_MSG and PGROUP: %v, want properties.size", err)
	}
}
