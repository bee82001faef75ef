package core_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/producerd/producerd/core"
	"github.com/producerd/producerd/devbroker"
	"github.com/producerd/producerd/plugins/sdk"
	"github.com/producerd/producerd/remoting"
)

func storedAnywhere(dev *devbroker.Cluster) int {
	n := 0
	for _, b := range dev.Brokers() {
		n += len(b.Messages(""))
	}
	return n
}

// Finding 3: a route without a writable master queue is a precise error; TBW102 is not
// tried (auto-create is on and would store the message on the other broker) and nothing is
// stored anywhere.
func TestRouteWithoutWritableQueue(t *testing.T) {
	t.Parallel()
	cases := map[string]struct {
		setup func(t *testing.T, dev *devbroker.Cluster)
		want  string
	}{
		"read-only on the only broker with the topic": {
			setup: func(t *testing.T, dev *devbroker.Cluster) {
				if err := dev.Broker("broker-a").SetTopicPerm("RO", 4); err != nil {
					t.Fatal(err)
				}
			},
			want: "topic RO: broker-a perm=R",
		},
		"slave only": {
			setup: func(t *testing.T, dev *devbroker.Cluster) {
				setFault(t, dev.Broker("broker-a"), devbroker.Fault{Route: devbroker.RouteSlaveOnly})
			},
			want: "topic RO: no master for broker-a",
		},
		"empty route": {
			setup: func(t *testing.T, dev *devbroker.Cluster) { dev.SetRoute("RO", []byte(`{}`)) },
			want:  "topic RO: the route lists no queues",
		},
	}
	for name, tc := range cases {
		t.Run(strings.ReplaceAll(name, " ", "_"), func(t *testing.T) {
			t.Parallel()
			dev := startDev(t, devbroker.Config{AutoCreate: true, Topics: map[string]int{}})
			// The topic lives on broker-a only; broker-b could auto-create it from TBW102.
			if err := devCreateOn(dev.Broker("broker-a"), "RO"); err != nil {
				t.Fatal(err)
			}
			tc.setup(t, dev)
			p := devProducer(t, dev, nil)
			_, err := p.Send(context.Background(), &core.Message{Topic: "RO", Body: []byte("x")})
			if !errors.Is(err, core.ErrNoWritableQueue) || !errors.Is(err, core.ErrNoRoute) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("send: %v; want ErrNoWritableQueue with %q", err, tc.want)
			}
			if !strings.Contains(err.Error(), dev.NameServerAddr()) {
				t.Fatalf("error %q does not name the NameServer %s", err, dev.NameServerAddr())
			}
			if n := storedAnywhere(dev); n != 0 {
				t.Fatalf("%d messages stored", n)
			}
			for _, b := range dev.Brokers() {
				if b.Stats().Sends != 0 {
					t.Fatalf("%s received a send", b.Name())
				}
			}
		})
	}
}

// devCreateOn creates topic with 4 queues on one broker only, through the admin request.
func devCreateOn(b *devbroker.Broker, topic string) error {
	rc, err := remoting.NewClient(remoting.Config{})
	if err != nil {
		return err
	}
	defer rc.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	resp, err := rc.InvokeSync(ctx, b.Addr(), remoting.NewRequest(remoting.UpdateAndCreateTopic, map[string]string{
		"topic": topic, "defaultTopic": "TBW102", "readQueueNums": "4", "writeQueueNums": "4", "perm": "6",
		"topicFilterType": "SINGLE_TAG", "topicSysFlag": "0", "order": "false"}, nil))
	if err != nil {
		return err
	}
	return remoting.ResponseError(b.Addr(), resp)
}

