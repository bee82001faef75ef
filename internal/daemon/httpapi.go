package daemon

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"

	"google.golang.org/grpc/codes"

	"github.com/producerd/producerd/api/producerdpb"
	"github.com/producerd/producerd/core"
)

// maxHTTPBody bounds a POST /v1/messages body (base64 makes a 4 MiB message ~5.4 MiB).
const maxHTTPBody = 32 << 20

// HTTPMessage is one message of the HTTP/JSON API. Exactly one of Body (UTF-8 text)
// and BodyBase64 may be set.
type HTTPMessage struct {
	ProducerGroup string            `json:"producer_group,omitempty"`
	Topic         string            `json:"topic,omitempty"`
	Body          *string           `json:"body,omitempty"`
	BodyBase64    *string           `json:"body_base64,omitempty"`
	Tags          string            `json:"tags,omitempty"`
	Keys          []string          `json:"keys,omitempty"`
	Properties    map[string]string `json:"properties,omitempty"`
	DelayLevel    int32             `json:"delay_level,omitempty"`
	ShardingKey   string            `json:"sharding_key,omitempty"`
	// Mode is "sync" (default) or "oneway".
	Mode string `json:"mode,omitempty"`
	// DeliverAt (RFC 3339) and Delay (a duration, "5s") are timer delivery (RocketMQ 5.x).
	DeliverAt string `json:"deliver_at,omitempty"`
	Delay     string `json:"delay,omitempty"`
}

// HTTPRequest is the body of POST /v1/messages: one message, or a batch when Messages
// is set (ProducerGroup and Topic then apply to every message).
type HTTPRequest struct {
	HTTPMessage
	Messages []HTTPMessage `json:"messages,omitempty"`
}

// HTTPResult is a stored message.
type HTTPResult struct {
	MsgID       string `json:"msg_id"`
	OffsetMsgID string `json:"offset_msg_id"`
	Topic       string `json:"topic"`
	Broker      string `json:"broker"`
	QueueID     int32  `json:"queue_id"`
	QueueOffset int64  `json:"queue_offset"`
	// Status is SEND_OK, FLUSH_DISK_TIMEOUT, FLUSH_SLAVE_TIMEOUT or SLAVE_NOT_AVAILABLE.
	Status   string `json:"status"`
	Attempts int32  `json:"attempts"`
}

// HTTPError is a failed send: the RocketMQ code when a broker answered, the reason and
// the message.
type HTTPError struct {
	Code    int32  `json:"code"`
	Reason  string `json:"reason"`
	Message string `json:"message"`
}

// HTTPResponse is the answer of POST /v1/messages: Result for one message (absent for
// oneway), Results for a batch, or Error.
type HTTPResponse struct {
	Result  *HTTPResult  `json:"result,omitempty"`
	Results []HTTPResult `json:"results,omitempty"`
	Error   *HTTPError   `json:"error,omitempty"`
}

func httpResult(r *producerdpb.SendResult) HTTPResult {
	st := "SEND_OK"
	switch r.GetStatus() {
	case producerdpb.SendStatus_SEND_STATUS_FLUSH_DISK_TIMEOUT:
		st = "FLUSH_DISK_TIMEOUT"
	case producerdpb.SendStatus_SEND_STATUS_FLUSH_SLAVE_TIMEOUT:
		st = "FLUSH_SLAVE_TIMEOUT"
	case producerdpb.SendStatus_SEND_STATUS_SLAVE_NOT_AVAILABLE:
		st = "SLAVE_NOT_AVAILABLE"
	}
	return HTTPResult{MsgID: r.GetMsgId(), OffsetMsgID: r.GetOffsetMsgId(), Topic: r.GetTopic(), Broker: r.GetBroker(),
		QueueID: r.GetQueueId(), QueueOffset: r.GetQueueOffset(), Status: st, Attempts: r.GetAttempts()}
}

