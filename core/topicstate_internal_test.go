package core

import (
	"fmt"
	"reflect"
	"runtime"
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
// table (no new map per route), and a forgotten topic leaves no route behind, even
// when a refresh cycle listed it before.
func TestRouteStateGrowth(t *testing.T) {
	c := bareClient()
	for i := range 100 {
		topic := fmt.Sprint("t", i)
		c.install(topic, c.topic(topic), c.prepareRoute(testRoute()), false, "ns")
	}
	table := reflect.ValueOf(c.brokerAddrs["a"]).Pointer()
	c.install("t0", c.topic("t0"), c.prepareRoute(testRoute()), false, "ns")
	if reflect.ValueOf(c.brokerAddrs["a"]).Pointer() != table {
		t.Fatal("an unchanged broker table was replaced")
	}
	moved := testRoute()
	moved.BrokerDatas[0].BrokerAddrs[0] = "127.0.0.1:20911"
	c.install("t1", c.topic("t1"), c.prepareRoute(moved), false, "ns")
	if got := c.masterAddr("a"); got != "127.0.0.1:20911" {
		t.Fatalf("master after a change: %q", got)
	}
	listed := c.refreshEntries() // a refresh cycle starts and lists every topic
	for i := range 100 {
		c.forgetTopic(fmt.Sprint("t", i))
	}
	// A fetch here would panic on the bare client (no transport): a topic forgotten
	// after the cycle listed it is skipped, not fetched and installed again.
	c.refreshTopics(t.Context(), listed)
	if len(c.routes) != 0 || len(c.routeNS) != 0 {
		t.Fatalf("%d routes and %d NameServers left after forgetting every topic", len(c.routes), len(c.routeNS))
	}
	c.cleanOfflineBrokers()
	if got := c.masterAddr("a"); got != "" {
		t.Fatalf("master of a broker no route names: %q", got)
	}
}

// TestForgottenTopicInstallsNothing: a fetch that was in flight when its topic was
// forgotten (it holds the old state) finishes without putting the route back.
func TestForgottenTopicInstallsNothing(t *testing.T) {
	c := bareClient()
	ts := c.topic("gone") // a fetch took the state, then the topic was forgotten
	c.forgetTopic("gone")
	c.install("gone", ts, c.prepareRoute(testRoute()), false, "ns")
	if len(c.routes) != 0 || len(c.routeNS) != 0 {
		t.Fatalf("a forgotten topic's late fetch left %d routes and %d NameServers", len(c.routes), len(c.routeNS))
	}
}

// TestRouteBytesPerTopic measures the route state of 100,000 topics on the same two
// brokers (parsed route bodies installed as a refresh does) and holds it to a bound.
func TestRouteBytesPerTopic(t *testing.T) {
	if testing.Short() {
		t.Skip("installs 100,000 routes")
	}
	const n = 100_000
	body := []byte(`{"brokerDatas":[{"brokerAddrs":{"0":"127.0.0.1:10911"},"brokerName":"broker-a","cluster":"c"},` +
		`{"brokerAddrs":{"0":"127.0.0.1:10921"},"brokerName":"broker-b","cluster":"c"}],` +
		`"queueDatas":[{"brokerName":"broker-a","perm":6,"readQueueNums":4,"writeQueueNums":4},{"brokerName":"broker-b","perm":6,"readQueueNums":4,"writeQueueNums":4}]}`)
	names := make([]string, n)
	for i := range names {
		names[i] = fmt.Sprintf("topic-%06d", i)
	}
	c := bareClient()
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	for _, topic := range names {
		route, err := ParseTopicRoute(body)
		if err != nil {
			t.Fatal(err)
		}
		c.install(topic, c.topic(topic), c.prepareRoute(route), false, "ns")
	}
	runtime.GC()
	runtime.ReadMemStats(&after)
	per := float64(after.HeapAlloc-before.HeapAlloc) / n
	t.Logf("%.0f bytes of route state per topic at %d topics on 2 brokers", per, n)
	if per > 1024 {
		t.Fatalf("%.0f bytes per topic", per)
	}
	runtime.KeepAlive(c)
}
