// Command clientgo-driver is driver 4 of the side-by-side benchmark: Apache
// rocketmq-client-go v2 (pinned in go.mod) against a real RocketMQ cluster, with its
// default options (2 retries, JSON headers, compression over 4 KiB at level 5) and the
// producer timeout of -timeout. It has no broker avoidance, so -strategy is ignored.
//
//	clientgo-driver -namesrv 127.0.0.1:9876 -topic IT_Bench -mode async -concurrency 1024
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"strconv"

	rocketmq "github.com/apache/rocketmq-client-go/v2"
	"github.com/apache/rocketmq-client-go/v2/primitive"
	"github.com/apache/rocketmq-client-go/v2/producer"
	"github.com/apache/rocketmq-client-go/v2/rlog"

	"github.com/producerd/producerd/bench/internal/load"
)

const driver = "clientgo"

func main() {
	p := load.Register(flag.CommandLine)
	flag.Parse()
	load.Exit(driver, run(p))
}

func run(p *load.Params) error {
	if err := p.Validate(); err != nil {
		return err
	}
	rlog.SetLogLevel("error")
	group := p.Group
	if group == "" {
		group = "bench_clientgo_" + strconv.Itoa(os.Getpid())
	}
	prod, err := rocketmq.NewProducer(
		producer.WithNameServer([]string{p.NameServer}),
		producer.WithGroupName(group),
		producer.WithInstanceName(group),
		producer.WithRetry(2),
		producer.WithSendMsgTimeout(p.Timeout),
	)
	if err != nil {
		return err
	}
	if err := prod.Start(); err != nil {
		return err
	}
	defer prod.Shutdown()
	_, err = load.Execute(driver, p, &sender{p: prod, topic: p.Topic, body: load.Body(p.Size)})
	return err
}

type sender struct {
	p     rocketmq.Producer
	topic string
	body  []byte
}

func (s *sender) msg(i int) *primitive.Message {
	m := primitive.NewMessage(s.topic, s.body)
	m.WithTag(load.Tag)
	m.WithKeys([]string{load.Key(i)})
	return m
}

func outcome(r *primitive.SendResult, err error) (string, error) {
	if err != nil {
		return "", err
	}
	if r.Status != primitive.SendOK {
		return "", fmt.Errorf("send status %v", r.Status)
	}
	if r.MessageQueue == nil {
		return "", errors.New("no message queue in the result")
	}
	return r.MessageQueue.BrokerName, nil
}

func (s *sender) Send(ctx context.Context, i int) (string, error) {
	return outcome(s.p.SendSync(ctx, s.msg(i)))
}

func (s *sender) SendAsync(ctx context.Context, i int, done func(string, error)) error {
	return s.p.SendAsync(ctx, func(_ context.Context, r *primitive.SendResult, err error) {
		done(outcome(r, err))
	}, s.msg(i))
}

func (s *sender) SendBatch(ctx context.Context, first, n int) (string, error) {
	msgs := make([]*primitive.Message, n)
	for k := range msgs {
		msgs[k] = s.msg(first + k)
		// client-go gives a batch's messages no client message id (producer.go sets
		// UNIQ_KEY only when !msg.Batch); Java's MessageBatch.generateFromList and
		// producerd do, and the broker indexes it next to the key. Set here as they do,
		// so that the broker does the same work for every client's batch.
		msgs[k].WithProperty(primitive.PropertyUniqueClientMessageIdKeyIndex, primitive.CreateUniqID())
	}
	return outcome(s.p.SendSync(ctx, msgs...))
}
