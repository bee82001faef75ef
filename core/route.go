package core

import (
	"encoding/json"
	"fmt"
	"slices"
	"sort"
	"strconv"
	"strings"

	"github.com/producerd/producerd/plugins/sdk"
)

// Permission bits of a queue (spec §3.1).
const (
	PermPriority = 8
	PermRead     = 4
	PermWrite    = 2
	PermInherit  = 1
)

// masterID is the brokerId of a master in BrokerData.brokerAddrs.
const masterID = 0

// TopicRoute is a topic's route as the NameServer returns it (GET_ROUTEINFO_BY_TOPIC).
type TopicRoute struct {
	OrderTopicConf string       `json:"orderTopicConf,omitempty"`
	QueueDatas     []QueueData  `json:"queueDatas"`
	BrokerDatas    []BrokerData `json:"brokerDatas"`
}

// QueueData is one broker's queue configuration for a topic.
type QueueData struct {
	BrokerName     string `json:"brokerName"`
	ReadQueueNums  int    `json:"readQueueNums"`
	WriteQueueNums int    `json:"writeQueueNums"`
	Perm           int    `json:"perm"`
	TopicSysFlag   int    `json:"topicSysFlag"`
}

// BrokerData is one broker group: its name and the address of each broker id (0 = master).
type BrokerData struct {
	Cluster     string           `json:"cluster"`
	BrokerName  string           `json:"brokerName"`
	BrokerAddrs map[int64]string `json:"brokerAddrs"`
}

// UnmarshalJSON accepts the pre-4.9.0 spelling topicSynFlag as well as topicSysFlag.
func (q *QueueData) UnmarshalJSON(b []byte) error {
	var raw struct {
		BrokerName     string `json:"brokerName"`
		ReadQueueNums  int    `json:"readQueueNums"`
		WriteQueueNums int    `json:"writeQueueNums"`
		Perm           int    `json:"perm"`
		TopicSysFlag   *int   `json:"topicSysFlag"`
		TopicSynFlag   *int   `json:"topicSynFlag"`
	}
	if err := json.Unmarshal(b, &raw); err != nil {
		return err
	}
	*q = QueueData{BrokerName: raw.BrokerName, ReadQueueNums: raw.ReadQueueNums,
		WriteQueueNums: raw.WriteQueueNums, Perm: raw.Perm}
	switch {
	case raw.TopicSysFlag != nil:
		q.TopicSysFlag = *raw.TopicSysFlag
	case raw.TopicSynFlag != nil:
		q.TopicSysFlag = *raw.TopicSynFlag
	}
	return nil
}

// ParseTopicRoute decodes a route body in either form the NameServer writes: standard
// JSON, or fastjson's default with bare integer object keys ({0:"127.0.0.1:10911"}).
func ParseTopicRoute(body []byte) (*TopicRoute, error) {
	var r TopicRoute
	if err := json.Unmarshal(QuoteBareKeys(body), &r); err != nil {
		return nil, fmt.Errorf("core: parse topic route: %w", err)
	}
	return &r, nil
}

// QuoteBareKeys rewrites bare integer object keys ({0:"a"} or ,-1:"b") into quoted ones,
// leaving string contents untouched. Bodies without such keys are returned as is.
func QuoteBareKeys(body []byte) []byte {
	var out []byte // allocated on the first bare key only
	inString, escaped := false, false
	last := 0
	for i := 0; i < len(body); i++ {
		c := body[i]
		if inString {
			switch {
			case escaped:
				escaped = false
			case c == '\\':
				escaped = true
			case c == '"':
				inString = false
			}
			continue
		}
		if c == '"' {
			inString = true
			continue
		}
		if c != '{' && c != ',' {
			continue
		}
		// Look for optional space, -?digits, optional space, ':'.
		j := i + 1
		for j < len(body) && isSpace(body[j]) {
			j++
		}
		start := j
		if j < len(body) && body[j] == '-' {
			j++
		}
		digits := j
		for j < len(body) && body[j] >= '0' && body[j] <= '9' {
			j++
		}
		if j == digits {
			continue
		}
		end := j
		for j < len(body) && isSpace(body[j]) {
			j++
		}
		if j >= len(body) || body[j] != ':' {
			continue
		}
		if out == nil {
			out = make([]byte, 0, len(body)+16)
		}
		out = append(out, body[last:start]...)
		out = append(out, '"')
		out = append(out, body[start:end]...)
		out = append(out, '"')
		last = end
		i = end - 1
	}
	if out == nil {
		return body
	}
	return append(out, body[last:]...)
}

func isSpace(c byte) bool { return c == ' ' || c == '\t' || c == '\n' || c == '\r' }

// masterAddr returns the master address of a broker group, or "".
func (b *BrokerData) masterAddr() string { return b.BrokerAddrs[masterID] }

// publishQueues builds the ordered publish queue list (spec §3.4): orderTopicConf when
// present; otherwise queue data sorted by broker name, writable, with a master, queue ids
// 0..writeQueueNums-1.
func (r *TopicRoute) publishQueues() (queues []sdk.Queue, ordered bool) {
	if conf := strings.TrimSpace(r.OrderTopicConf); conf != "" {
		for _, item := range strings.Split(conf, ";") {
			name, count, ok := strings.Cut(item, ":")
			if !ok {
				continue
			}
			n, err := strconv.Atoi(strings.TrimSpace(count))
			if err != nil {
				continue
			}
			for i := 0; i < n; i++ {
				queues = append(queues, sdk.Queue{Broker: strings.TrimSpace(name), ID: int32(i)})
			}
		}
		return queues, true
	}
	qds := slices.Clone(r.QueueDatas)
	sort.SliceStable(qds, func(i, j int) bool { return qds[i].BrokerName < qds[j].BrokerName })
	for _, qd := range qds {
		if qd.Perm&PermWrite == 0 {
			continue
		}
		bd := r.broker(qd.BrokerName)
		if bd == nil || bd.masterAddr() == "" {
			continue
		}
		for i := 0; i < qd.WriteQueueNums; i++ {
			queues = append(queues, sdk.Queue{Broker: qd.BrokerName, ID: int32(i)})
		}
	}
	return queues, false
}

