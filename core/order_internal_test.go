package core

import (
	"slices"
	"testing"

	"github.com/producerd/producerd/plugins/sdk"
)

// TestClientGoQueueOrder: rocketmq-client-go's queue list is the route's queue data in
// NameServer order, reversed (its comparator i-j >= 0), not sorted by broker name; only
// writable queue data whose broker has a master count.
func TestClientGoQueueOrder(t *testing.T) {
	t.Parallel()
	route := &TopicRoute{
		QueueDatas: []QueueData{
			{BrokerName: "broker-a", WriteQueueNums: 2, Perm: PermRead | PermWrite},
			{BrokerName: "broker-c", WriteQueueNums: 1, Perm: PermRead}, // not writable
			{BrokerName: "broker-b", WriteQueueNums: 1, Perm: PermRead | PermWrite},
			{BrokerName: "broker-d", WriteQueueNums: 1, Perm: PermRead | PermWrite}, // no master
		},
		BrokerDatas: []BrokerData{
			{BrokerName: "broker-a", BrokerAddrs: map[int64]string{0: "a:1"}},
			{BrokerName: "broker-b", BrokerAddrs: map[int64]string{0: "b:1"}},
			{BrokerName: "broker-c", BrokerAddrs: map[int64]string{0: "c:1"}},
			{BrokerName: "broker-d", BrokerAddrs: map[int64]string{1: "d:2"}},
		},
	}
	java, _ := route.publishQueues()
	pi := &publishInfo{topic: "T", version: 1, queues: java, route: route}
	var o orderState
	got := o.clientGoQueues(pi)
	want := []sdk.Queue{{Broker: "broker-b", ID: 0}, {Broker: "broker-a", ID: 0}, {Broker: "broker-a", ID: 1}}
	if !slices.Equal(got, want) {
		t.Errorf("client-go queues %v, want %v", got, want)
	}
	if wantJava := []sdk.Queue{{Broker: "broker-a", ID: 0}, {Broker: "broker-a", ID: 1}, {Broker: "broker-b", ID: 0}}; !slices.Equal(java, wantJava) {
		t.Errorf("Java queues %v, want %v", java, wantJava)
	}
}
