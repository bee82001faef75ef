package devbroker

import (
	"encoding/binary"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/producerd/producerd/remoting"
)

// Pull limits of a real broker serving from memory (maxTransferCountOnMessageInMemory,
// maxTransferBytesOnMessageInMemory).
const (
	maxPullNums  = 32
	maxPullBytes = 256 << 10
)

// Topics a producer may not send to (Java TopicValidator.isNotAllowedSendTopic).
var notAllowedSendTopics = map[string]bool{
	"SCHEDULE_TOPIC_XXXX": true, "RMQ_SYS_TRANS_HALF_TOPIC": true, "RMQ_SYS_TRANS_OP_HALF_TOPIC": true,
	"TRANS_CHECK_MAX_TIME_TOPIC": true, "SELF_TEST_TOPIC": true, "OFFSET_MOVED_EVENT": true,
}

func (b *Broker) handle(cn *conn, req *remoting.Command) *remoting.Command {
	switch req.RequestCode() {
	case remoting.SendMessage, remoting.SendReplyMessage:
		return b.handleSend(cn, req, v1Names)
	case remoting.SendMessageV2, remoting.SendReplyMessageV2, remoting.SendBatchMessage:
		return b.handleSend(cn, req, v2Names)
	case remoting.HeartBeat:
		return b.handleHeartbeat(req)
	case remoting.UnregisterClient:
		return b.handleUnregister(req)
	case remoting.UpdateAndCreateTopic:
		return b.handleCreateTopic(req)
	case remoting.ViewMessageByID:
		return b.handleView(req)
	case remoting.PullMessage:
		return b.handlePull(req)
	case remoting.GetMaxOffset, remoting.GetMinOffset:
		return b.handleOffset(req)
	}
	return notSupported(req)
}

// headerNames are a send header's ext field names, V1 (long) or V2 (single letters).
type headerNames struct {
	group, topic, defaultTopic, defaultTopicQueueNums, queueID, sysFlag, bornTimestamp, flag,
	properties, reconsumeTimes, batch string
}

var (
	v1Names = headerNames{"producerGroup", "topic", "defaultTopic", "defaultTopicQueueNums", "queueId",
		"sysFlag", "bornTimestamp", "flag", "properties", "reconsumeTimes", "batch"}
	v2Names = headerNames{"a", "b", "c", "d", "e", "f", "g", "h", "i", "j", "m"}
)

type sendHeader struct {
	group, topic, defaultTopic string
	defaultTopicQueueNums      int
	queueID                    int
	sysFlag, flag              int32
	bornTimestamp              int64
	properties                 string
	reconsumeTimes             int32
	batch                      bool
}

// headerReader parses ext fields, remembering the first problem the way Java reports a
// missing @CFNotNull field.
type headerReader struct {
	ext map[string]string
	err error
}

func (h *headerReader) str(name string, required bool) string {
	v, ok := h.ext[name]
	if !ok && required && h.err == nil {
		h.err = fmt.Errorf("the custom field <%s> is null", name)
	}
	return v
}

func (h *headerReader) int(name string, required bool, bits int) int64 {
	v := h.str(name, required)
	if v == "" {
		return 0
	}
	n, err := strconv.ParseInt(v, 10, bits)
	if err != nil && h.err == nil {
		h.err = fmt.Errorf("the custom field <%s> has an unparsable value %q", name, v)
	}
	return n
}

func parseSendHeader(ext map[string]string, n headerNames) (sendHeader, error) {
	h := headerReader{ext: ext}
	sh := sendHeader{
		group:                 h.str(n.group, true),
		topic:                 h.str(n.topic, true),
		defaultTopic:          h.str(n.defaultTopic, true),
		defaultTopicQueueNums: int(h.int(n.defaultTopicQueueNums, true, 32)),
		queueID:               int(h.int(n.queueID, true, 32)),
		sysFlag:               int32(h.int(n.sysFlag, true, 32)),
		bornTimestamp:         h.int(n.bornTimestamp, true, 64),
		flag:                  int32(h.int(n.flag, true, 32)),
		properties:            h.str(n.properties, false),
		reconsumeTimes:        int32(h.int(n.reconsumeTimes, false, 32)),
		batch:                 h.str(n.batch, false) == "true",
	}
	return sh, h.err
}