func (r *TopicRoute) broker(name string) *BrokerData {
	for i := range r.BrokerDatas {
		if r.BrokerDatas[i].BrokerName == name {
			return &r.BrokerDatas[i]
		}
	}
	return nil
}

// withDefaultQueueNums returns a copy of a TBW102 route clamped to the producer's
// defaultTopicQueueNums (spec §3.5).
func (r *TopicRoute) withDefaultQueueNums(n int) *TopicRoute {
	c := *r
	c.QueueDatas = slices.Clone(r.QueueDatas)
	for i := range c.QueueDatas {
		q := min(n, c.QueueDatas[i].ReadQueueNums)
		c.QueueDatas[i].ReadQueueNums, c.QueueDatas[i].WriteQueueNums = q, q
	}
	return &c
}

// Default route sanity bounds (ClientConfig.MaxQueuesPerBroker, MaxBrokersPerRoute,
// MaxQueuesPerRoute).
const (
	DefaultMaxQueuesPerBroker = 1024
	DefaultMaxBrokersPerRoute = 256
	DefaultMaxQueuesPerRoute  = 8192
)

// maxAddrsPerBroker bounds the addresses of one broker group (its master and slaves) in
// a route; real groups have a handful.
const maxAddrsPerBroker = 64

// check applies the sanity bounds to a parsed route before anything is allocated for its
// queues: at most maxBrokers broker and queue entries (and orderTopicConf items), each
// with 0..maxQueues queues, at most maxTotal write queues (and read queues) in all, and
// at most maxAddrsPerBroker addresses per broker group. The per-broker and per-route
// bounds alone would let a route carry maxBrokers*maxQueues (4M) queues. It returns
// what is wrong, or "".
func (r *TopicRoute) check(maxQueues, maxBrokers, maxTotal int) string {
	if n := len(r.BrokerDatas); n > maxBrokers {
		return fmt.Sprintf("%d brokers, the limit is %d", n, maxBrokers)
	}
	for _, bd := range r.BrokerDatas {
		if n := len(bd.BrokerAddrs); n > maxAddrsPerBroker {
			return fmt.Sprintf("broker %s has %d addresses, the limit is %d", bd.BrokerName, n, maxAddrsPerBroker)
		}
	}
	if n := len(r.QueueDatas); n > maxBrokers {
		return fmt.Sprintf("%d queue entries, the limit is %d", n, maxBrokers)
	}
	var writeTotal, readTotal int
	for _, qd := range r.QueueDatas {
		for _, n := range []int{qd.WriteQueueNums, qd.ReadQueueNums} {
			if n < 0 || n > maxQueues {
				return fmt.Sprintf("broker %s has %d queues, the limit is %d", qd.BrokerName, n, maxQueues)
			}
		}
		writeTotal += qd.WriteQueueNums
		readTotal += qd.ReadQueueNums
		if max(writeTotal, readTotal) > maxTotal {
			return fmt.Sprintf("more than %d queues in total (the limit per route)", maxTotal)
		}
	}
	if conf := strings.TrimSpace(r.OrderTopicConf); conf != "" {
		if n := strings.Count(conf, ";") + 1; n > maxBrokers {
			return fmt.Sprintf("orderTopicConf has %d brokers, the limit is %d", n, maxBrokers)
		}
		total := 0
		for _, item := range strings.Split(conf, ";") {
			name, count, ok := strings.Cut(item, ":")
			if !ok {
				return fmt.Sprintf("orderTopicConf item %q is not broker:count", item)
			}
			n, err := strconv.Atoi(strings.TrimSpace(count))
			if err != nil || n < 0 || n > maxQueues {
				return fmt.Sprintf("orderTopicConf gives broker %s %q queues, the limit is %d", strings.TrimSpace(name), count, maxQueues)
			}
			if total += n; total > maxTotal {
				return fmt.Sprintf("orderTopicConf has more than %d queues in total (the limit per route)", maxTotal)
			}
		}
	}
	return ""
}

// unwritable explains why a route yields no publish queue, broker by broker, e.g.
// "broker-a perm=R; no master for broker-b".
func (r *TopicRoute) unwritable() string {
	if len(r.QueueDatas) == 0 && strings.TrimSpace(r.OrderTopicConf) == "" {
		return "the route lists no queues"
	}
	var why []string
	for _, qd := range r.QueueDatas {
		switch bd := r.broker(qd.BrokerName); {
		case qd.Perm&PermWrite == 0:
			why = append(why, fmt.Sprintf("%s perm=%s", qd.BrokerName, permString(qd.Perm)))
		case bd == nil || bd.masterAddr() == "":
			why = append(why, "no master for "+qd.BrokerName)
		case qd.WriteQueueNums == 0:
			why = append(why, qd.BrokerName+" has 0 write queues")
		}
	}
	if len(why) == 0 {
		return "no publish queue in orderTopicConf " + strconv.Quote(r.OrderTopicConf)
	}
	return strings.Join(why, "; ")
}

// permString renders the read and write bits of perm: "RW", "R", "W" or "-".
func permString(perm int) string {
	s := ""
	if perm&PermRead != 0 {
		s += "R"
	}
	if perm&PermWrite != 0 {
		s += "W"
	}
	if s == "" {
		return "-"
	}
	return s
}
