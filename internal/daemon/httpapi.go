package daemon

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"reflect"
	"slices"
	"unicode/utf8"

	"google.golang.org/grpc/codes"

	"github.com/producerd/producerd/api/producerdpb"
	"github.com/producerd/producerd/core"
	"github.com/producerd/producerd/internal/apijson"
)

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

// HTTPError is a failed request: a stable string code, a message for people and the
// RocketMQ response code when a broker answered (see apijson.Error).
type HTTPError = apijson.Error

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
	writeJSON(w, code, HTTPResponse{Error: &HTTPError{Code: pe.Reason, Message: apijson.CleanMessage(pe.Message), BrokerCode: pe.Code}})
}

// writeErrorCode answers an error that is not a send error.
func writeErrorCode(w http.ResponseWriter, status int, code, msg string) {
	writeJSON(w, status, apijson.ErrorBody{Error: apijson.Error{Code: code, Message: apijson.CleanMessage(msg)}})
}

// jsonNotFound answers unknown paths (404 NOT_FOUND) and unknown methods (405
// METHOD_NOT_ALLOWED, with Allow) of mux in JSON instead of net/http's plain text.
func jsonNotFound(mux *http.ServeMux) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h, pattern := mux.Handler(r)
		if pattern != "" {
			mux.ServeHTTP(w, r)
			return
		}
		rec := &statusRecorder{header: http.Header{}}
		h.ServeHTTP(rec, r)
		switch rec.status {
		case http.StatusNotFound:
			writeErrorCode(w, http.StatusNotFound, "NOT_FOUND", "no such path: "+r.URL.Path+" (GET /openapi.json lists the API)")
		case http.StatusMethodNotAllowed:
			w.Header().Set("Allow", rec.header.Get("Allow"))
			writeErrorCode(w, http.StatusMethodNotAllowed, "METHOD_NOT_ALLOWED", r.Method+" is not allowed on "+r.URL.Path+"; allowed: "+rec.header.Get("Allow"))
		default:
			mux.ServeHTTP(w, r)
		}
	})
}

// statusRecorder keeps the status and headers a handler writes and drops its body.
type statusRecorder struct {
	header http.Header
	status int
}

func (s *statusRecorder) Header() http.Header { return s.header }
func (s *statusRecorder) WriteHeader(code int) {
	if s.status == 0 {
		s.status = code
	}
}
func (s *statusRecorder) Write(b []byte) (int, error) {
	s.WriteHeader(http.StatusOK)
	return len(b), nil
}

// ingressHTTP serves POST /v1/messages and GET /healthz.
func (d *Daemon) ingressHTTP() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("POST /v1/messages", d.postMessages)
	mux.HandleFunc("GET /healthz", d.healthz)
	mux.HandleFunc("GET /readyz", d.readyz)
	d.txHTTPRoutes(mux)
	mux.HandleFunc("GET /openapi.json", d.serveOpenAPI)
	return jsonNotFound(mux)
}

func (d *Daemon) healthz(w http.ResponseWriter, _ *http.Request) {
	if d.limit.isDraining() {
		writeJSON(w, http.StatusServiceUnavailable, map[string]string{"status": "draining"})
		return
	}
	writeJSON(w, http.StatusOK, map[string]string{"status": "serving"})
}

