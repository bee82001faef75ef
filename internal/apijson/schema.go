package apijson

import (
	"regexp"

	"google.golang.org/protobuf/reflect/protoreflect"
)

// Error is the error object of every error answer of producerd's HTTP APIs, sent as
// {"error": {...}}.
type Error struct {
	// Code is stable and meant for programs: INVALID_MESSAGE, UNKNOWN_GROUP,
	// RESOURCE_EXHAUSTED, UNAVAILABLE, NOT_FOUND, METHOD_NOT_ALLOWED, UNAUTHENTICATED,
	// a RocketMQ response code name such as TOPIC_NOT_EXIST, ...
	Code string `json:"code"`
	// Message is for people; it may change between versions.
	Message string `json:"message"`
	// BrokerCode is the RocketMQ response code when a broker answered (17 for
	// TOPIC_NOT_EXIST), else 0.
	BrokerCode int32 `json:"broker_code"`
}

// ErrorBody is the body of an error answer.
type ErrorBody struct {
	Error Error `json:"error"`
}

// pkgPrefix matches the Go package prefixes of producerd's error strings ("core: ",
// "daemon: ", ...): they help a Go caller and say nothing to an HTTP client.
var pkgPrefix = regexp.MustCompile(`\b(core|daemon|remoting|config|host|sdk|apijson|producerd): `)

// CleanMessage removes Go package prefixes from an error message.
func CleanMessage(s string) string { return pkgPrefix.ReplaceAllString(s, "") }

// Schemas adds the JSON Schema (OpenAPI 3.1) of each message, and of every message they
// refer to, to defs, keyed by the message's short name; it describes what [Marshal]
// writes.
func Schemas(defs map[string]any, mds ...protoreflect.MessageDescriptor) {
	for _, md := range mds {
		addSchema(defs, md)
	}
}

func addSchema(defs map[string]any, md protoreflect.MessageDescriptor) {
	name := string(md.Name())
	if _, ok := defs[name]; ok {
		return
	}
	props := map[string]any{}
	var required []string
	obj := map[string]any{"type": "object", "properties": props, "additionalProperties": false}
	defs[name] = obj
	fields := md.Fields()
	for i := 0; i < fields.Len(); i++ {
		fd := fields.Get(i)
		fn := string(fd.Name())
		required = append(required, fn)
		switch {
		case fd.IsList():
			props[fn] = map[string]any{"type": "array", "items": fieldSchema(defs, fd)}
		case fd.IsMap():
			props[fn] = map[string]any{"type": "object", "additionalProperties": fieldSchema(defs, fd.MapValue())}
		case fd.Message() != nil:
			props[fn] = map[string]any{"oneOf": []any{fieldSchema(defs, fd), map[string]any{"type": "null"}}}
		default:
			props[fn] = fieldSchema(defs, fd)
		}
	}
	obj["required"] = required
}

// RequestSchema is the schema of a request body of md: the same fields, none required.
func RequestSchema(defs map[string]any, md protoreflect.MessageDescriptor) map[string]any {
	addSchema(defs, md)
	s := map[string]any{}
	for k, v := range defs[string(md.Name())].(map[string]any) {
		if k != "required" {
			s[k] = v
		}
	}
	return s
}

func fieldSchema(defs map[string]any, fd protoreflect.FieldDescriptor) map[string]any {
	switch fd.Kind() {
	case protoreflect.BoolKind:
		return map[string]any{"type": "boolean"}
	case protoreflect.Int32Kind, protoreflect.Sint32Kind, protoreflect.Sfixed32Kind,
		protoreflect.Int64Kind, protoreflect.Sint64Kind, protoreflect.Sfixed64Kind:
		return map[string]any{"type": "integer"}
	case protoreflect.Uint32Kind, protoreflect.Fixed32Kind, protoreflect.Uint64Kind, protoreflect.Fixed64Kind:
		return map[string]any{"type": "integer", "minimum": 0}
	case protoreflect.FloatKind, protoreflect.DoubleKind:
		return map[string]any{"type": "number"}
	case protoreflect.BytesKind:
		return map[string]any{"type": "string", "contentEncoding": "base64"}
	case protoreflect.EnumKind:
		var names []any
		vals := fd.Enum().Values()
		for i := 0; i < vals.Len(); i++ {
			names = append(names, EnumName(fd.Enum(), vals.Get(i).Number()))
		}
		return map[string]any{"type": "string", "enum": names}
	case protoreflect.MessageKind, protoreflect.GroupKind:
		switch fd.Message().FullName() {
		case "google.protobuf.Timestamp":
			return map[string]any{"type": "string", "format": "date-time"}
		case "google.protobuf.Duration":
			return map[string]any{"type": "string", "description": "a Go duration, e.g. 1.5s"}
		}
		addSchema(defs, fd.Message())
		return map[string]any{"$ref": "#/components/schemas/" + string(fd.Message().Name())}
	}
	return map[string]any{"type": "string"}
}
