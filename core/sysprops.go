package core

import (
	"sort"
	"strings"
)

// System property names a gateway may pass in Message.SystemProperties (spec §4.5).
const (
	PropertyBornHost      = "__BORNHOST"
	PropertyBornTimestamp = "BORN_TIMESTAMP"
	PropertyTraceContext  = "TRACE_CONTEXT"
)

// ownProperties are the names encodeProperties writes itself from Message fields; a
// SystemProperties entry may not repeat them.
var ownProperties = map[string]bool{
	PropertyTags: true, PropertyKeys: true, PropertyWait: true, PropertyDelay: true,
	PropertyUniqKey: true, PropertyShardingKey: true,
	PropertyTimerDeliverMS: true, PropertyTimerDelayMS: true, PropertyTimerDelaySec: true,
}

// validateSystem checks UniqKey and SystemProperties.
func (m *Message) validateSystem() error {
	if strings.ContainsAny(m.UniqKey, "\x00\x01\x02, ") {
		return invalid("uniqkey.format", "UNIQ_KEY %q contains a space, a comma or a 0x00/0x01/0x02 byte", m.UniqKey)
	}
	for k, v := range m.SystemProperties {
		switch {
		case strings.TrimSpace(k) == "":
			return invalid("property.blank", "a system property name is blank")
		case ownProperties[k]:
			return invalid("property.system", "%q is set from the message's own field, not SystemProperties", k)
		case strings.ContainsAny(k, "\x01\x02") || strings.ContainsAny(v, "\x01\x02"):
			return invalid("property.separator", "system property %q contains a 0x01 or 0x02 byte", k)
		}
	}
	return nil
}

// appendSystemProperties appends SystemProperties sorted by name.
func (m *Message) appendSystemProperties(dst []byte) []byte {
	if len(m.SystemProperties) == 0 {
		return dst
	}
	names := make([]string, 0, len(m.SystemProperties))
	for k := range m.SystemProperties {
		names = append(names, k)
	}
	sort.Strings(names)
	for _, k := range names {
		dst = appendProperty(dst, k, m.SystemProperties[k])
	}
	return dst
}

// uniqKey returns the caller's UNIQ_KEY or a fresh one.
func (m *Message) uniqKey() string {
	if m.UniqKey != "" {
		return m.UniqKey
	}
	return uniqIDs.next()
}