func (d *Daemon) postMessages(w http.ResponseWriter, r *http.Request) {
	body, release, err := d.readBody(w, r)
	defer release()
	prepaid := int64(len(body))
	if err != nil {
		if errors.Is(err, errTooLarge) {
			d.reject(apiHTTP, err)
			writeErrorCode(w, http.StatusRequestEntityTooLarge, "INVALID_MESSAGE", err.Error())
			return
		}
		writeError(w, d.reject(apiHTTP, err))
		return
	}
	req, err := decodeHTTPRequest(body)
	if err != nil {
		writeError(w, d.reject(apiHTTP, err))
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
		res, err := d.sendBatch(withHTTPTraceparent(r), apiHTTP, req.ProducerGroup, req.Topic, msgs, prepaid)
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
	res, err := d.send(withHTTPTraceparent(r), apiHTTP, pm, prepaid)
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

// errTooLarge: a request body over limits.max_request_size.
var errTooLarge = fmt.Errorf("%w: the request is larger than limits.max_request_size", core.ErrInvalidMessage)

// bodyChunk is the largest step in which a request body is read; firstChunk the
// first: a client that announces a large body and sends little of it costs the daemon
// what it sent plus one small buffer, not its Content-Length.
const (
	bodyChunk  = 64 << 10
	firstChunk = 4 << 10
)

// readBody reads a request body of at most limits.max_request_size, charging its bytes
// to the in-flight bound as they arrive (never by the announced Content-Length, which
// costs nothing to send): a body over the bound is refused before it is read when its
// length is announced, else when it grows past it. Bytes arrive into chunks that grow
// with what was received (4 KiB first, then up to 64 KiB), joined once at the end (at
// most the body twice, briefly). release returns the charge; call it when the request
// is done.
func (d *Daemon) readBody(w http.ResponseWriter, r *http.Request) (body []byte, release func(), err error) {
	limit := d.Config().Limits.MaxRequestSize
	var charged int64
	release = func() { d.limit.release(0, charged) }
	if r.ContentLength > limit {
		return nil, release, errTooLarge
	}
	rd := http.MaxBytesReader(w, r.Body, limit)
	var chunks [][]byte
	for {
		size := int64(min(bodyChunk, max(firstChunk, charged)))
		if r.ContentLength >= 0 {
			if charged == r.ContentLength {
				break
			}
			size = min(size, r.ContentLength-charged)
		}
		chunk := make([]byte, size)
		filled, rerr := 0, error(nil)
		for filled < len(chunk) && rerr == nil {
			var m int
			m, rerr = rd.Read(chunk[filled:])
			if m > 0 {
				if err := d.limit.reserve(int64(m)); err != nil {
					return nil, release, err
				}
				charged += int64(m)
				filled += m
			}
		}
		chunks = append(chunks, chunk[:filled])
		if errors.Is(rerr, io.EOF) {
			if r.ContentLength >= 0 && charged < r.ContentLength {
				return nil, release, readError(io.ErrUnexpectedEOF)
			}
			break
		}
		if rerr != nil {
			return nil, release, readError(rerr)
		}
	}
	if len(chunks) == 1 {
		return chunks[0], release, nil
	}
	body = make([]byte, 0, charged)
	for _, c := range chunks {
		body = append(body, c...)
	}
	return body, release, nil
}

func readError(err error) error {
	var mbe *http.MaxBytesError
	if errors.As(err, &mbe) {
		return errTooLarge
	}
	return fmt.Errorf("%w: reading the request: %v", core.ErrInvalidMessage, err)
}

// decodeHTTPRequest decodes a POST /v1/messages body strictly (decodeStrict). A batch
// (messages present) takes producer_group and topic at its top level and nothing else:
// every other message field there would apply to no message, so it is refused rather
// than ignored.
func decodeHTTPRequest(body []byte) (*HTTPRequest, error) {
	var req HTTPRequest
	top, err := decodeStrictKeys(body, &req, "send one message per request, or a batch in messages[]")
	if err != nil {
		return nil, err
	}
	if !slices.Contains(top, "messages") {
		return &req, nil
	}
	for _, k := range top {
		switch k {
		case "messages", "producer_group", "topic":
		case "body", "body_base64":
			return nil, fmt.Errorf("%w: a batch carries its bodies in messages[]: %q at the top level", core.ErrInvalidMessage, k)
		default:
			return nil, fmt.Errorf("%w: %q at the top level of a batch would apply to no message: set it on each message in messages[] (only producer_group and topic apply to the batch)", core.ErrInvalidMessage, k)
		}
	}
	return &req, nil
}

// decodeStrict decodes an HTTP request body into v: valid UTF-8, exactly one JSON object,
// nothing after it but white space, no unknown field, no field given twice and no field
// name in another case (checkJSONKeys). hint says what to do instead of sending several
// values.
func decodeStrict(body []byte, v any, hint string) error {
	_, err := decodeStrictKeys(body, v, hint)
	return err
}

// decodeStrictKeys is decodeStrict returning the keys of the top-level object.
func decodeStrictKeys(body []byte, v any, hint string) ([]string, error) {
	if !utf8.Valid(body) {
		return nil, fmt.Errorf("%w: the request is not valid UTF-8", core.ErrInvalidMessage)
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return nil, fmt.Errorf("%w: invalid JSON: %v", core.ErrInvalidMessage, err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("%w: invalid JSON: data after the request object (%s)", core.ErrInvalidMessage, hint)
	}
	return checkJSONKeys(body, reflect.TypeOf(v))
}
