package devbroker_test

import (
	"context"
	"fmt"
	"time"

	"github.com/producerd/producerd/core"
	"github.com/producerd/producerd/devbroker"
	"github.com/producerd/producerd/remoting"
)

// A two-broker cluster whose broker-a answers SYSTEM_BUSY from 10 s on and goes down at
// 20 s; the test steps the timeline instead of sleeping.
func Example() {
	ctx := context.Background()
	c, err := devbroker.Start(ctx, devbroker.Config{
		Brokers:        []string{"broker-a", "broker-b"},
		Topics:         map[string]int{"TopicTest": 4},
		ManualTimeline: true,
		Timeline: devbroker.Timeline{
			{At: 10 * time.Second, Broker: "broker-a", Fault: devbroker.Fault{
				Errors: []devbroker.InjectedError{{Code: remoting.SystemBusy, Rate: 1}}}},
			{At: 20 * time.Second, Broker: "broker-a", Fault: devbroker.Fault{Down: true}},
		},
	})
	if err != nil {
		panic(err)
	}
	defer c.Close()

	p, err := core.NewProducer(core.ProducerConfig{Group: "example",
		Client: core.ClientConfig{NameServers: []string{c.NameServerAddr()}}})
	if err != nil {
		panic(err)
	}
	defer p.Close(ctx)

	for _, at := range []time.Duration{0, 10 * time.Second, 20 * time.Second} {
		c.AdvanceTimeline(at)
		res, err := p.Send(ctx, &core.Message{Topic: "TopicTest", Body: []byte("hello")})
		if err != nil {
			panic(err)
		}
		fmt.Println(at, res.Status, "broker-a down:", c.Broker("broker-a").Fault().Down)
	}
	// Output:
	// 0s SEND_OK broker-a down: false
	// 10s SEND_OK broker-a down: false
	// 20s SEND_OK broker-a down: true
}
