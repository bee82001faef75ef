package rmqv2

import (
	"bytes"
	"compress/gzip"
	"context"
	"crypto/md5" //nolint:gosec // a body digest the client chose, not a security check
	"crypto/sha1"
	"encoding/hex"
	"errors"
	"hash/crc32"
	"io"
	"strconv"
	"strings"
	"time"
	"unicode"

	pb "github.com/producerd/producerd/api/rmqv2"
	"github.com/producerd/producerd/core"
	"github.com/producerd/producerd/remoting"
)

// Limits of the Proxy 5.3.3 defaults (spec §7.3), kept so that a message producerd
// accepts is one the Proxy accepts too.
const (
	maxUserProperties  = 128
	maxPropertiesBytes = 16 << 10
	maxGroupBytes      = 64
	maxDeliveryAhead   = 24 * time.Hour
)

// convert validates the request's messages in the Proxy's order and builds core messages;
// a non-nil status is the answer to a message that failed.
func (s *Service) convert(ctx context.Context, in []*pb.Message, now time.Time) ([]*core.Message, *pb.Status) {
	if len(in) == 0 {
		return nil, newStatus(pb.Code_MESSAGE_CORRUPTED, "no message to send")
	}
	if len(in) > s.opts.MaxBatch {
		return nil, newStatus(pb.Code_PAYLOAD_TOO_LARGE, "a batch of %d messages; this producerd endpoint takes at most %d in one request", len(in), s.opts.MaxBatch)
	}
	topic := in[0].GetTopic()
	if st := checkTopic(topic.GetName()); st != nil {
		return nil, st
	}
	out := make([]*core.Message, len(in))
	// A batch is one broker message: its bodies together are bounded by the body limit
	// (core refuses a larger batch later), and counting them here stops a request of
	// small gzip bodies from inflating each to the limit.
	left := s.opts.MaxBodySize
	for i, m := range in {
		if m.GetTopic().GetName() != topic.GetName() || m.GetTopic().GetResourceNamespace() != topic.GetResourceNamespace() {
			return nil, newStatus(pb.Code_MESSAGE_CORRUPTED, "message %d has topic %q, the first %q", i, m.GetTopic().GetName(), topic.GetName())
		}
		cm, st := s.message(ctx, m, now, left)
		if st != nil {
			if len(in) > 1 {
				st.Message = "message " + strconv.Itoa(i) + ": " + st.Message
			}
			return nil, st
		}
		out[i] = cm
		left -= len(cm.Body)
	}
	if len(out) > 1 {
		for _, cm := range out {
			if !cm.DeliverAt.IsZero() {
				return nil, newStatus(pb.Code_ILLEGAL_DELIVERY_TIME, "a batch cannot carry a delivery timestamp; send delayed messages one by one")
			}
			if cm.ShardingKey != out[0].ShardingKey {
				return nil, newStatus(pb.Code_ILLEGAL_MESSAGE_GROUP, "the messages of a batch must share one message group")
			}
		}
	}
	return out, nil
}

// systemTopics are RocketMQ's TopicValidator.SYSTEM_TOPIC_SET; with the rmq_sys_ prefix
// they are the topics the Proxy refuses to clients ("cannot access system topic").
var systemTopics = map[string]bool{
	"TBW102": true, "SCHEDULE_TOPIC_XXXX": true, "BenchmarkTest": true, "RMQ_SYS_TRANS_HALF_TOPIC": true,
	"RMQ_SYS_TRACE_TOPIC": true, "RMQ_SYS_TRANS_OP_HALF_TOPIC": true, "TRANS_CHECK_MAX_TIME_TOPIC": true,
	"SELF_TEST_TOPIC": true, "OFFSET_MOVED_EVENT": true,
}

// checkTopic checks a topic name as the Proxy does: core's rules, and no system topic.
// The broker's own topics (revive log, timer wheel, TBW102) would otherwise take a
// client's bytes, and, never namespaced, leave the listener's namespace.
func checkTopic(name string) *pb.Status {
	if err := core.ValidateTopic(name); err != nil {
		return newStatus(pb.Code_ILLEGAL_TOPIC, "%v", err)
	}
	if systemTopics[name] || strings.HasPrefix(name, "rmq_sys_") {
		return newStatus(pb.Code_ILLEGAL_TOPIC, "topic %q is a RocketMQ system topic; clients cannot send to it", name)
	}
	return nil
}

