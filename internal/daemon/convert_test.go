package daemon

import (
	"fmt"
	"net/http"
	"testing"

	"google.golang.org/grpc/codes"

	"github.com/producerd/producerd/core"
	"github.com/producerd/producerd/remoting"
)

// Typed core errors map to codes clients can act on: only an unknown topic is permanent;
// NameServer or broker unreachable and a spent budget are retryable (issue 11, finding 9).
func TestTypedCoreErrorsMapping(t *testing.T) {
	t.Parallel()
	connect := fmt.Errorf("%w: 127.0.0.1:9876: refused", remoting.ErrConnect)
	for _, tc := range []struct {
		name   string
		err    error
		code   codes.Code
		http   int
		reason string
	}{
		{"unknown topic, auto-create off", &core.RouteError{Topic: "t", Kind: core.ErrTopicNotExist,
			Cause: &remoting.Error{Code: remoting.TopicNotExist}}, codes.NotFound, http.StatusNotFound, "TOPIC_NOT_EXIST"},
		{"name server unreachable", &core.RouteError{Topic: "t", Kind: core.ErrNameServerUnreachable, Cause: connect},
			codes.Unavailable, http.StatusServiceUnavailable, "NAMESERVER_UNREACHABLE"},
		{"no writable queue", &core.RouteError{Topic: "t", Kind: core.ErrNoWritableQueue, Detail: "broker-a perm=R"},
			codes.Unavailable, http.StatusServiceUnavailable, "NO_WRITABLE_QUEUE"},
		{"bad route", &core.RouteError{Topic: "t", Kind: core.ErrBadRoute}, codes.Unavailable, http.StatusServiceUnavailable, "BAD_ROUTE"},
		{"broker unreachable", &core.SendError{Topic: "t", Attempts: 3, Last: connect}, codes.Unavailable, http.StatusServiceUnavailable, "CONNECT_FAILED"},
		{"budget spent", &core.SendError{Topic: "t", Attempts: 2, Timeout: true, Last: core.ErrBrokerSilent},
			codes.DeadlineExceeded, http.StatusGatewayTimeout, "TIMEOUT"},
		{"malformed answer", &core.SendError{Topic: "t", Attempts: 1, Last: fmt.Errorf("%w: field msgId", core.ErrBadResponse)},
			codes.Unavailable, http.StatusServiceUnavailable, "BAD_RESPONSE"},
	} {
		pe := errorToPB(tc.err)
		c := codes.Code(pe.GetGrpcCode())
		if c != tc.code || httpStatus(c) != tc.http || pe.GetReason() != tc.reason {
			t.Errorf("%s: got %v %s (HTTP %d), want %v %s (HTTP %d)", tc.name, c, pe.GetReason(), httpStatus(c), tc.code, tc.reason, tc.http)
		}
	}
}