func (m *HTTPMessage) toPB() (*producerdpb.Message, error) {
	pm := &producerdpb.Message{ProducerGroup: m.ProducerGroup, Topic: m.Topic, Tags: m.Tags, Keys: m.Keys,
		Properties: m.Properties, DelayLevel: m.DelayLevel, ShardingKey: m.ShardingKey}
	if err := m.timerToPB(pm); err != nil {
		return nil, err
	}
	switch {
	case m.Body != nil && m.BodyBase64 != nil:
		return nil, fmt.Errorf("%w: set body or body_base64, not both", core.ErrInvalidMessage)
	case m.Body != nil:
		pm.Body = []byte(*m.Body)
	case m.BodyBase64 != nil:
		b, err := base64.StdEncoding.DecodeString(*m.BodyBase64)
		if err != nil {
			return nil, fmt.Errorf("%w: body_base64: %v", core.ErrInvalidMessage, err)
		}
		pm.Body = b
	}
	switch m.Mode {
	case "", "sync":
	case "oneway":
		pm.Mode = producerdpb.SendMode_SEND_MODE_ONEWAY
	default:
		return nil, fmt.Errorf("%w: mode %q: want sync or oneway", core.ErrInvalidMessage, m.Mode)
	}
	return pm, nil
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v)
}

func writeError(w http.ResponseWriter, err error) {
	pe := errorToPB(err)
	code := httpStatus(codes.Code(pe.GrpcCode))
	if code == http.StatusTooManyRequests || code == http.StatusServiceUnavailable {
		w.Header().Set("Retry-After", "1")
	}
	writeJSON(w, code, HTTPResponse{Error: &HTTPError{Code: pe.Code, Reason: pe.Reason, Message: pe.Message}})
}

// ingressHTTP serves POST /v1/messages and GET /healthz.
func (d *Daemon) ingressHTTP() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("POST /v1/messages", d.postMessages)
	mux.HandleFunc("GET /healthz", d.healthz)
	d.txHTTPRoutes(mux)
	return mux
}

func (d *Daemon) healthz(w http.ResponseWriter, _ *http.Request) {
	if d.limit.isDraining() {
		writeJSON(w, http.StatusServiceUnavailable, map[string]string{"status": "draining"})
		return
	}
	writeJSON(w, http.StatusOK, map[string]string{"status": "serving"})
}

func (d *Daemon) postMessages(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxHTTPBody))
	if err != nil {
		writeError(w, d.reject(apiHTTP, fmt.Errorf("%w: reading the request: %v", core.ErrInvalidMessage, err)))
		return
	}
	var req HTTPRequest
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil {
		writeError(w, d.reject(apiHTTP, fmt.Errorf("%w: invalid JSON: %v", core.ErrInvalidMessage, err)))
		return
	}
	if req.Messages != nil {
		if req.Body != nil || req.BodyBase64 != nil || req.Mode != "" {
			writeError(w, d.reject(apiHTTP, fmt.Errorf("%w: a batch carries its bodies in messages[]", core.ErrInvalidMessage)))
			return
		}
		msgs := make([]*producerdpb.Message, len(req.Messages))
		for i := range req.Messages {
			pm, err := req.Messages[i].toPB()
			if err != nil {
				writeError(w, d.reject(apiHTTP, fmt.Errorf("messages[%d]: %w", i, err)))
				return
			}
			msgs[i] = pm
		}
		res, err := d.sendBatch(r.Context(), apiHTTP, req.ProducerGroup, req.Topic, msgs)
		if err != nil {
			writeError(w, err)
			return
		}
		out := HTTPResponse{Results: make([]HTTPResult, len(res))}
		for i, r := range res {
			out.Results[i] = httpResult(r)
		}
		writeJSON(w, http.StatusOK, out)
		return
	}
	pm, err := req.toPB()
	if err != nil {
		writeError(w, d.reject(apiHTTP, err))
		return
	}
	res, err := d.send(r.Context(), apiHTTP, pm)
	switch {
	case err != nil:
		writeError(w, err)
	case res == nil:
		writeJSON(w, http.StatusAccepted, HTTPResponse{})
	default:
		hr := httpResult(res)
		writeJSON(w, http.StatusOK, HTTPResponse{Result: &hr})
	}
}