func (b *Broker) handleSend(cn *conn, req *remoting.Command, names headerNames) *remoting.Command {
	h, err := parseSendHeader(req.ExtFields, names)
	if err != nil {
		return remoting.NewResponse(req, remoting.SystemError, err.Error())
	}
	batch := req.RequestCode() == remoting.SendBatchMessage
	if problem := validateName(h.topic, maxTopicLen); problem != "" {
		return remoting.NewResponse(req, remoting.InvalidParameter, "The specified topic["+h.topic+"] "+problem)
	}
	if notAllowedSendTopics[h.topic] {
		return remoting.NewResponse(req, remoting.NoPermission, "Sending message to topic["+h.topic+"] is forbidden.")
	}
	tc, ok := b.topicForSend(h)
	if !ok {
		return remoting.NewResponse(req, remoting.TopicNotExist,
			"topic["+h.topic+"] not exist, apply first please!"+applyTopicHint)
	}
	if tc.perm&permWrite == 0 {
		return remoting.NewResponse(req, remoting.NoPermission, "the topic["+h.topic+"] sending message is forbidden")
	}
	queueID := h.queueID
	if queueID >= max(tc.read, tc.write) {
		return remoting.NewResponse(req, remoting.InvalidParameter, fmt.Sprintf(
			"request queueId[%d] is illegal, TopicConfig [topicName=%s, readQueueNums=%d, writeQueueNums=%d, perm=%d] Producer: %s",
			queueID, tc.name, tc.read, tc.write, tc.perm, cn.nc.RemoteAddr()))
	}
	if queueID < 0 {
		if tc.write < 1 {
			return remoting.NewResponse(req, remoting.NoPermission, "the topic["+h.topic+"] has no write queue")
		}
		queueID = b.c.rnd.IntN(tc.write)
	}
	if len(req.Body) > b.c.cfg.MaxMessageSize {
		return remoting.NewResponse(req, remoting.MessageIllegal,
			"the message body size over max value, MAX: "+strconv.Itoa(b.c.cfg.MaxMessageSize))
	}
	props := addProperty(h.properties, "CLUSTER", b.c.cfg.ClusterName)
	if len(props) > maxPropertiesLen {
		return remoting.NewResponse(req, remoting.MessageIllegal,
			"the message properties length is too long, max: "+strconv.Itoa(maxPropertiesLen))
	}
	base := inMsg{topic: h.topic, queueID: int32(queueID), flag: h.flag, sysFlag: h.sysFlag,
		bornTime: h.bornTimestamp, bornHost: cn.nc.RemoteAddr(), body: req.Body, props: props, reconsume: h.reconsumeTimes}
	var msgs []inMsg
	if batch {
		if msgs, err = decodeBatch(base, req.Body); err != nil {
			return remoting.NewResponse(req, remoting.MessageIllegal, err.Error())
		}
	} else {
		msgs = []inMsg{base}
	}
	res := b.store.put(msgs, b.ep.boundAddr(), time.Now())
	b.stats.messages.Add(int64(len(msgs)))
	for _, m := range msgs {
		b.stats.bytes.Add(int64(len(m.body)))
	}
	ids := make([]string, len(res))
	for i, r := range res {
		ids[i] = r.msgID
	}
	resp := remoting.NewResponse(req, remoting.Success, "")
	resp.ExtFields = map[string]string{
		"msgId":       strings.Join(ids, ","),
		"queueId":     strconv.Itoa(queueID),
		"queueOffset": strconv.FormatInt(res[0].queueOffset, 10),
		"MSG_REGION":  b.c.cfg.Region,
		"TRACE_ON":    "true",
	}
	return resp
}

// topicForSend returns the topic's config, auto-creating it from the request's default
// topic when that one has INHERIT (Java createTopicInSendMessageMethod).
func (b *Broker) topicForSend(h sendHeader) (topicConfig, bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if tc, ok := b.topics[h.topic]; ok {
		return tc, true
	}
	def, ok := b.topics[h.defaultTopic]
	if !ok || def.perm&permInherit == 0 {
		return topicConfig{}, false
	}
	n := max(min(h.defaultTopicQueueNums, def.write), 0)
	tc := topicConfig{name: h.topic, read: n, write: n, perm: def.perm &^ permInherit, sysFlag: def.sysFlag}
	b.topics[h.topic] = tc
	b.ep.log.Info("auto-created topic", "topic", h.topic, "queues", n, "from", h.defaultTopic)
	return tc, true
}

