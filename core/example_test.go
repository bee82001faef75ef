package core_test

import (
	"context"
	"fmt"
	"log"

	"github.com/producerd/producerd/core"
	"github.com/producerd/producerd/devbroker"
)

// exampleCluster starts an in-process dev broker so the examples run anywhere; with a
// real RocketMQ, use its NameServer address instead.
func exampleCluster() *devbroker.Cluster {
	dev, err := devbroker.Start(context.Background(), devbroker.Config{
		Brokers: []string{"broker-a", "broker-b"},
		Topics:  map[string]int{"Orders": 4},
	})
	if err != nil {
		log.Fatal(err)
	}
	return dev
}

func ExampleProducer_Send() {
	dev := exampleCluster()
	defer dev.Close()

	p, err := core.NewProducer(core.ProducerConfig{
		Group:  "example_group",
		Client: core.ClientConfig{NameServers: []string{dev.NameServerAddr()}},
	})
	if err != nil {
		log.Fatal(err)
	}
	defer p.Close(context.Background())

	res, err := p.Send(context.Background(), &core.Message{
		Topic:      "Orders",
		Body:       []byte(`{"order":42}`),
		Tags:       "created",
		Keys:       []string{"order-42"},
		Properties: map[string]string{"source": "example"},
	})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(res.Status, res.Topic, len(res.MsgID))
	// Output: SEND_OK Orders 32
}

func ExampleProducer_SendAsync() {
	dev := exampleCluster()
	defer dev.Close()
	p, err := core.NewProducer(core.ProducerConfig{
		Group:  "example_async",
		Client: core.ClientConfig{NameServers: []string{dev.NameServerAddr()}},
	})
	if err != nil {
		log.Fatal(err)
	}
	defer p.Close(context.Background())

	done := make(chan struct{})
	err = p.SendAsync(context.Background(), &core.Message{Topic: "Orders", Body: []byte("hello")},
		func(res *core.SendResult, err error) {
			defer close(done)
			if err != nil {
				fmt.Println("failed:", err)
				return
			}
			fmt.Println(res.Status)
		})
	if err != nil {
		log.Fatal(err)
	}
	<-done

	// The same with a future.
	res, err := p.SendFuture(context.Background(), &core.Message{Topic: "Orders", Body: []byte("again")}).Wait(context.Background())
	fmt.Println(res.Status, err)
	// Output:
	// SEND_OK
	// SEND_OK <nil>
}

func ExampleProducer_SendBatch() {
	dev := exampleCluster()
	defer dev.Close()
	p, err := core.NewProducer(core.ProducerConfig{
		Group:  "example_batch",
		Client: core.ClientConfig{NameServers: []string{dev.NameServerAddr()}},
	})
	if err != nil {
		log.Fatal(err)
	}
	defer p.Close(context.Background())

	var batch []*core.Message
	for i := range 3 {
		batch = append(batch, &core.Message{Topic: "Orders", Body: []byte(fmt.Sprint("item ", i))})
	}
	res, err := p.SendBatch(context.Background(), batch)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(res.Status, res.Queue.Broker != "")
	// Output: SEND_OK true
}

func ExampleMessage_Validate() {
	err := (&core.Message{Topic: "has space", Body: []byte("x")}).Validate(0)
	fmt.Println(err)
	// Output: core: invalid message: topic.charset: topic name "has space" contains ' '; allowed are letters, digits, '%', '|', '-' and '_'
}