// message converts one v2 message (spec §7.4); left is what the request's earlier bodies
// left of the body limit.
func (s *Service) message(ctx context.Context, m *pb.Message, now time.Time, left int) (*core.Message, *pb.Status) {
	sp := m.GetSystemProperties()
	if sp == nil {
		// Fields are read directly below for presence; a message without system
		// properties then fails the message id check.
		sp = &pb.SystemProperties{}
	}
	body, st := s.body(m.GetBody(), sp, left)
	if st != nil {
		return nil, st
	}
	if len(m.GetUserProperties()) > maxUserProperties {
		return nil, newStatus(pb.Code_MESSAGE_PROPERTIES_TOO_LARGE, "%d user properties, the limit is %d", len(m.GetUserProperties()), maxUserProperties)
	}
	// The Proxy's own limits (count, control characters, size) are checked here; what a
	// message may be for RocketMQ (reserved and blank property names, keys without
	// spaces) is core's check, called on the built message below.
	size := 0
	for k, v := range m.GetUserProperties() {
		if hasControl(k) || hasControl(v) {
			return nil, newStatus(pb.Code_ILLEGAL_MESSAGE_PROPERTY_KEY, "user property %q contains a control character", k)
		}
		size += len(k) + len(v)
	}
	if sp.Tag != nil {
		tag := sp.GetTag()
		if strings.TrimSpace(tag) == "" || strings.Contains(tag, "|") || hasControl(tag) {
			return nil, newStatus(pb.Code_ILLEGAL_MESSAGE_TAG, "tag %q is blank or contains '|' or a control character", tag)
		}
		size += len(tag)
	}
	for _, k := range sp.GetKeys() {
		if hasControl(k) {
			return nil, newStatus(pb.Code_ILLEGAL_MESSAGE_KEY, "key %q contains a control character", k)
		}
		size += len(k)
	}
	if size > maxPropertiesBytes {
		return nil, newStatus(pb.Code_MESSAGE_PROPERTIES_TOO_LARGE, "properties are %d bytes, the limit is %d", size, maxPropertiesBytes)
	}
	id := sp.GetMessageId()
	if strings.TrimSpace(id) == "" || hasControl(id) || strings.ContainsAny(id, ", ") {
		return nil, newStatus(pb.Code_ILLEGAL_MESSAGE_ID, "message id %q is blank or contains a space, a comma or a control character", id)
	}
	group := sp.GetMessageGroup()
	if sp.MessageGroup != nil && (strings.TrimSpace(group) == "" || len(group) >= maxGroupBytes || hasControl(group)) {
		return nil, newStatus(pb.Code_ILLEGAL_MESSAGE_GROUP, "message group %q is blank, %d bytes or longer, or contains a control character", group, maxGroupBytes)
	}
	sys := map[string]string{}
	var deliverAt time.Time
	if sp.DeliveryTimestamp != nil {
		deliverAt = sp.GetDeliveryTimestamp().AsTime()
		if !sp.GetDeliveryTimestamp().IsValid() || deliverAt.Sub(now) > maxDeliveryAhead {
			return nil, newStatus(pb.Code_ILLEGAL_DELIVERY_TIME, "delivery timestamp %s is invalid or more than %v ahead", deliverAt.Format(time.RFC3339Nano), maxDeliveryAhead)
		}
	}
	if st := checkType(sp); st != nil {
		return nil, st
	}
	born := sp.GetBornTimestamp()
	if born.IsValid() && born.AsTime().UnixMilli() > 0 {
		sys[core.PropertyBornTimestamp] = millis(born.AsTime())
	} else {
		// An unset born time would be stored as 0; now is closer to the truth.
		sys[core.PropertyBornTimestamp] = millis(now)
	}
	host := sp.GetBornHost()
	if strings.TrimSpace(host) == "" {
		host = clientAddr(ctx)
	}
	if host != "" && !hasControl(host) {
		sys[core.PropertyBornHost] = host
	}
	if tc := sp.GetTraceContext(); tc != "" && !hasControl(tc) {
		sys[core.PropertyTraceContext] = tc
	}
	var recovery string
	if sp.GetMessageType() == pb.MessageType_TRANSACTION {
		if _, ok := m.GetUserProperties()[core.PropertyCheckImmunity]; ok {
			// It would bypass the 3600 s cap below.
			return nil, newStatus(pb.Code_ILLEGAL_MESSAGE_PROPERTY_KEY, "user property %q: set orphaned_transaction_recovery_duration instead", core.PropertyCheckImmunity)
		}
		if recovery, st = recoverySeconds(sp); st != nil {
			return nil, st
		}
	}
	cm := &core.Message{
		Topic: m.GetTopic().GetName(), Body: body, Tags: sp.GetTag(), Keys: sp.GetKeys(),
		ShardingKey: group, UniqKey: id, SystemProperties: sys, DeliverAt: deliverAt,
	}
	if len(m.GetUserProperties()) > 0 {
		cm.Properties = m.GetUserProperties()
	}
	if recovery != "" {
		props := make(map[string]string, len(cm.Properties)+1)
		for k, v := range cm.Properties {
			props[k] = v
		}
		props[core.PropertyCheckImmunity] = recovery
		cm.Properties = props
	}
	// core's message rules, before the message takes a slot: its refusals map to the
	// Proxy's codes (validationCode), as when core refuses it at the send.
	if err := cm.Validate(s.opts.MaxBodySize); err != nil {
		return nil, statusOf(err)
	}
	return cm, nil
}