// Finding 9: an unknown topic with auto-create off is ErrTopicNotExist (it keeps the
// NameServer's TOPIC_NOT_EXIST); a NameServer that cannot be reached is
// ErrNameServerUnreachable, not "no route".
func TestRouteErrorsKeepTheirCause(t *testing.T) {
	t.Parallel()
	dev := startDev(t, devbroker.Config{})
	p := devProducer(t, dev, func(c *core.ProducerConfig) { c.NoAutoCreate = true })
	_, err := p.Send(context.Background(), &core.Message{Topic: "Unknown", Body: []byte("x")})
	var re *remoting.Error
	if !errors.Is(err, core.ErrTopicNotExist) || !errors.As(err, &re) || re.Code != remoting.TopicNotExist {
		t.Fatalf("unknown topic: %v; want ErrTopicNotExist keeping TOPIC_NOT_EXIST", err)
	}

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dead := ln.Addr().String()
	ln.Close() // nothing listens there now
	p2, err := core.NewProducer(core.ProducerConfig{Group: "g_ns_down", Client: core.ClientConfig{NameServers: []string{dead}}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p2.Close(context.Background()) })
	_, err = p2.Send(context.Background(), &core.Message{Topic: "T", Body: []byte("x")})
	if !errors.Is(err, core.ErrNameServerUnreachable) || !errors.Is(err, remoting.ErrConnect) || !strings.Contains(err.Error(), dead) {
		t.Fatalf("NameServer down: %v; want ErrNameServerUnreachable naming %s with the connect error", err, dead)
	}
	if errors.Is(err, core.ErrTopicNotExist) {
		t.Fatalf("NameServer down reported as an unknown topic: %v", err)
	}
}

