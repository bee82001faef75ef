package daemon

import (
	"encoding/json"
	"net/http"
	"sync"

	"google.golang.org/protobuf/proto"

	"github.com/producerd/producerd/api/producerdpb"
	"github.com/producerd/producerd/internal/apijson"
)

// OpenAPI returns producerd's OpenAPI 3.1 document: the HTTP ingress (x-listener
// "ingress") and the admin API (x-listener "admin"), in the apijson dialect. Both
// listeners serve it at GET /openapi.json.
func OpenAPI() []byte { return openAPIDoc() }

var openAPIDoc = sync.OnceValue(func() []byte {
	b, err := json.MarshalIndent(buildOpenAPI(), "", "  ")
	if err != nil {
		panic(err) // static data: a failure is a bug
	}
	return append(b, '\n')
})

func (d *Daemon) serveOpenAPI(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	_, _ = w.Write(OpenAPI())
}

func ref(name string) map[string]any { return map[string]any{"$ref": "#/components/schemas/" + name} }

func jsonContent(schema any) map[string]any {
	return map[string]any{"application/json": map[string]any{"schema": schema}}
}

func answer(desc string, schema any) map[string]any {
	return map[string]any{"description": desc, "content": jsonContent(schema)}
}

func errAnswer() map[string]any { return answer("an error", ref("ErrorBody")) }