// checkType refuses a message whose declared type contradicts its properties. The Proxy
// derives the type from the properties alone; producerd also refuses what it does not
// send (transactional messages).
func checkType(sp *pb.SystemProperties) *pb.Status {
	group, delay := sp.MessageGroup != nil, sp.DeliveryTimestamp != nil
	if group && delay {
		return newStatus(pb.Code_MESSAGE_PROPERTY_CONFLICT_WITH_TYPE, "a message cannot have both a message group and a delivery timestamp")
	}
	switch sp.GetMessageType() {
	case pb.MessageType_MESSAGE_TYPE_UNSPECIFIED:
	case pb.MessageType_NORMAL:
		if group || delay {
			return newStatus(pb.Code_MESSAGE_PROPERTY_CONFLICT_WITH_TYPE, "a NORMAL message has a message group or a delivery timestamp")
		}
	case pb.MessageType_FIFO:
		if !group {
			return newStatus(pb.Code_MESSAGE_PROPERTY_CONFLICT_WITH_TYPE, "a FIFO message needs a message group")
		}
	case pb.MessageType_DELAY:
		if !delay {
			return newStatus(pb.Code_MESSAGE_PROPERTY_CONFLICT_WITH_TYPE, "a DELAY message needs a delivery timestamp")
		}
	case pb.MessageType_TRANSACTION:
		if group || delay {
			return newStatus(pb.Code_MESSAGE_PROPERTY_CONFLICT_WITH_TYPE, "a TRANSACTION message cannot have a message group or a delivery timestamp")
		}
	default:
		return newStatus(pb.Code_MESSAGE_PROPERTY_CONFLICT_WITH_TYPE, "unknown message type %d", sp.GetMessageType())
	}
	return nil
}

// body decodes the body (GZIP is inflated: the Proxy would flag it compressed with the
// ZLIB type, unreadable to remoting consumers, and never beyond left bytes) and checks
// its size and digest. left is the body limit less the bodies before it in the request.
func (s *Service) body(b []byte, sp *pb.SystemProperties, left int) ([]byte, *pb.Status) {
	carried := b
	switch sp.GetBodyEncoding() {
	case pb.Encoding_ENCODING_UNSPECIFIED, pb.Encoding_IDENTITY:
	case pb.Encoding_GZIP:
		zr, err := gzip.NewReader(bytes.NewReader(b))
		if err != nil {
			return nil, newStatus(pb.Code_MESSAGE_CORRUPTED, "gzip body: %v", err)
		}
		raw, err := io.ReadAll(io.LimitReader(zr, int64(left)+1))
		if err != nil {
			return nil, newStatus(pb.Code_MESSAGE_CORRUPTED, "gzip body: %v", err)
		}
		b = raw
	default:
		return nil, newStatus(pb.Code_MESSAGE_CORRUPTED, "unknown body encoding %d", sp.GetBodyEncoding())
	}
	switch {
	case len(b) == 0:
		return nil, newStatus(pb.Code_MESSAGE_BODY_EMPTY, "the message body is empty")
	case len(b) > s.opts.MaxBodySize:
		return nil, newStatus(pb.Code_MESSAGE_BODY_TOO_LARGE, "the message body is larger than %d bytes", s.opts.MaxBodySize)
	case len(b) > left:
		return nil, newStatus(pb.Code_PAYLOAD_TOO_LARGE, "the bodies of the batch are larger than %d bytes in all (one broker message)", s.opts.MaxBodySize)
	}
	if d := sp.GetBodyDigest(); d != nil && d.GetType() != pb.DigestType_DIGEST_TYPE_UNSPECIFIED {
		// The digest is of the body as carried (the SDKs check it before they inflate a
		// GZIP body); one of the inflated body is accepted too.
		ok := digestOK(d, carried)
		if !ok && sp.GetBodyEncoding() == pb.Encoding_GZIP {
			ok = digestOK(d, b)
		}
		if !ok {
			return nil, newStatus(pb.Code_MESSAGE_CORRUPTED, "the body does not match its %s digest", d.GetType())
		}
	}
	return b, nil
}

