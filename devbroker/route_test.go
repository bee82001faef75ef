package devbroker_test

import (
	"strings"
	"testing"

	"github.com/producerd/producerd/core"
	"github.com/producerd/producerd/devbroker"
	"github.com/producerd/producerd/remoting"
)

func TestRouteJSONForms(t *testing.T) {
	t.Parallel()
	c := start(t, devbroker.Config{Brokers: []string{"broker-b", "broker-a"}, Topics: map[string]int{"TopicTest": 4}})
	a, b := c.Broker("broker-a").Addr(), c.Broker("broker-b").Addr()
	bare := `{"brokerDatas":[{"brokerAddrs":{0:"` + a + `"},"brokerName":"broker-a","cluster":"DefaultCluster","enableActingMaster":false},` +
		`{"brokerAddrs":{0:"` + b + `"},"brokerName":"broker-b","cluster":"DefaultCluster","enableActingMaster":false}],` +
		`"filterServerTable":{},"queueDatas":[{"brokerName":"broker-a","perm":6,"readQueueNums":4,"topicSysFlag":0,"writeQueueNums":4},` +
		`{"brokerName":"broker-b","perm":6,"readQueueNums":4,"topicSysFlag":0,"writeQueueNums":4}]}`
	standard := strings.ReplaceAll(bare, `{0:`, `{"0":`)
	tests := []struct {
		name    string
		version int32
		ext     map[string]string
		want    string
	}{
		{"rocketmq-client-go 317", 317, nil, bare},
		{"4.9.3 399", 399, nil, bare},
		{"4.9.4 401", 401, nil, standard},
		{"4.9.8 409", 409, nil, standard},
		{"317 with acceptStandardJsonOnly", 317, map[string]string{"acceptStandardJsonOnly": "true"}, standard},
	}
	for _, st := range []remoting.SerializeType{remoting.JSON, remoting.RocketMQ} {
		rc := newClient(t, remoting.Config{Serialize: st})
		for _, tt := range tests {
			t.Run(st.String()+"/"+tt.name, func(t *testing.T) {
				ext := map[string]string{"topic": "TopicTest"}
				for k, v := range tt.ext {
					ext[k] = v
				}
				req := remoting.NewRequest(remoting.GetRouteInfoByTopic, ext, nil)
				req.Version = tt.version
				resp := invoke(t, rc, c.NameServerAddr(), req)
				if resp.Code != 0 || string(resp.Body) != tt.want {
					t.Fatalf("code %d body\n%s\nwant\n%s", resp.Code, resp.Body, tt.want)
				}
				if resp.Serialize != st {
					t.Errorf("answered in %v, asked in %v", resp.Serialize, st)
				}
				route, err := core.ParseTopicRoute(resp.Body)
				if err != nil || route.BrokerDatas[1].BrokerAddrs[0] != b {
					t.Errorf("core cannot parse it: %v", err)
				}
			})
		}
	}
	t.Run("unknown topic", func(t *testing.T) {
		rc := newClient(t, remoting.Config{})
		resp := invoke(t, rc, c.NameServerAddr(), remoting.NewRequest(remoting.GetRouteInfoByTopic, map[string]string{"topic": "Nope"}, nil))
		want := "No topic route info in name server for the topic: Nope\nSee http://rocketmq.apache.org/docs/faq/ for further details."
		if resp.Code != int32(remoting.TopicNotExist) || resp.Remark != want || len(resp.Body) != 0 {
			t.Errorf("code %d remark %q body %q", resp.Code, resp.Remark, resp.Body)
		}
	})
	t.Run("cluster info", func(t *testing.T) {
		rc := newClient(t, remoting.Config{})
		resp := invoke(t, rc, c.NameServerAddr(), remoting.NewRequest(remoting.GetBrokerClusterInfo, nil, nil))
		want := `{"brokerAddrTable":{"broker-a":{"brokerAddrs":{0:"` + a + `"},"brokerName":"broker-a","cluster":"DefaultCluster","enableActingMaster":false},` +
			`"broker-b":{"brokerAddrs":{0:"` + b + `"},"brokerName":"broker-b","cluster":"DefaultCluster","enableActingMaster":false}},` +
			`"clusterAddrTable":{"DefaultCluster":["broker-a","broker-b"]}}`
		if resp.Code != 0 || string(resp.Body) != want {
			t.Errorf("code %d body\n%s\nwant\n%s", resp.Code, resp.Body, want)
		}
	})
}

func TestResponseEncoding(t *testing.T) {
	t.Parallel()
	tests := []struct {
		enc  devbroker.Encoding
		req  remoting.SerializeType
		want remoting.SerializeType
	}{
		{devbroker.EncodingAsRequest, remoting.JSON, remoting.JSON},
		{devbroker.EncodingAsRequest, remoting.RocketMQ, remoting.RocketMQ},
		{devbroker.EncodingJSON, remoting.RocketMQ, remoting.JSON},
		{devbroker.EncodingRocketMQ, remoting.JSON, remoting.RocketMQ},
	}
	for _, tt := range tests {
		t.Run(tt.req.String()+"->"+tt.want.String(), func(t *testing.T) {
			t.Parallel()
			c := start(t, devbroker.Config{Topics: map[string]int{"TopicTest": 1}, ResponseEncoding: tt.enc})
			rc := newClient(t, remoting.Config{Serialize: tt.req})
			resp := invoke(t, rc, c.Broker("broker-a").Addr(), sendV2("TopicTest", 0, "body"))
			if resp.Code != 0 || resp.Serialize != tt.want || len(resp.ExtFields["msgId"]) != 32 || resp.ExtFields["queueOffset"] != "0" {
				t.Errorf("code %d in %v, ext %v", resp.Code, resp.Serialize, resp.ExtFields)
			}
		})
	}
}
