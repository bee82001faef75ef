package core

import "strings"

// Namespaces, as the Java client's ClientConfig.namespace: a producer with a namespace
// sends to "ns%topic" as group "ns%group" and marks every message with the property
// INSTANCE_ID=ns; what it shows its caller (SendResult.Topic, Group, errors) is the
// name without the namespace.

// PropertyInstanceID carries the producer's namespace on every message.
const PropertyInstanceID = "INSTANCE_ID"

// NamespaceSeparator separates a namespace from a resource name.
const NamespaceSeparator = "%"

const (
	retryPrefix = "%RETRY%"
	dlqPrefix   = "%DLQ%"
)

// WithNamespace wraps a topic or group name in namespace ns as Java's
// NamespaceUtil.wrapNamespace does: "ns%name", keeping a %RETRY% or %DLQ% prefix in
// front; system resources and names already in ns are returned unchanged.
func WithNamespace(ns, name string) string {
	if ns == "" || name == "" || isSystemResource(name) {
		return name
	}
	bare, prefix := name, ""
	switch {
	case strings.HasPrefix(name, retryPrefix):
		bare, prefix = name[len(retryPrefix):], retryPrefix
	case strings.HasPrefix(name, dlqPrefix):
		bare, prefix = name[len(dlqPrefix):], dlqPrefix
	}
	if strings.HasPrefix(bare, ns+NamespaceSeparator) {
		return name
	}
	return prefix + ns + NamespaceSeparator + bare
}

// WithoutNamespace strips namespace ns from a name WithNamespace made; other names are
// returned unchanged.
func WithoutNamespace(ns, name string) string {
	if ns == "" {
		return name
	}
	bare, prefix := name, ""
	switch {
	case strings.HasPrefix(name, retryPrefix):
		bare, prefix = name[len(retryPrefix):], retryPrefix
	case strings.HasPrefix(name, dlqPrefix):
		bare, prefix = name[len(dlqPrefix):], dlqPrefix
	}
	if rest, ok := strings.CutPrefix(bare, ns+NamespaceSeparator); ok {
		return prefix + rest
	}
	return name
}

// isSystemResource: RocketMQ's own topics and groups are never namespaced.
func isSystemResource(name string) bool {
	return systemTopics[name] || name == DefaultCreateTopicKey || strings.HasPrefix(name, "rmq_sys_") ||
		name == "CLIENT_INNER_PRODUCER" || name == "DEFAULT_PRODUCER"
}

// ValidateNamespace checks a namespace: the topic charset without '%' (it would make the
// wrapped names ambiguous), and room for the group within MaxGroupLength. "" is valid.
func ValidateNamespace(ns, group string) error {
	if ns == "" {
		return nil
	}
	if err := validateName("namespace", ns, MaxGroupLength); err != nil {
		return err
	}
	if strings.Contains(ns, NamespaceSeparator) {
		return invalid("namespace.charset", "namespace %q may not contain %q", ns, NamespaceSeparator)
	}
	return ValidateGroup(WithNamespace(ns, group))
}

// appendInstanceID adds INSTANCE_ID=namespace to encoded properties when a namespace is set.
func (p *Producer) appendInstanceID(props []byte) []byte {
	if p.cfg.Namespace == "" {
		return props
	}
	return appendProperty(props, PropertyInstanceID, p.cfg.Namespace)
}

// bareRouteError shows a route error as the caller named the topic: without the
// namespace, in Topic and in the cause's text (a NameServer's remark quotes the wrapped
// name). The cause stays reachable for errors.Is and errors.As.
func (p *Producer) bareRouteError(err error) error {
	re, ok := err.(*RouteError)
	if !ok || p.cfg.Namespace == "" {
		return err
	}
	c := *re
	c.Topic = WithoutNamespace(p.cfg.Namespace, re.Topic)
	c.Cause = p.bareCause(re.Cause)
	return &c
}

// bareCause shows err's text without this producer's namespace (a broker's remark quotes
// the wrapped topic: "the topic[ns1%T] sending message is forbidden"); errors.Is and
// errors.As still reach err.
func (p *Producer) bareCause(err error) error {
	if err == nil || p.cfg.Namespace == "" {
		return err
	}
	prefix := p.cfg.Namespace + NamespaceSeparator
	if !strings.Contains(err.Error(), prefix) {
		return err
	}
	return &bareNameError{err: err, prefix: prefix}
}

// bareNameError is err with every "ns%" removed from its text.
type bareNameError struct {
	err    error
	prefix string
}

func (e *bareNameError) Error() string { return strings.ReplaceAll(e.err.Error(), e.prefix, "") }
func (e *bareNameError) Unwrap() error { return e.err }
