package daemon

import (
	"context"
	"fmt"
	"maps"
	"net/http"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracegrpc"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"
	"google.golang.org/grpc/metadata"

	"github.com/producerd/producerd/api/producerdpb"
	"github.com/producerd/producerd/internal/config"
	"github.com/producerd/producerd/plugins/sdk"
)

// OpenTelemetry tracing ([tracing], off by default). Each ingress send gets a span
// ("send TOPIC", kind producer) parented on the caller's W3C traceparent (gRPC metadata
// or HTTP header); each attempt to a broker is a child span ("attempt TOPIC"); and the
// send span's context is written into the message's user properties traceparent and
// tracestate, as the OpenTelemetry instrumentation of the RocketMQ 5 Java client does,
// so a consumer continues the trace.

// tracerName is the instrumentation scope of producerd's spans.
const tracerName = "github.com/producerd/producerd"

// propagator reads and writes W3C trace context.
var propagator = propagation.TraceContext{}

// tracing is the daemon's tracer; a no-op one when tracing is off.
type tracing struct {
	on       bool
	tracer   trace.Tracer
	shutdown func(context.Context) error
}

// newTracing builds the tracer: opts.TracerProvider when set (tests), else an OTLP/gRPC
// exporter when cfg.Enabled, else nothing.
func newTracing(cfg config.Tracing, tp trace.TracerProvider, version string) (*tracing, error) {
	if tp != nil {
		return &tracing{on: true, tracer: tp.Tracer(tracerName, trace.WithInstrumentationVersion(version)),
			shutdown: func(context.Context) error { return nil }}, nil
	}
	if !cfg.Enabled {
		return &tracing{tracer: noop.NewTracerProvider().Tracer(tracerName), shutdown: func(context.Context) error { return nil }}, nil
	}
	var opts []otlptracegrpc.Option
	if cfg.Endpoint != "" {
		opts = append(opts, otlptracegrpc.WithEndpoint(cfg.Endpoint))
	}
	if cfg.Insecure {
		opts = append(opts, otlptracegrpc.WithInsecure())
	}
	// New does not dial: a collector that is down costs dropped spans, not a failed start.
	exp, err := otlptracegrpc.New(context.Background(), opts...)
	if err != nil {
		return nil, fmt.Errorf("daemon: tracing: %w", err)
	}
	res := resource.NewSchemaless(attribute.String("service.name", "producerd"), attribute.String("service.version", version))
	stp := sdktrace.NewTracerProvider(sdktrace.WithBatcher(exp), sdktrace.WithResource(res),
		sdktrace.WithSampler(sdktrace.ParentBased(sdktrace.TraceIDRatioBased(cfg.SampleRatio))))
	return &tracing{on: true, tracer: stp.Tracer(tracerName, trace.WithInstrumentationVersion(version)), shutdown: stp.Shutdown}, nil
}

// mdCarrier reads gRPC metadata as a TextMapCarrier.
type mdCarrier metadata.MD

func (c mdCarrier) Get(k string) string {
	if v := metadata.MD(c).Get(k); len(v) > 0 {
		return v[0]
	}
	return ""
}
func (c mdCarrier) Set(k, v string) { metadata.MD(c).Set(k, v) }
func (c mdCarrier) Keys() []string {
	out := make([]string, 0, len(c))
	for k := range c {
		out = append(out, k)
	}
	return out
}

// withHTTPTraceparent returns r's context with the caller's trace context from its
// headers.
func withHTTPTraceparent(r *http.Request) context.Context {
	return propagator.Extract(r.Context(), propagation.HeaderCarrier(r.Header))
}

// startSend starts the span of one ingress send (or batch) of group to topic, parented
// on the caller's trace context (gRPC metadata, or what withHTTPTraceparent put in ctx),
// and returns the properties each message should carry: traceparent and tracestate of
// the span. With tracing off it returns ctx, a no-op span and nil.
func (t *tracing) startSend(ctx context.Context, api, group, topic string, batch int) (context.Context, trace.Span, map[string]string) {
	if !t.on {
		return ctx, trace.SpanFromContext(context.Background()), nil
	}
	if md, ok := metadata.FromIncomingContext(ctx); ok && !trace.SpanContextFromContext(ctx).IsValid() {
		ctx = propagator.Extract(ctx, mdCarrier(md))
	}
	attrs := []attribute.KeyValue{
		attribute.String("messaging.system", "rocketmq"),
		attribute.String("messaging.operation.type", "send"),
		attribute.String("messaging.destination.name", topic),
		attribute.String("messaging.rocketmq.client_group", group),
		attribute.String("producerd.api", api),
	}
	if batch > 0 {
		attrs = append(attrs, attribute.Int("messaging.batch.message_count", batch))
	}
	ctx, span := t.tracer.Start(ctx, "send "+topic, trace.WithSpanKind(trace.SpanKindProducer), trace.WithAttributes(attrs...))
	props := map[string]string{}
	propagator.Inject(ctx, propagation.MapCarrier(props))
	return ctx, span, props
}

// endSend ends a send span with its outcome.
func endSend(span trace.Span, msgID string, err error) {
	if !span.IsRecording() { // tracing off: no attribute slice per send for a span that drops it
		span.End()
		return
	}
	if msgID != "" {
		span.SetAttributes(attribute.String("messaging.message.id", msgID))
	}
	if err != nil {
		span.SetStatus(codes.Error, errorToPB(err).GetReason())
		span.RecordError(err)
	}
	span.End()
}

// withTraceProperties returns m's properties with the trace context added (a copy: the
// request's map is not changed).
func withTraceProperties(m *producerdpb.Message, props map[string]string) map[string]string {
	if len(props) == 0 {
		return m.GetProperties()
	}
	out := make(map[string]string, len(m.GetProperties())+len(props))
	maps.Copy(out, m.GetProperties())
	maps.Copy(out, props)
	return out
}

// attemptHook records an attempt as a child span of the send span in ctx, after the
// fact: it started o.Latency ago.
func (t *tracing) attemptHook() func(ctx context.Context, topic string, o sdk.Outcome) {
	if t == nil || !t.on { // nil: a Daemon of Check, which sends nothing
		return nil
	}
	return func(ctx context.Context, topic string, o sdk.Outcome) {
		if !trace.SpanContextFromContext(ctx).IsValid() {
			return
		}
		end := time.Now()
		_, span := t.tracer.Start(ctx, "attempt "+topic, trace.WithSpanKind(trace.SpanKindClient), trace.WithTimestamp(end.Add(-o.Latency)),
			trace.WithAttributes(
				attribute.String("messaging.system", "rocketmq"),
				attribute.String("messaging.destination.name", topic),
				attribute.String("messaging.rocketmq.broker", o.Broker),
				attribute.Int("messaging.destination.partition.id", int(o.Queue)),
				attribute.String("producerd.outcome", outcomeResult(o)),
			))
		if o.Kind != sdk.OutcomeOK {
			span.SetStatus(codes.Error, outcomeResult(o))
		}
		span.End(trace.WithTimestamp(end))
	}
}