// decodeBatch splits a SEND_BATCH_MESSAGE body (spec §4.9) into messages that inherit the
// request's header; each keeps its own properties plus the batch's (5.x behaviour).
func decodeBatch(base inMsg, body []byte) ([]inMsg, error) {
	var out []inMsg
	be := binary.BigEndian
	for off := 0; off < len(body); {
		rest := body[off:]
		if len(rest) < 20 {
			return nil, fmt.Errorf("batch message %d: truncated at byte %d", len(out), off)
		}
		total := int(int32(be.Uint32(rest)))
		bodyLen := int(int32(be.Uint32(rest[16:])))
		if total < 22 || total > len(rest) || bodyLen < 0 || bodyLen > total-22 {
			return nil, fmt.Errorf("batch message %d: bad sizes (total %d, body %d) at byte %d", len(out), total, bodyLen, off)
		}
		propLen := int(be.Uint16(rest[20+bodyLen:]))
		if 22+bodyLen+propLen != total {
			return nil, fmt.Errorf("batch message %d: total size %d does not match body %d and properties %d", len(out), total, bodyLen, propLen)
		}
		m := base
		m.flag = int32(be.Uint32(rest[12:]))
		m.body = rest[20 : 20+bodyLen]
		props := string(rest[22+bodyLen : total])
		for k, v := range decodeProperties(base.props) {
			props = addProperty(props, k, v)
		}
		if len(props) > maxPropertiesLen {
			return nil, fmt.Errorf("batch message %d: properties length %d exceeds %d", len(out), len(props), maxPropertiesLen)
		}
		m.props = props
		out = append(out, m)
		off += total
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("the batch is empty")
	}
	return out, nil
}

// heartbeatData is the part of HeartbeatData the fixture records.
type heartbeatData struct {
	ClientID        string `json:"clientID"`
	ProducerDataSet []struct {
		GroupName string `json:"groupName"`
	} `json:"producerDataSet"`
}

func (b *Broker) handleHeartbeat(req *remoting.Command) *remoting.Command {
	var hb heartbeatData
	if err := json.Unmarshal(req.Body, &hb); err != nil {
		return remoting.NewResponse(req, remoting.SystemError, "decode heartbeat: "+err.Error())
	}
	now := time.Now()
	b.mu.Lock()
	for _, p := range hb.ProducerDataSet {
		if b.producers[p.GroupName] == nil {
			b.producers[p.GroupName] = make(map[string]time.Time)
		}
		b.producers[p.GroupName][hb.ClientID] = now
	}
	b.mu.Unlock()
	return remoting.NewResponse(req, remoting.Success, "")
}

func (b *Broker) handleUnregister(req *remoting.Command) *remoting.Command {
	id, group := req.ExtFields["clientID"], req.ExtFields["producerGroup"]
	b.mu.Lock()
	if ids := b.producers[group]; ids != nil {
		delete(ids, id)
		if len(ids) == 0 {
			delete(b.producers, group)
		}
	}
	b.mu.Unlock()
	return remoting.NewResponse(req, remoting.Success, "")
}

func (b *Broker) handleCreateTopic(req *remoting.Command) *remoting.Command {
	h := headerReader{ext: req.ExtFields}
	topic := h.str("topic", true)
	read := int(h.int("readQueueNums", true, 32))
	write := int(h.int("writeQueueNums", true, 32))
	perm := int(h.int("perm", true, 32))
	sysFlag := int(h.int("topicSysFlag", false, 32))
	if h.err != nil {
		return remoting.NewResponse(req, remoting.SystemError, h.err.Error())
	}
	if problem := validateName(topic, maxTopicLen); problem != "" {
		return remoting.NewResponse(req, remoting.SystemError, "The specified topic["+topic+"] "+problem)
	}
	if topic == AutoCreateTopic || notAllowedSendTopics[topic] {
		return remoting.NewResponse(req, remoting.SystemError, "The topic["+topic+"] is conflict with system topic.")
	}
	if read < 0 || write < 0 || read > maxQueues || write > maxQueues {
		return remoting.NewResponse(req, remoting.SystemError, fmt.Sprintf("queue counts %d/%d must be in 0..%d", read, write, maxQueues))
	}
	b.putTopic(topicConfig{name: topic, read: read, write: write, perm: perm, sysFlag: sysFlag,
		order: req.ExtFields["order"] == "true"})
	return remoting.NewResponse(req, remoting.Success, "")
}

