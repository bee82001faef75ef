package devbroker

import (
	"strconv"
	"sync/atomic"
	"unicode/utf16"
	"unicode/utf8"

	"github.com/producerd/producerd/remoting"
)

// versionStandardRouteJSON is V4_9_4: from this client version on, a NameServer answers
// routes in standard JSON (spec §1.6, §3.2).
const versionStandardRouteJSON = 401

// Real remark tails (Java FAQUrl.suggestTodo(APPLY_TOPIC_URL)).
const applyTopicHint = "\nSee http://rocketmq.apache.org/docs/faq/ for further details."

// nameServer answers route queries from the brokers' in-process registrations.
type nameServer struct {
	c  *Cluster
	ep *endpoint

	requests, bare, standard, notFound atomic.Int64
}

// NameServerStats counts the NameServer's requests since Start.
type NameServerStats struct {
	// Requests counts every request.
	Requests int64
	// BareKeyRoutes and StandardRoutes count routes answered in fastjson's default form
	// ({0:"..."}) and in standard JSON; TopicNotExist counts unknown-topic answers.
	BareKeyRoutes, StandardRoutes, TopicNotExist int64
}

// NameServerStats returns the NameServer's counters.
func (c *Cluster) NameServerStats() NameServerStats {
	ns := c.ns
	return NameServerStats{Requests: ns.requests.Load(), BareKeyRoutes: ns.bare.Load(),
		StandardRoutes: ns.standard.Load(), TopicNotExist: ns.notFound.Load()}
}

func newNameServer(c *Cluster) *nameServer {
	ns := &nameServer{c: c}
	ns.ep = &endpoint{
		name: "namesrv", log: c.log.Named("namesrv"), maxFrame: c.cfg.MaxFrameSize,
		enc: c.cfg.ResponseEncoding, version: c.cfg.Version, wg: &c.wg, serve: ns.serve,
		coalesce: true,
	}
	return ns
}

func (ns *nameServer) serve(cn *conn, req *remoting.Command) bool {
	ns.requests.Add(1)
	var resp *remoting.Command
	switch req.RequestCode() {
	case remoting.GetRouteInfoByTopic:
		resp = ns.routeInfo(req)
	case remoting.GetBrokerClusterInfo:
		resp = remoting.NewResponse(req, remoting.Success, "")
		resp.Body = ns.clusterInfo()
	default:
		resp = notSupported(req)
	}
	if !req.IsOneway() {
		cn.write(resp)
	}
	return true
}

func notSupported(req *remoting.Command) *remoting.Command {
	return remoting.NewResponse(req, remoting.RequestCodeNotSupported,
		" request type "+strconv.Itoa(int(req.Code))+" not supported")
}

func (ns *nameServer) routeInfo(req *remoting.Command) *remoting.Command {
	topic := req.ExtFields["topic"]
	if body, ok := ns.c.routeOverride(topic); ok {
		ns.standard.Add(1)
		resp := remoting.NewResponse(req, remoting.Success, "")
		resp.Body = body
		return resp
	}
	standard := req.Version >= versionStandardRouteJSON || req.ExtFields["acceptStandardJsonOnly"] == "true"
	body := ns.routeJSON(topic, standard)
	switch {
	case body == nil:
		ns.notFound.Add(1)
	case standard:
		ns.standard.Add(1)
	default:
		ns.bare.Add(1)
	}
	if body == nil {
		return remoting.NewResponse(req, remoting.TopicNotExist,
			"No topic route info in name server for the topic: "+topic+applyTopicHint)
	}
	resp := remoting.NewResponse(req, remoting.Success, "")
	resp.Body = body
	return resp
}

