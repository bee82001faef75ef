package core

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/producerd/producerd/plugins/sdk"
)

func TestQuoteBareKeys(t *testing.T) {
	t.Parallel()
	tests := []struct{ in, want string }{
		{`{0:"a"}`, `{"0":"a"}`},
		{`{0:"a",1:"b"}`, `{"0":"a","1":"b"}`},
		{`{ -1 :"x"}`, `{ "-1" :"x"}`},
		{`{"0":"a"}`, `{"0":"a"}`},
		{`{"s":"{0:1}"}`, `{"s":"{0:1}"}`},     // inside a string: untouched
		{`{"s":"a\",0:1"}`, `{"s":"a\",0:1"}`}, // escaped quote keeps us in the string
		{`[0,1,2]`, `[0,1,2]`},                 // array elements are not keys
		{`{"a":[{7:"x"}],"b":{12:3}}`, `{"a":[{"7":"x"}],"b":{"12":3}}`},
	}
	for _, tt := range tests {
		if got := string(QuoteBareKeys([]byte(tt.in))); got != tt.want {
			t.Errorf("QuoteBareKeys(%s) = %s, want %s", tt.in, got, tt.want)
		}
	}
}

func FuzzQuoteBareKeys(f *testing.F) {
	f.Add([]byte(`{"brokerAddrs":{0:"127.0.0.1:10911"}}`))
	f.Add([]byte(`{"a":"\\",1:2}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		out := QuoteBareKeys(b)
		if len(out) < len(b) {
			t.Fatalf("output shorter than input")
		}
		_, _ = ParseTopicRoute(b) // must not panic
	})
}

func TestParseTopicRouteTestdata(t *testing.T) {
	t.Parallel()
	files, err := filepath.Glob("testdata/routes/*.json")
	if err != nil || len(files) == 0 {
		t.Fatalf("no route testdata: %v", err)
	}
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			body, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			r, err := ParseTopicRoute(body)
			if err != nil {
				t.Fatalf("parse: %v", err)
			}
			if len(r.QueueDatas) == 0 || len(r.BrokerDatas) == 0 {
				t.Fatalf("empty route: %+v", r)
			}
			for _, bd := range r.BrokerDatas {
				if len(bd.BrokerAddrs) == 0 {
					t.Errorf("broker %s has no addresses", bd.BrokerName)
				}
			}
		})
	}
}

func TestPublishQueues(t *testing.T) {
	t.Parallel()
	body, err := os.ReadFile("testdata/routes/old-synflag.json")
	if err != nil {
		t.Fatal(err)
	}
	r, err := ParseTopicRoute(body)
	if err != nil {
		t.Fatal(err)
	}
	got, ordered := r.publishQueues()
	// Sorted by broker; broker-c has no master; broker-d is read-only.
	want := []sdk.Queue{q("broker-a", 0), q("broker-a", 1), q("broker-a", 2), q("broker-b", 0), q("broker-b", 1)}
	if ordered || !slices.Equal(got, want) {
		t.Fatalf("publishQueues = %v (ordered %v), want %v", got, ordered, want)
	}
	if r.QueueDatas[0].TopicSysFlag != 0 || r.QueueDatas[0].BrokerName != "broker-b" {
		t.Fatalf("queue data not decoded: %+v", r.QueueDatas[0])
	}

	r.OrderTopicConf = "broker-b:2;broker-a:1"
	got, ordered = r.publishQueues()
	want = []sdk.Queue{q("broker-b", 0), q("broker-b", 1), q("broker-a", 0)}
	if !ordered || !slices.Equal(got, want) {
		t.Fatalf("orderTopicConf queues = %v (ordered %v), want %v", got, ordered, want)
	}
}

func q(broker string, id int32) sdk.Queue { return sdk.Queue{Broker: broker, ID: id} }

func TestTopicSynFlagSpellings(t *testing.T) {
	t.Parallel()
	for _, body := range []string{
		`{"queueDatas":[{"brokerName":"a","perm":6,"readQueueNums":1,"writeQueueNums":1,"topicSynFlag":3}],"brokerDatas":[]}`,
		`{"queueDatas":[{"brokerName":"a","perm":6,"readQueueNums":1,"writeQueueNums":1,"topicSysFlag":3}],"brokerDatas":[]}`,
	} {
		r, err := ParseTopicRoute([]byte(body))
		if err != nil {
			t.Fatal(err)
		}
		if r.QueueDatas[0].TopicSysFlag != 3 {
			t.Errorf("%s: TopicSysFlag = %d, want 3", body, r.QueueDatas[0].TopicSysFlag)
		}
	}
}

func TestDefaultRouteClamp(t *testing.T) {
	t.Parallel()
	r := &TopicRoute{QueueDatas: []QueueData{{BrokerName: "a", ReadQueueNums: 8, WriteQueueNums: 8, Perm: 7}, {BrokerName: "b", ReadQueueNums: 2, WriteQueueNums: 8, Perm: 7}}}
	c := r.withDefaultQueueNums(4)
	if c.QueueDatas[0].WriteQueueNums != 4 || c.QueueDatas[0].ReadQueueNums != 4 || c.QueueDatas[1].WriteQueueNums != 2 {
		t.Fatalf("clamped = %+v", c.QueueDatas)
	}
	if r.QueueDatas[0].WriteQueueNums != 8 {
		t.Fatal("clamp modified the original route")
	}
}

// Bodies captured from a real Apache RocketMQ 5.3.3 NameServer: the version-409 request
// gets standard JSON, the version-317 one bare integer keys; both must give the same queues.
func TestRealRouteBodiesBothForms(t *testing.T) {
	t.Parallel()
	for _, topic := range []string{"IT_Send", "TBW102"} {
		var lists [][]sdk.Queue
		for _, v := range []string{"v409", "v317"} {
			body, err := os.ReadFile("testdata/routes/real-5.3.3-" + topic + "-" + v + ".json")
			if err != nil {
				t.Fatal(err)
			}
			if bare := slices.Contains([]string{"v317"}, v); bare != strings.Contains(string(body), `{0:"`) {
				t.Fatalf("%s %s: bare-key form = %v not as captured", topic, v, !bare)
			}
			r, err := ParseTopicRoute(body)
			if err != nil {
				t.Fatalf("%s %s: %v", topic, v, err)
			}
			qs, _ := r.publishQueues()
			lists = append(lists, qs)
		}
		if len(lists[0]) != 8 || lists[0][0] != q("broker-a", 0) || lists[0][4] != q("broker-b", 0) {
			t.Fatalf("%s queues = %v", topic, lists[0])
		}
		if !slices.Equal(lists[0], lists[1]) {
			t.Fatalf("%s: forms disagree: %v vs %v", topic, lists[0], lists[1])
		}
	}
}