func (b *Broker) handleView(req *remoting.Command) *remoting.Command {
	h := headerReader{ext: req.ExtFields}
	off := h.int("offset", true, 64)
	if h.err != nil {
		return remoting.NewResponse(req, remoting.SystemError, h.err.Error())
	}
	data, ok := b.store.byPhys(off)
	if !ok {
		return remoting.NewResponse(req, remoting.SystemError, "can not find message by the offset, "+strconv.FormatInt(off, 10))
	}
	resp := remoting.NewResponse(req, remoting.Success, "")
	resp.Body = data
	return resp
}

func (b *Broker) handlePull(req *remoting.Command) *remoting.Command {
	h := headerReader{ext: req.ExtFields}
	group := h.str("consumerGroup", true)
	topic := h.str("topic", true)
	queueID := int(h.int("queueId", true, 32))
	offset := h.int("queueOffset", true, 64)
	maxNums := int(h.int("maxMsgNums", true, 32))
	if h.err != nil {
		return remoting.NewResponse(req, remoting.SystemError, h.err.Error())
	}
	tc, ok := b.topic(topic)
	if !ok {
		return remoting.NewResponse(req, remoting.TopicNotExist, "topic["+topic+"] not exist, apply first please!"+applyTopicHint)
	}
	if queueID < 0 || queueID >= tc.read {
		return remoting.NewResponse(req, remoting.SystemError, fmt.Sprintf(
			"queueId[%d] is illegal, topic:[%s] topicConfig.readQueueNums:[%d] consumer:[%s]", queueID, topic, tc.read, group))
	}
	maxNums = min(max(maxNums, 1), maxPullNums)
	match := tagMatcher(req.ExtFields["subscription"])
	data, next, lo, hi, st := b.store.pull(topic, int32(queueID), offset, maxNums, maxPullBytes, match)
	var code remoting.ResponseCode
	var remark string
	switch st {
	case pullFound:
		code, remark = remoting.Success, "FOUND"
	case pullNoMessageInQueue:
		code, remark = remoting.PullNotFound, "NO_MESSAGE_IN_QUEUE"
		if offset != 0 {
			code = remoting.PullOffsetMoved
		}
	case pullOffsetTooSmall:
		code, remark = remoting.PullOffsetMoved, "OFFSET_TOO_SMALL"
	case pullOffsetOverflowOne:
		code, remark = remoting.PullNotFound, "OFFSET_OVERFLOW_ONE"
	case pullOffsetOverflowBadly:
		code, remark = remoting.PullOffsetMoved, "OFFSET_OVERFLOW_BADLY"
	case pullNoMatched:
		code, remark = remoting.PullRetryImmediately, "NO_MATCHED_MESSAGE"
	}
	resp := remoting.NewResponse(req, code, remark)
	resp.ExtFields = map[string]string{
		"nextBeginOffset": strconv.FormatInt(next, 10), "minOffset": strconv.FormatInt(lo, 10),
		"maxOffset": strconv.FormatInt(hi, 10), "suggestWhichBrokerId": "0",
	}
	if len(data) > 0 {
		size := 0
		for _, d := range data {
			size += len(d)
		}
		body := make([]byte, 0, size)
		for _, d := range data {
			body = append(body, d...)
		}
		resp.Body = body
	}
	return resp
}

// tagMatcher implements TAG subscriptions: "*" or "" match everything, else "a || b".
func tagMatcher(sub string) func(string) bool {
	sub = strings.TrimSpace(sub)
	if sub == "" || sub == "*" {
		return func(string) bool { return true }
	}
	want := make(map[string]bool)
	for _, t := range strings.Split(sub, "||") {
		if t = strings.TrimSpace(t); t != "" {
			want[t] = true
		}
	}
	return func(tag string) bool { return want[tag] }
}

func (b *Broker) handleOffset(req *remoting.Command) *remoting.Command {
	h := headerReader{ext: req.ExtFields}
	topic := h.str("topic", true)
	queueID := h.int("queueId", true, 32)
	if h.err != nil {
		return remoting.NewResponse(req, remoting.SystemError, h.err.Error())
	}
	lo, hi := b.store.offsets(topic, int32(queueID))
	off := hi
	if req.RequestCode() == remoting.GetMinOffset {
		off = lo
	}
	resp := remoting.NewResponse(req, remoting.Success, "")
	resp.ExtFields = map[string]string{"offset": strconv.FormatInt(off, 10)}
	return resp
}
