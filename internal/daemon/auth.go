package daemon

import (
	"context"
	"crypto/subtle"
	"net/http"
	"strings"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
)

// requireToken wraps h with the admin token check.
func (d *Daemon) requireToken(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !d.tokenOK(r.Header.Get("Authorization")) {
			writeJSON(w, http.StatusUnauthorized, HTTPResponse{Error: &HTTPError{Reason: "UNAUTHENTICATED", Message: ErrUnauthenticated.Error()}})
			return
		}
		h.ServeHTTP(w, r)
	})
}

// tokenOK compares a presented Authorization value with the configured token in
// constant time. No token configured means every call is allowed.
func (d *Daemon) tokenOK(authorization string) bool {
	want := d.Config().Admin.Token
	if want == "" {
		return true
	}
	got, ok := strings.CutPrefix(authorization, "Bearer ")
	if !ok {
		return false
	}
	return subtle.ConstantTimeCompare([]byte(got), []byte(want)) == 1
}

// adminAuth checks the bearer token on the Admin service (health and reflection stay
// open).
func (d *Daemon) adminAuth(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
	if strings.HasPrefix(info.FullMethod, "/producerd.v1.Admin/") {
		md, _ := metadata.FromIncomingContext(ctx)
		var auth string
		if v := md.Get("authorization"); len(v) > 0 {
			auth = v[0]
		}
		if !d.tokenOK(auth) {
			return nil, status.Error(codes.Unauthenticated, ErrUnauthenticated.Error())
		}
	}
	return handler(ctx, req)
}
