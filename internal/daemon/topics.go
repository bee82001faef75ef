package daemon

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"

	"github.com/producerd/producerd/api/producerdpb"
	"github.com/producerd/producerd/core"
	"github.com/producerd/producerd/remoting"
)

// CreateTopic creates a topic on the named broker masters, or on every master the
// NameServer knows; it returns "name=addr" of each.
func (d *Daemon) CreateTopic(ctx context.Context, req *producerdpb.CreateTopicRequest) ([]string, error) {
	gs := d.groupList()
	if len(gs) == 0 {
		return nil, errors.New("daemon: no producer group")
	}
	rc := gs[0].prod.Client().Remoting()
	return CreateTopic(ctx, rc, core.TopicConfig{Topic: req.GetTopic(), ReadQueues: int(req.GetReadQueues()),
		WriteQueues: int(req.GetWriteQueues()), Order: req.GetOrder()}, req.GetBrokers())
}

// ClusterMasters asks a NameServer for the broker masters of every cluster
// (GET_BROKER_CLUSTER_INFO): broker name -> address.
func ClusterMasters(ctx context.Context, rc *remoting.Client) (map[string]string, error) {
	resp, addr, err := rc.InvokeNameServer(ctx, remoting.NewRequest(remoting.GetBrokerClusterInfo, nil, nil))
	if err != nil {
		return nil, err
	}
	if err := remoting.ResponseError(addr, resp); err != nil {
		return nil, err
	}
	var info struct {
		BrokerAddrTable map[string]struct {
			BrokerName  string            `json:"brokerName"`
			BrokerAddrs map[string]string `json:"brokerAddrs"`
		} `json:"brokerAddrTable"`
	}
	if err := json.Unmarshal(core.QuoteBareKeys(resp.Body), &info); err != nil {
		return nil, fmt.Errorf("daemon: cluster info from %s: %w", addr, err)
	}
	out := make(map[string]string)
	for name, b := range info.BrokerAddrTable {
		if a := b.BrokerAddrs["0"]; a != "" {
			out[name] = a
		}
	}
	return out, nil
}

// CreateTopic creates tc on the named brokers' masters (all known ones when brokers is
// empty) through rc, and returns "name=addr" of each.
func CreateTopic(ctx context.Context, rc *remoting.Client, tc core.TopicConfig, brokers []string) ([]string, error) {
	if err := core.ValidateTopic(tc.Topic); err != nil {
		return nil, err
	}
	masters, err := ClusterMasters(ctx, rc)
	if err != nil {
		return nil, fmt.Errorf("daemon: list brokers: %w", err)
	}
	if len(brokers) == 0 {
		for n := range masters {
			brokers = append(brokers, n)
		}
		slices.Sort(brokers)
	}
	if len(brokers) == 0 {
		return nil, errors.New("daemon: the NameServer knows no broker")
	}
	var done []string
	for _, b := range brokers {
		addr, ok := masters[b]
		if !ok {
			return done, fmt.Errorf("daemon: broker %q unknown to the NameServer", b)
		}
		if err := core.CreateTopic(ctx, rc, addr, tc); err != nil {
			return done, fmt.Errorf("daemon: create topic %s on %s (%s): %w", tc.Topic, b, addr, err)
		}
		done = append(done, b+"="+addr)
	}
	return done, nil
}
