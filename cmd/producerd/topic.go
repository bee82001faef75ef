package main

import (
	"context"
	"fmt"

	"github.com/producerd/producerd/api/producerdpb"
	"github.com/producerd/producerd/core"
	"github.com/producerd/producerd/internal/daemon"
	"github.com/producerd/producerd/remoting"
)

func cmdTopic(e *env, args []string) int {
	fs := newFlags(e, "topic", "create [flags] TOPIC", `
Create (or update) a topic on broker masters: through a running daemon's admin API, or
with -namesrv directly against a NameServer and its brokers (no daemon needed). Without
-brokers the topic is created on every master the NameServer knows.`,
		`  producerd topic create orders
  producerd topic create -queues 8 -brokers broker-a,broker-b orders
  producerd topic create -namesrv 127.0.0.1:9876 orders`)
	var cf connFlags
	cf.register(fs, false, true)
	queues := fs.Int("queues", 4, "read and write queue `count` per broker")
	brokers := fs.String("brokers", "", "comma-separated broker `names` (default: all)")
	order := fs.Bool("order", false, "mark the topic as ordered")
	namesrv := fs.String("namesrv", "", "create directly through this NameServer `address` instead of the daemon")
	pos, code, ok := parse(fs, args)
	if !ok {
		return code
	}
	switch {
	case len(pos) == 0 || pos[0] != "create":
		return usageError(fs, "missing create")
	case len(pos) == 1:
		return usageError(fs, "missing TOPIC")
	case len(pos) > 2:
		return usageError(fs, "one TOPIC expected, got %q", pos[1:])
	}
	topic := pos[1]
	var done []string
	if *namesrv != "" {
		rc, err := remoting.NewClient(remoting.Config{})
		if err != nil {
			return fail(e, "%v", err)
		}
		defer rc.Close()
		rc.SetNameServers([]string{*namesrv})
		ctx, cancel := context.WithTimeout(context.Background(), cf.timeout)
		defer cancel()
		done, err = daemon.CreateTopic(ctx, rc, core.TopicConfig{Topic: topic, ReadQueues: *queues, WriteQueues: *queues, Order: *order}, splitList(*brokers))
		if err != nil {
			return fail(e, "topic create: %v", err)
		}
	} else {
		ac, closeFn, err := cf.adminClient()
		if err != nil {
			return fail(e, "%v", err)
		}
		defer closeFn()
		ctx, cancel := cf.adminCtx()
		defer cancel()
		resp, err := ac.CreateTopic(ctx, &producerdpb.CreateTopicRequest{Topic: topic, ReadQueues: int32(*queues),
			WriteQueues: int32(*queues), Brokers: splitList(*brokers), Order: *order})
		if err != nil {
			return fail(e, "topic create: %s", rpcError(err))
		}
		done = resp.GetBrokers()
	}
	for _, b := range done {
		fmt.Fprintf(e.stdout, "created %s on %s\n", topic, b)
	}
	return 0
}
