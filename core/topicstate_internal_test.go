package core

import (
	"fmt"
	"reflect"
	"testing"

	"github.com/hashicorp/go-hclog"

	"github.com/producerd/producerd/plugins/sdk/pick"
)

func bareClient() *Client {
	return &Client{log: hclog.NewNullLogger(), rr: pick.New(pick.Options{}), routes: map[string]*TopicRoute{},
		routeNS: map[string]string{}, brokerAddrs: map[string]map[int64]string{}}
}

func testRoute() *TopicRoute {
	return &TopicRoute{
		QueueDatas:  []QueueData{{BrokerName: "a", ReadQueueNums: 4, WriteQueueNums: 4, Perm: PermWrite | 4}},
		BrokerDatas: []BrokerData{{Cluster: "c", BrokerName: "a", BrokerAddrs: map[int64]string{0: "127.0.0.1:10911"}}},
	}
}

// TestRouteStateGrowth: refreshing many topics on the same brokers keeps one broker
// table (no new map per route), and a forgotten topic leaves no route behind.
func TestRouteStateGrowth(t *testing.T) {
	c := bareClient()
	for i := range 100 {
		topic := fmt.Sprint("t", i)
		c.install(topic, c.topic(topic), testRoute(), false, "ns")
	}
	table := reflect.ValueOf(c.brokerAddrs["a"]).Pointer()
	c.install("t0", c.topic("t0"), testRoute(), false, "ns")
	if reflect.ValueOf(c.brokerAddrs["a"]).Pointer() != table {
		t.Fatal("an unchanged broker table was replaced")
	}
	moved := testRoute()
	moved.BrokerDatas[0].BrokerAddrs[0] = "127.0.0.1:20911"
	c.install("t1", c.topic("t1"), moved, false, "ns")
	if got := c.masterAddr("a"); got != "127.0.0.1:20911" {
		t.Fatalf("master after a change: %q", got)
	}
	for i := range 100 {
		c.forgetTopic(fmt.Sprint("t", i))
	}
	if len(c.routes) != 0 || len(c.routeNS) != 0 {
		t.Fatalf("%d routes and %d NameServers left after forgetting every topic", len(c.routes), len(c.routeNS))
	}
	c.cleanOfflineBrokers()
	if got := c.masterAddr("a"); got != "" {
		t.Fatalf("master of a broker no route names: %q", got)
	}
}