// Finding 8: absurd route data is refused before anything is allocated for it, with an
// error naming the NameServer and the topic, within the send's budget.
func TestAbsurdRoutesRefused(t *testing.T) {
	t.Parallel()
	dev := startDev(t, devbroker.Config{})
	addr := dev.Broker("broker-a").Addr()
	brokerData := fmt.Sprintf(`{"brokerAddrs":{"0":%q},"brokerName":"b","cluster":"c"}`, addr)
	var many strings.Builder
	many.WriteString(`{"brokerDatas":[`)
	for i := range 60000 {
		if i > 0 {
			many.WriteString(",")
		}
		fmt.Fprintf(&many, `{"brokerAddrs":{"0":"127.0.0.1:%d"},"brokerName":"b%d","cluster":"c"}`, 10000+i%50000, i)
	}
	many.WriteString(`],"queueDatas":[]}`)
	// Within the per-broker (1024) and per-route (256) bounds, but 262144 queues in all
	// (4M with the former 4096 brokers: 170 MB of daemon memory per topic).
	var product strings.Builder
	product.WriteString(`{"brokerDatas":[`)
	for i := range 256 {
		if i > 0 {
			product.WriteString(",")
		}
		fmt.Fprintf(&product, `{"brokerAddrs":{"0":%q},"brokerName":"b%d","cluster":"c"}`, addr, i)
	}
	product.WriteString(`],"queueDatas":[`)
	for i := range 256 {
		if i > 0 {
			product.WriteString(",")
		}
		fmt.Fprintf(&product, `{"brokerName":"b%d","perm":6,"readQueueNums":1024,"writeQueueNums":1024}`, i)
	}
	product.WriteString(`]}`)
	var addrs strings.Builder
	for i := range 1000 {
		fmt.Fprintf(&addrs, `,"%d":"127.0.0.1:%d"`, i+1, 10000+i)
	}
	cases := map[string]struct {
		body, want string
	}{
		"writeQueueNums 1e9": {
			body: `{"brokerDatas":[` + brokerData + `],"queueDatas":[{"brokerName":"b","perm":6,"readQueueNums":4,"writeQueueNums":1000000000}]}`,
			want: "broker b has 1000000000 queues, the limit is 1024",
		},
		"orderTopicConf b:1e9": {
			body: `{"orderTopicConf":"b:1000000000","brokerDatas":[` + brokerData + `],"queueDatas":[]}`,
			want: `orderTopicConf gives broker b "1000000000" queues, the limit is 1024`,
		},
		"negative queues": {
			body: `{"brokerDatas":[` + brokerData + `],"queueDatas":[{"brokerName":"b","perm":6,"readQueueNums":4,"writeQueueNums":-5}]}`,
			want: "broker b has -5 queues",
		},
		"60000 brokers":      {body: many.String(), want: "60000 brokers, the limit is 256"},
		"256 brokers x 1024": {body: product.String(), want: "more than 8192 queues in total"},
		"orderTopicConf 9 x 1024": {
			body: `{"orderTopicConf":"b:1024;b:1024;b:1024;b:1024;b:1024;b:1024;b:1024;b:1024;b:1024","brokerDatas":[` + brokerData + `],"queueDatas":[]}`,
			want: "orderTopicConf has more than 8192 queues in total",
		},
		"1001 broker addresses": {
			body: `{"brokerDatas":[{"brokerAddrs":{"0":"` + addr + `"` + addrs.String() + `},"brokerName":"b","cluster":"c"}],"queueDatas":[{"brokerName":"b","perm":6,"readQueueNums":4,"writeQueueNums":4}]}`,
			want: "broker b has 1001 addresses, the limit is 64",
		},
		"not JSON": {body: `{"brokerDatas":[`, want: "parse topic route"},
	}
	p := devProducer(t, dev, nil)
	for name, tc := range cases {
		topic := "Absurd" + strings.NewReplacer(" ", "", ":", "").Replace(name)
		dev.SetRoute(topic, []byte(tc.body))
		var before runtime.MemStats
		runtime.ReadMemStats(&before)
		_, err := p.Send(context.Background(), &core.Message{Topic: topic, Body: []byte("x")})
		var after runtime.MemStats
		runtime.ReadMemStats(&after)
		if !errors.Is(err, core.ErrBadRoute) || !strings.Contains(err.Error(), tc.want) ||
			!strings.Contains(err.Error(), "topic "+topic) || !strings.Contains(err.Error(), dev.NameServerAddr()) {
			t.Fatalf("%s: %v; want ErrBadRoute with %q naming the topic and NameServer", name, err, tc.want)
		}
		// A billion queues would allocate gigabytes; the bound keeps the send small.
		if grown := after.TotalAlloc - before.TotalAlloc; grown > 256<<20 {
			t.Fatalf("%s: the send allocated %d MiB", name, grown>>20)
		}
	}
	if n := storedAnywhere(dev); n != 0 {
		t.Fatalf("%d messages stored", n)
	}
}

// Finding 4: zero means zero: async_retries 0 is one attempt even with sync retries on,
// and retries 0 leaves async retries at their default.
func TestZeroRetriesMeanZero(t *testing.T) {
	t.Parallel()
	dev := startDev(t, devbroker.Config{})
	setFault(t, dev.Broker("broker-a"), devbroker.Fault{Resets: 1000})
	first := func(s *sdk.Selection) (int, error) {
		for i, q := range s.Queues {
			if (s.Attempt == 0) == (q.Broker == "broker-a") {
				return i, nil
			}
		}
		return 0, nil
	}
	ctx := context.Background()
	var se *core.SendError

	noAsync := devProducer(t, dev, func(c *core.ProducerConfig) {
		c.Group += "_noasync"
		c.Strategy = &recorder{index: first}
		c.NoAsyncRetries = true
	})
	_, err := noAsync.SendFuture(ctx, &core.Message{Topic: "T", Body: []byte("x")}).Wait(ctx)
	if !errors.As(err, &se) || se.Attempts != 1 {
		t.Fatalf("async with NoAsyncRetries: %v; want one failed attempt", err)
	}
	if _, err := noAsync.Send(ctx, &core.Message{Topic: "T", Body: []byte("x")}); err != nil {
		t.Fatalf("sync with NoAsyncRetries keeps its retries: %v", err)
	}

	noSync := devProducer(t, dev, func(c *core.ProducerConfig) {
		c.Group += "_nosync"
		c.Strategy = &recorder{index: first}
		c.NoRetries = true
	})
	if _, err := noSync.Send(ctx, &core.Message{Topic: "T", Body: []byte("x")}); !errors.As(err, &se) || se.Attempts != 1 {
		t.Fatalf("sync with NoRetries: %v; want one failed attempt", err)
	}
	res, err := noSync.SendFuture(ctx, &core.Message{Topic: "T", Body: []byte("x")}).Wait(ctx)
	if err != nil || res.Attempts != 2 {
		t.Fatalf("async with NoRetries keeps its retries: %+v %v", res, err)
	}
}