// digestOK checks a digest as the Java SDK writes it: hex, CRC32 without leading zeros,
// case ignored.
func digestOK(d *pb.Digest, b []byte) bool {
	switch d.GetType() {
	case pb.DigestType_CRC32:
		v, err := strconv.ParseUint(d.GetChecksum(), 16, 32)
		return err == nil && uint32(v) == crc32.ChecksumIEEE(b)
	case pb.DigestType_MD5:
		sum := md5.Sum(b) //nolint:gosec // see import
		return strings.EqualFold(d.GetChecksum(), hex.EncodeToString(sum[:]))
	case pb.DigestType_SHA1:
		sum := sha1.Sum(b) //nolint:gosec // see import
		return strings.EqualFold(d.GetChecksum(), hex.EncodeToString(sum[:]))
	}
	return false
}

func hasControl(s string) bool {
	return strings.IndexFunc(s, unicode.IsControl) >= 0
}

// statusOf maps a failed send to the code the SDKs understand (spec §7.5, §8.3). The
// retryable ones (the SDKs retry every failure; these are the ones worth it) are
// TOO_MANY_REQUESTS, PROXY_TIMEOUT and INTERNAL_SERVER_ERROR.
func statusOf(err error) *pb.Status {
	var (
		ve *core.ValidationError
		re *remoting.Error
	)
	switch {
	case errors.Is(err, ErrTooManyRequests), errors.Is(err, core.ErrTooManyRequests):
		return newStatus(pb.Code_TOO_MANY_REQUESTS, "%v", err)
	case errors.Is(err, ErrUnavailable), errors.Is(err, core.ErrClosed):
		return newStatus(pb.Code_INTERNAL_SERVER_ERROR, "%v", err)
	case errors.As(err, &ve):
		return newStatus(validationCode(ve.Rule), "%v", err)
	case errors.Is(err, core.ErrNoRoute), errors.Is(err, core.ErrTopicNotExist):
		return newStatus(pb.Code_TOPIC_NOT_FOUND, "%v", err)
	case errors.Is(err, core.ErrNoWritableQueue):
		return newStatus(pb.Code_FORBIDDEN, "%v", err)
	case errors.As(err, &re):
		switch re.Code {
		case remoting.TopicNotExist:
			return newStatus(pb.Code_TOPIC_NOT_FOUND, "%v", err)
		case remoting.SystemBusy:
			return newStatus(pb.Code_TOO_MANY_REQUESTS, "%v", err)
		case remoting.NoPermission:
			return newStatus(pb.Code_FORBIDDEN, "%v", err)
		case remoting.RequestCodeNotSupported:
			return newStatus(pb.Code_NOT_IMPLEMENTED, "%v", err)
		case remoting.MessageIllegal:
			return newStatus(pb.Code_BAD_REQUEST, "%v", err)
		}
		return newStatus(pb.Code_INTERNAL_SERVER_ERROR, "%v", err)
	case errors.Is(err, core.ErrTimeout), errors.Is(err, context.DeadlineExceeded):
		return newStatus(pb.Code_PROXY_TIMEOUT, "%v", err)
	}
	return newStatus(pb.Code_INTERNAL_SERVER_ERROR, "%v", err)
}

// validationCode maps a core validation rule to a v2 code.
func validationCode(rule string) pb.Code {
	switch {
	case strings.HasPrefix(rule, "topic."):
		return pb.Code_ILLEGAL_TOPIC
	case rule == "body.size":
		return pb.Code_MESSAGE_BODY_TOO_LARGE
	case rule == "batch.size":
		return pb.Code_PAYLOAD_TOO_LARGE
	case rule == "body.empty" || rule == "body.nil":
		return pb.Code_MESSAGE_BODY_EMPTY
	case rule == "properties.size":
		return pb.Code_MESSAGE_PROPERTIES_TOO_LARGE
	case rule == "keys.format":
		return pb.Code_ILLEGAL_MESSAGE_KEY
	case strings.HasPrefix(rule, "property."):
		return pb.Code_ILLEGAL_MESSAGE_PROPERTY_KEY
	}
	return pb.Code_BAD_REQUEST
}
