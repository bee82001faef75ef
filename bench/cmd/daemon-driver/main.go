// Command daemon-driver is the load client of driver 1 of the side-by-side benchmark:
// it sends through a running producerd daemon's ingress gRPC API (started by the
// harness from ../cmd/producerd with a generated TOML):
//
//	sync   unary Ingress.Send, -concurrency goroutines
//	async  one Ingress.SendStream, -concurrency messages in flight
//	batch  unary Ingress.SendBatch of -batch messages, -concurrency goroutines
//
// -group picks the daemon's producer group (and so its strategy). With -topics N,
// message i goes to topic load.Name(-topic, i mod N); with -groups N, to producer group
// load.Name(-group, i mod N) (the harness's growth points). The CPU and RSS in its
// result line are this client's; the harness measures the daemon's.
//
//	daemon-driver -addr 127.0.0.1:7380 -group bench_rr -mode async -concurrency 1024
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"strconv"
	"sync"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/producerd/producerd/api/producerdpb"
	"github.com/producerd/producerd/bench/internal/load"
)

const driver = "daemon"

func main() {
	p := load.Register(flag.CommandLine)
	addr := flag.String("addr", "127.0.0.1:7380", "producerd ingress gRPC address")
	topics := flag.Int("topics", 0, "send to `N` topics -topic-0 .. -topic-(N-1) in turn (0: -topic only)")
	groups := flag.Int("groups", 0, "send through `N` producer groups -group-0 .. -group-(N-1) in turn (0: -group only)")
	flag.Parse()
	load.Exit(driver, run(p, *addr, *topics, *groups))
}

func run(p *load.Params, addr string, topics, groups int) error {
	if err := p.Validate(); err != nil {
		return err
	}
	cc, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return err
	}
	defer cc.Close()
	s := &sender{c: producerdpb.NewIngressClient(cc), groups: []string{p.Group}, topics: []string{p.Topic}, body: load.Body(p.Size), timeout: p.Timeout + 2*time.Second}
	if topics > 0 {
		s.topics = load.Names(p.Topic, topics)
	}
	if groups > 0 {
		s.groups = load.Names(p.Group, groups)
	}
	if p.Mode == load.ModeAsync {
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		if err := s.openStream(ctx); err != nil {
			return err
		}
		defer s.closeStream()
	}
	_, err = load.Execute(driver, p, s)
	return err
}

type sender struct {
	c       producerdpb.IngressClient
	groups  []string // message i goes through groups[i % len]
	topics  []string // and to topics[i % len]
	body    []byte
	timeout time.Duration

	stream   grpc.BidiStreamingClient[producerdpb.StreamRequest, producerdpb.StreamAck]
	mu       sync.Mutex
	pending  map[string]func(string, error)
	recvDone chan struct{}
	recvErr  error
}

func (s *sender) msg(i int) *producerdpb.Message {
	return &producerdpb.Message{ProducerGroup: s.groups[i%len(s.groups)], Topic: s.topics[i%len(s.topics)], Body: s.body, Tags: load.Tag, Keys: []string{load.Key(i)}}
}

func (s *sender) Send(ctx context.Context, i int) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	r, err := s.c.Send(ctx, &producerdpb.SendRequest{Message: s.msg(i)})
	if err != nil {
		return "", err
	}
	return r.GetResult().GetBroker(), nil
}

func (s *sender) SendBatch(ctx context.Context, first, n int) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	msgs := make([]*producerdpb.Message, n)
	for k := range msgs {
		m := s.msg(first + k)
		m.ProducerGroup, m.Topic = "", ""
		msgs[k] = m
	}
	r, err := s.c.SendBatch(ctx, &producerdpb.SendBatchRequest{ProducerGroup: s.groups[first%len(s.groups)], Topic: s.topics[first%len(s.topics)], Messages: msgs})
	if err != nil {
		return "", err
	}
	if len(r.GetResults()) != n {
		return "", fmt.Errorf("SendBatch answered %d results for %d messages", len(r.GetResults()), n)
	}
	return r.GetResults()[0].GetBroker(), nil
}

func (s *sender) openStream(ctx context.Context) error {
	st, err := s.c.SendStream(ctx)
	if err != nil {
		return err
	}
	s.stream, s.pending, s.recvDone = st, make(map[string]func(string, error)), make(chan struct{})
	go s.receive()
	return nil
}

// receive matches acknowledgements to pending sends until the stream ends; whatever is
// still pending then fails.
func (s *sender) receive() {
	defer close(s.recvDone)
	for {
		ack, err := s.stream.Recv()
		if err != nil {
			s.mu.Lock()
			s.recvErr = err
			left := s.pending
			s.pending = nil
			s.mu.Unlock()
			if errors.Is(err, io.EOF) {
				err = errors.New("stream ended before the acknowledgement")
			}
			for _, done := range left {
				done("", err)
			}
			return
		}
		s.mu.Lock()
		done := s.pending[ack.GetId()]
		delete(s.pending, ack.GetId())
		s.mu.Unlock()
		if done == nil {
			continue
		}
		if e := ack.GetError(); e != nil {
			done("", fmt.Errorf("%s (code %d): %s", e.GetReason(), e.GetCode(), e.GetMessage()))
			continue
		}
		done(ack.GetResult().GetBroker(), nil)
	}
}

// SendAsync is called from one goroutine only (the load's issuer), so Send on the
// stream needs no lock.
func (s *sender) SendAsync(_ context.Context, i int, done func(string, error)) error {
	id := strconv.Itoa(i)
	s.mu.Lock()
	if s.pending == nil {
		err := s.recvErr
		s.mu.Unlock()
		return fmt.Errorf("stream closed: %w", err)
	}
	s.pending[id] = done
	s.mu.Unlock()
	if err := s.stream.Send(&producerdpb.StreamRequest{Id: id, Message: s.msg(i)}); err != nil {
		s.mu.Lock()
		_, mine := s.pending[id]
		delete(s.pending, id)
		s.mu.Unlock()
		if !mine {
			return nil // receive failed it already
		}
		return err
	}
	return nil
}

func (s *sender) closeStream() {
	_ = s.stream.CloseSend()
	select {
	case <-s.recvDone:
	case <-time.After(10 * time.Second):
	}
}