func buildOpenAPI() map[string]any {
	str := map[string]any{"type": "string"}
	strs := map[string]any{"type": "array", "items": str}
	defs := map[string]any{
		"ErrorBody": map[string]any{"type": "object", "additionalProperties": false, "required": []any{"error"},
			"properties": map[string]any{"error": ref("Error")}},
		"Error": map[string]any{"type": "object", "additionalProperties": false, "required": []any{"code", "message", "broker_code"},
			"properties": map[string]any{
				"code":        map[string]any{"type": "string", "description": "stable code for programs: INVALID_MESSAGE, UNKNOWN_GROUP, RESOURCE_EXHAUSTED, UNAVAILABLE, NOT_FOUND, METHOD_NOT_ALLOWED, UNAUTHENTICATED, PERMISSION_DENIED, TIMEOUT, a RocketMQ code name such as TOPIC_NOT_EXIST, ..."},
				"message":     map[string]any{"type": "string", "description": "for people; may change"},
				"broker_code": map[string]any{"type": "integer", "description": "RocketMQ response code when a broker answered, else 0"},
			}},
		"Health": map[string]any{"type": "object", "additionalProperties": false, "required": []any{"status"},
			"properties": map[string]any{"status": map[string]any{"type": "string", "enum": []any{"serving", "ready", "draining", "not ready"}}, "reason": str}},
		"HTTPMessage": map[string]any{"type": "object", "additionalProperties": false, "properties": httpMessageProps(str, strs)},
		"HTTPRequest": map[string]any{"type": "object", "additionalProperties": false, "properties": func() map[string]any {
			p := httpMessageProps(str, strs)
			p["messages"] = map[string]any{"type": "array", "items": ref("HTTPMessage"), "description": "a batch; producer_group and topic then apply to every message"}
			return p
		}()},
		"HTTPResult": map[string]any{"type": "object", "additionalProperties": false,
			"required": []any{"msg_id", "offset_msg_id", "topic", "broker", "queue_id", "queue_offset", "status", "attempts"},
			"properties": map[string]any{
				"msg_id": str, "offset_msg_id": str, "topic": str, "broker": str,
				"queue_id": map[string]any{"type": "integer"}, "queue_offset": map[string]any{"type": "integer"},
				"status":   map[string]any{"type": "string", "enum": []any{"SEND_OK", "FLUSH_DISK_TIMEOUT", "FLUSH_SLAVE_TIMEOUT", "SLAVE_NOT_AVAILABLE"}},
				"attempts": map[string]any{"type": "integer"},
			}},
		"HTTPResponse": map[string]any{"type": "object", "additionalProperties": false,
			"description": "result for one message, results for a batch, nothing for a oneway send",
			"properties":  map[string]any{"result": ref("HTTPResult"), "results": map[string]any{"type": "array", "items": ref("HTTPResult")}}},
	}
	admin := func(method, path, summary string, req, resp proto.Message) (string, string, map[string]any) {
		op := map[string]any{
			"summary": summary, "x-listener": "admin", "security": []any{map[string]any{"bearer": []any{}}},
			"responses": map[string]any{"200": answer("OK", ref(string(resp.ProtoReflect().Descriptor().Name()))), "default": errAnswer()},
		}
		apijson.Schemas(defs, resp.ProtoReflect().Descriptor())
		if method == "post" {
			md := req.ProtoReflect().Descriptor()
			if md.Fields().Len() > 0 {
				op["requestBody"] = map[string]any{"required": false, "content": jsonContent(apijson.RequestSchema(map[string]any{}, md))}
			}
		}
		return path, method, op
	}
	paths := map[string]any{}
	add := func(path, method string, op map[string]any) {
		if paths[path] == nil {
			paths[path] = map[string]any{}
		}
		paths[path].(map[string]any)[method] = op
	}
	health := func(listener, summary string) map[string]any {
		return map[string]any{"summary": summary, "x-listener": listener, "responses": map[string]any{
			"200": answer("serving", ref("Health")), "503": answer("draining or not ready", ref("Health")), "default": errAnswer()}}
	}
	add("/v1/messages", "post", map[string]any{
		"summary": "send one message, or a batch (messages[])", "x-listener": "ingress",
		"parameters": []any{map[string]any{"name": "traceparent", "in": "header", "required": false, "schema": str,
			"description": "W3C trace context of the caller"}},
		"requestBody": map[string]any{"required": true, "content": jsonContent(ref("HTTPRequest"))},
		"responses": map[string]any{
			"200":     answer("stored", ref("HTTPResponse")),
			"202":     answer("oneway: written, not confirmed", ref("HTTPResponse")),
			"default": errAnswer(),
		}})
	add("/healthz", "get", health("ingress admin", "liveness: serving, or draining (503)"))
	add("/readyz", "get", health("ingress admin", "readiness: ready, draining or not ready (503) with the reason"))
	add("/openapi.json", "get", map[string]any{"summary": "this document", "x-listener": "ingress admin",
		"responses": map[string]any{"200": answer("the OpenAPI document", map[string]any{"type": "object"})}})
	add("/metrics", "get", map[string]any{"summary": "Prometheus metrics", "x-listener": "admin",
		"responses": map[string]any{"200": map[string]any{"description": "Prometheus text format",
			"content": map[string]any{"text/plain": map[string]any{"schema": str}}}}})
	for _, r := range [][3]any{
		{"get", "/v1/admin/status", [3]any{"the daemon's status", &producerdpb.StatusRequest{}, &producerdpb.StatusResponse{}}},
		{"get", "/v1/admin/strategies", [3]any{"configured and built-in strategies", &producerdpb.ListStrategiesRequest{}, &producerdpb.ListStrategiesResponse{}}},
		{"post", "/v1/admin/strategies/swap", [3]any{"swap the active strategy", &producerdpb.SwapStrategyRequest{}, &producerdpb.SwapStrategyResponse{}}},
		{"post", "/v1/admin/reload", [3]any{"re-read the config file", &producerdpb.ReloadRequest{}, &producerdpb.ReloadResponse{}}},
		{"post", "/v1/admin/drain", [3]any{"stop accepting messages and wait for those in flight", &producerdpb.DrainRequest{}, &producerdpb.DrainResponse{}}},
		{"post", "/v1/admin/resume", [3]any{"accept messages again", &producerdpb.ResumeRequest{}, &producerdpb.ResumeResponse{}}},
		{"post", "/v1/admin/topics", [3]any{"create a topic", &producerdpb.CreateTopicRequest{}, &producerdpb.CreateTopicResponse{}}},
	} {
		a := r[2].([3]any)
		path, method, op := admin(r[0].(string), r[1].(string), a[0].(string), a[1].(proto.Message), a[2].(proto.Message))
		add(path, method, op)
	}
	return map[string]any{
		"openapi": "3.1.0",
		"info": map[string]any{"title": "producerd", "version": "1",
			"description": "producerd's HTTP ingress and admin API. Every JSON body uses one dialect: proto field names, every field present, 64-bit integers as numbers, enums by short name. Errors: {\"error\": {\"code\", \"message\", \"broker_code\"}}."},
		"paths": paths,
		"components": map[string]any{
			"schemas":         defs,
			"securitySchemes": map[string]any{"bearer": map[string]any{"type": "http", "scheme": "bearer"}},
		},
	}
}

func httpMessageProps(str, strs map[string]any) map[string]any {
	return map[string]any{
		"producer_group": str, "topic": str,
		"body":        map[string]any{"type": "string", "description": "UTF-8 text body"},
		"body_base64": map[string]any{"type": "string", "contentEncoding": "base64"},
		"tags":        str, "keys": strs,
		"properties":   map[string]any{"type": "object", "additionalProperties": str},
		"delay_level":  map[string]any{"type": "integer", "minimum": 0, "maximum": 18},
		"sharding_key": str,
		"mode":         map[string]any{"type": "string", "enum": []any{"sync", "oneway"}},
		"deliver_at":   map[string]any{"type": "string", "format": "date-time"},
		"delay":        map[string]any{"type": "string", "description": "a Go duration, e.g. 5s"},
	}
}