// Finding 8: a malformed send answer is an error naming the broker and the field, counted
// as a broker error for the strategy, never a SEND_OK with made-up values.
func TestMalformedSendAnswers(t *testing.T) {
	t.Parallel()
	cases := map[string]struct {
		m    devbroker.Malform
		want string
	}{
		"no msgId":           {devbroker.MalformNoMsgID, "field msgId: missing"},
		"no queueId":         {devbroker.MalformNoQueueID, "field queueId: missing"},
		"text queueOffset":   {devbroker.MalformBadQueueOffset, `field queueOffset: "twelve" is not an offset`},
		"request-flag frame": {devbroker.MalformRequestFlag, "is not flagged as a response"},
	}
	for name, tc := range cases {
		for _, async := range []bool{false, true} {
			t.Run(fmt.Sprintf("%s/async_%v", strings.ReplaceAll(name, " ", "_"), async), func(t *testing.T) {
				t.Parallel()
				dev := startDev(t, devbroker.Config{Brokers: []string{"broker-a"}})
				setFault(t, dev.Broker("broker-a"), devbroker.Fault{Malform: tc.m})
				rec := &recorder{}
				p := devProducer(t, dev, func(c *core.ProducerConfig) {
					c.Strategy = rec
					c.SendTimeout = 10 * time.Second // "no response" would take this long
				})
				ctx := context.Background()
				start := time.Now()
				var err error
				if async {
					_, err = p.SendFuture(ctx, &core.Message{Topic: "T", Body: []byte("x")}).Wait(ctx)
				} else {
					_, err = p.Send(ctx, &core.Message{Topic: "T", Body: []byte("x")})
				}
				if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), dev.Broker("broker-a").Addr()) {
					t.Fatalf("got %v; want an error naming the broker and %q", err, tc.want)
				}
				if errors.Is(err, remoting.ErrTimeout) || time.Since(start) > 5*time.Second {
					t.Fatalf("a malformed answer ended as a timeout: %v", err)
				}
				var se *core.SendError
				if !async && (!errors.As(err, &se) || se.Attempts != 1) {
					t.Fatalf("%v; want no retry after an answer (the message may be stored)", err)
				}
				if n := storedAnywhere(dev); n != 1 {
					t.Fatalf("%d copies stored, want 1", n)
				}
				_, outs := rec.snapshot()
				if len(outs) == 0 || outs[0].Kind != sdk.OutcomeBrokerError || !outs[0].Isolation {
					t.Fatalf("outcomes %+v; want a broker error with isolation", outs)
				}
			})
		}
	}
}

// Finding 7: a blank user-property name or value is refused before any I/O, as Java's
// putUserProperty does (the broker would drop the pair and acknowledge the message).
func TestBlankPropertyRefused(t *testing.T) {
	t.Parallel()
	for _, props := range []map[string]string{{"e": "", "f": "v"}, {"e": "  "}, {" ": "v"}} {
		err := (&core.Message{Topic: "T", Body: []byte("x"), Properties: props}).Validate(0)
		var ve *core.ValidationError
		if !errors.As(err, &ve) || ve.Rule != "property.blank" {
			t.Errorf("properties %q: %v; want property.blank", props, err)
		}
	}
}
