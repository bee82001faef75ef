// Command core-driver is driver 2 of the side-by-side benchmark: producerd's core package
// used as a library, in this process, against a real RocketMQ cluster.
//
//	core-driver -namesrv 127.0.0.1:9876 -topic IT_Bench -mode sync -concurrency 64 -n 200000
//
// -strategy picks the queue selection:
//
//	"" / default  core's built-in in-process round-robin (no strategy)
//	rr-lib        plugins/roundrobin in this process, called directly
//	lf-lib        plugins/latencyfault (preset rocketmq5) in this process, called directly
//	S-inproc      host package, strategy S in-process
//	S-plugin      host package, strategy S out of process (a plugin process)
//	S-wasm        host package, strategy S as a WebAssembly module (wasm/S.wasm next to
//	              this executable)
//
// with S one of rr (round-robin), lf (latency-fault, preset rocketmq5), ll (the
// least-latency example) and kh (keyhash, which decides per message).
//
// The host strategies need the host package to compile; without it, build with
// -tags nohost and they are reported as unavailable. "core-driver plugin NAME" is the
// plugin process the host starts for the out-of-process strategies.
package main

import (
	"context"
	"flag"
	"os"
	"strconv"
	"time"

	"github.com/producerd/producerd/bench/internal/load"
	"github.com/producerd/producerd/core"
	"github.com/producerd/producerd/plugins/latencyfault"
	"github.com/producerd/producerd/plugins/roundrobin"
	"github.com/producerd/producerd/plugins/sdk"
)

const driver = "core"

func main() {
	if len(os.Args) >= 3 && os.Args[1] == "plugin" {
		load.Exit(driver+" plugin", servePlugin(os.Args[2]))
		return
	}
	p := load.Register(flag.CommandLine)
	slice := flag.Duration("interleave", 0, "with -strategy A,B,...: hand the measured phase to one producer per strategy in turn, this long each, and print a PATH line per strategy (interleave.go)")
	flag.Parse()
	if *slice > 0 {
		load.Exit(driver, runInterleaved(p, *slice))
		return
	}
	load.Exit(driver, run(p))
}

func run(p *load.Params) error {
	if err := p.Validate(); err != nil {
		return err
	}
	sel, closeSel, err := strategy(p.Strategy)
	if err != nil {
		return err
	}
	defer closeSel()
	group := p.Group
	if group == "" {
		group = "bench_core_" + strconv.Itoa(os.Getpid())
	}
	prod, err := core.NewProducer(core.ProducerConfig{
		Group:       group,
		Client:      core.ClientConfig{NameServers: []string{p.NameServer}, InstanceName: group},
		SendTimeout: p.Timeout,
		Strategy:    sel,
	})
	if err != nil {
		return err
	}
	defer func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = prod.Close(ctx)
	}()
	_, err = load.Execute(driver, p, &sender{p: prod, topic: p.Topic, body: load.Body(p.Size)})
	return err
}

// strategy builds the selector named by -strategy; nil means core's own round-robin.
func strategy(name string) (sdk.Selector, func(), error) {
	switch name {
	case "", "default":
		return nil, func() {}, nil
	case "rr-lib":
		return roundrobin.New(), func() {}, nil
	case "lf-lib":
		opts, err := latencyfault.Preset(latencyfault.PresetRocketMQ5)
		if err != nil {
			return nil, nil, err
		}
		s, err := latencyfault.New(opts)
		if err != nil {
			return nil, nil, err
		}
		return s, func() { s.Close() }, nil
	}
	return hostStrategy(name)
}

type sender struct {
	p     *core.Producer
	topic string
	body  []byte
}

func (s *sender) msg(i int) *core.Message {
	return &core.Message{Topic: s.topic, Body: s.body, Tags: load.Tag, Keys: []string{load.Key(i)}}
}

func (s *sender) Send(ctx context.Context, i int) (string, error) {
	r, err := s.p.Send(ctx, s.msg(i))
	if err != nil {
		return "", err
	}
	return r.Queue.Broker, nil
}

func (s *sender) SendAsync(ctx context.Context, i int, done func(string, error)) error {
	return s.p.SendAsync(ctx, s.msg(i), func(r *core.SendResult, err error) {
		if err != nil {
			done("", err)
			return
		}
		done(r.Queue.Broker, nil)
	})
}

func (s *sender) SendBatch(ctx context.Context, first, n int) (string, error) {
	msgs := make([]*core.Message, n)
	for k := range msgs {
		msgs[k] = s.msg(first + k)
	}
	r, err := s.p.SendBatch(ctx, msgs)
	if err != nil {
		return "", err
	}
	return r.Queue.Broker, nil
}
