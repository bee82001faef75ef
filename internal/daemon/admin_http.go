package daemon

import (
	"bytes"
	"context"
	"net/http"
	"net/http/pprof"
	"strings"
	"time"
	"unicode"

	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"

	"github.com/producerd/producerd/api/producerdpb"
	"github.com/producerd/producerd/internal/apijson"
)

// adminMux serves the admin API over HTTP/JSON (bodies and answers in the proto's JSON
// form), /metrics and /healthz.
func (d *Daemon) adminMux() http.Handler {
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", d.met.handler())
	mux.HandleFunc("GET /healthz", d.healthz)
	mux.HandleFunc("GET /readyz", d.readyz)
	if d.Config().Admin.Pprof {
		mux.Handle("/debug/pprof/", d.requireToken(http.HandlerFunc(pprof.Index)))
		mux.Handle("/debug/pprof/profile", d.requireToken(http.HandlerFunc(pprof.Profile)))
		mux.Handle("/debug/pprof/trace", d.requireToken(http.HandlerFunc(pprof.Trace)))
	}
	a := &admin{d: d}
	route := func(pattern string, newReq func() proto.Message, call func(context.Context, proto.Message) (proto.Message, error)) {
		mux.HandleFunc(pattern, func(w http.ResponseWriter, r *http.Request) {
			if !d.tokenOK(r.Header.Get("Authorization")) {
				d.authFailed("http", r.RemoteAddr, r.URL.Path)
				writeErrorCode(w, http.StatusUnauthorized, "UNAUTHENTICATED", ErrUnauthenticated.Error())
				return
			}
			req := newReq()
			if r.Method == http.MethodPost && r.ContentLength != 0 {
				var buf bytes.Buffer
				if _, err := buf.ReadFrom(http.MaxBytesReader(w, r.Body, 1<<20)); err != nil {
					writeErrorCode(w, http.StatusBadRequest, "INVALID_ARGUMENT", err.Error())
					return
				}
				if buf.Len() > 0 {
					if err := protojson.Unmarshal(buf.Bytes(), req); err != nil {
						writeErrorCode(w, http.StatusBadRequest, "INVALID_ARGUMENT", err.Error())
						return
					}
				}
			}
			ctx, cancel := context.WithTimeout(r.Context(), 5*time.Minute)
			defer cancel()
			resp, err := call(ctx, req)
			if err != nil {
				st := status.Convert(err)
				writeErrorCode(w, httpStatus(st.Code()), grpcCodeName(st), st.Message())
				return
			}
			b, err := apijson.Marshal(resp)
			if err != nil {
				writeErrorCode(w, http.StatusInternalServerError, "INTERNAL", err.Error())
				return
			}
			w.Header().Set("Content-Type", "application/json")
			_, _ = w.Write(b)
		})
	}
	route("GET /v1/admin/status", func() proto.Message { return &producerdpb.StatusRequest{} },
		func(ctx context.Context, m proto.Message) (proto.Message, error) {
			return a.Status(ctx, m.(*producerdpb.StatusRequest))
		})
	route("GET /v1/admin/strategies", func() proto.Message { return &producerdpb.ListStrategiesRequest{} },
		func(ctx context.Context, m proto.Message) (proto.Message, error) {
			return a.ListStrategies(ctx, m.(*producerdpb.ListStrategiesRequest))
		})
	route("POST /v1/admin/strategies/swap", func() proto.Message { return &producerdpb.SwapStrategyRequest{} },
		func(ctx context.Context, m proto.Message) (proto.Message, error) {
			return a.SwapStrategy(ctx, m.(*producerdpb.SwapStrategyRequest))
		})
	route("POST /v1/admin/reload", func() proto.Message { return &producerdpb.ReloadRequest{} },
		func(ctx context.Context, m proto.Message) (proto.Message, error) {
			return a.Reload(ctx, m.(*producerdpb.ReloadRequest))
		})
	route("POST /v1/admin/drain", func() proto.Message { return &producerdpb.DrainRequest{} },
		func(ctx context.Context, m proto.Message) (proto.Message, error) {
			return a.Drain(ctx, m.(*producerdpb.DrainRequest))
		})
	route("POST /v1/admin/resume", func() proto.Message { return &producerdpb.ResumeRequest{} },
		func(ctx context.Context, m proto.Message) (proto.Message, error) {
			return a.Resume(ctx, m.(*producerdpb.ResumeRequest))
		})
	route("POST /v1/admin/topics", func() proto.Message { return &producerdpb.CreateTopicRequest{} },
		func(ctx context.Context, m proto.Message) (proto.Message, error) {
			return a.CreateTopic(ctx, m.(*producerdpb.CreateTopicRequest))
		})
	mux.HandleFunc("GET /openapi.json", d.serveOpenAPI)
	return jsonNotFound(mux)
}

// grpcCodeName is the stable code of an admin error: the reason of its producerd Error
// detail, else the gRPC code in UPPER_SNAKE ("INVALID_ARGUMENT").
func grpcCodeName(st *status.Status) string {
	for _, d := range st.Details() {
		if pe, ok := d.(*producerdpb.Error); ok && pe.GetReason() != "" {
			return pe.GetReason()
		}
	}
	var b strings.Builder
	for i, r := range st.Code().String() {
		if i > 0 && unicode.IsUpper(r) {
			b.WriteByte('_')
		}
		b.WriteRune(unicode.ToUpper(r))
	}
	return b.String()
}