// routeJSON renders a TopicRouteData as the NameServer does: fastjson with fields in
// alphabetical order and no spaces; standard=false writes the brokerAddrs keys bare
// ({0:"..."}), standard=true quotes them and escapes non-ASCII (BrowserCompatible). It
// returns nil when no routed broker has the topic.
func (ns *nameServer) routeJSON(topic string, standard bool) []byte {
	type qd struct {
		broker                   *Broker
		read, write, perm, flags int
	}
	var qds []qd
	for _, b := range ns.c.routeBrokers() {
		if tc, ok := b.topic(topic); ok {
			qds = append(qds, qd{b, tc.read, tc.write, tc.perm, tc.sysFlag})
		}
	}
	if len(qds) == 0 {
		return nil
	}
	w := jsonWriter{standard: standard}
	w.raw(`{"brokerDatas":[`)
	for i, q := range qds {
		if i > 0 {
			w.raw(",")
		}
		w.brokerData(q.broker)
	}
	w.raw(`],"filterServerTable":{},"queueDatas":[`)
	for i, q := range qds {
		if i > 0 {
			w.raw(",")
		}
		w.raw(`{"brokerName":`)
		w.str(q.broker.name)
		w.raw(`,"perm":`)
		w.int(q.perm)
		w.raw(`,"readQueueNums":`)
		w.int(q.read)
		w.raw(`,"topicSysFlag":`)
		w.int(q.flags)
		w.raw(`,"writeQueueNums":`)
		w.int(q.write)
		w.raw("}")
	}
	w.raw("]}")
	return w.b
}

// clusterInfo renders ClusterInfo; the real NameServer always uses the bare-key form here.
func (ns *nameServer) clusterInfo() []byte {
	brokers := ns.c.routeBrokers()
	w := jsonWriter{}
	w.raw(`{"brokerAddrTable":{`)
	for i, b := range brokers {
		if i > 0 {
			w.raw(",")
		}
		w.str(b.name)
		w.raw(":")
		w.brokerData(b)
	}
	w.raw(`},"clusterAddrTable":{`)
	if len(brokers) > 0 {
		w.str(ns.c.cfg.ClusterName)
		w.raw(":[")
		for i, b := range brokers {
			if i > 0 {
				w.raw(",")
			}
			w.str(b.name)
		}
		w.raw("]")
	}
	w.raw("}}")
	return w.b
}

// jsonWriter writes fastjson-shaped JSON.
type jsonWriter struct {
	b        []byte
	standard bool
}

func (w *jsonWriter) raw(s string) { w.b = append(w.b, s...) }
func (w *jsonWriter) int(n int)    { w.b = strconv.AppendInt(w.b, int64(n), 10) }

// brokerData writes a 5.x BrokerData of a master-only broker group (a slave-only one
// with RouteSlaveOnly).
func (w *jsonWriter) brokerData(b *Broker) {
	w.raw(`{"brokerAddrs":{`)
	id := "0"
	if b.slaveOnly() {
		id = "1"
	}
	if w.standard {
		w.raw(`"` + id + `":`)
	} else {
		w.raw(id + `:`)
	}
	w.str(b.Addr())
	w.raw(`},"brokerName":`)
	w.str(b.name)
	w.raw(`,"cluster":`)
	w.str(b.c.cfg.ClusterName)
	w.raw(`,"enableActingMaster":false}`)
}

// str writes a JSON string; in standard (BrowserCompatible) mode non-ASCII is escaped.
func (w *jsonWriter) str(s string) {
	const hexDigits = "0123456789abcdef"
	w.b = append(w.b, '"')
	for _, r := range s {
		switch {
		case r == '"' || r == '\\':
			w.b = append(w.b, '\\', byte(r))
		case r < 0x20:
			w.b = append(w.b, '\\', 'u', '0', '0', hexDigits[r>>4], hexDigits[r&0xF])
		case r < utf8.RuneSelf || !w.standard:
			w.b = utf8.AppendRune(w.b, r)
		default:
			for _, u := range utf16.AppendRune(nil, r) {
				w.b = append(w.b, '\\', 'u', hexDigits[u>>12], hexDigits[u>>8&0xF], hexDigits[u>>4&0xF], hexDigits[u&0xF])
			}
		}
	}
	w.b = append(w.b, '"')
}
