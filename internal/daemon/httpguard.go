package daemon

import (
	"fmt"
	"mime"
	"net"
	"net/http"
	"net/url"
)

// ingressGuard refuses ingress HTTP requests a web page could make through a browser on
// this machine, as the admin API does (browserGuard): a foreign Origin or a cross-site
// fetch, a Host that is not a loopback name on a loopback listener (DNS rebinding), and
// a POST without Content-Type: application/json (or AdminRequestHeader). A page can post
// text/plain or a form anywhere without a CORS preflight; it cannot send a JSON content
// type or a custom header without one, and the daemon never grants a preflight. Programs
// (curl -H 'Content-Type: application/json', every HTTP client library) are unaffected.
func (d *Daemon) ingressGuard(loopback bool, h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// A Unix socket is out of a browser's reach and has no host name to rebind: only
		// the TCP listener's Host is checked.
		lb := loopback
		if a, ok := r.Context().Value(http.LocalAddrContextKey).(net.Addr); ok && a.Network() == "unix" {
			lb = false
		}
		code, err := checkIngressBrowser(r, lb)
		if err != nil {
			d.reject(apiHTTP, err)
			reason := "PERMISSION_DENIED"
			if code == http.StatusUnsupportedMediaType {
				reason = "INVALID_MESSAGE"
			}
			writeErrorCode(w, code, reason, err.Error())
			return
		}
		h.ServeHTTP(w, r)
	})
}

// checkIngressBrowser returns the HTTP status and the reason to refuse r, or nil.
func checkIngressBrowser(r *http.Request, loopback bool) (int, error) {
	if loopback && !loopbackHost(r.Host) {
		return http.StatusForbidden, fmt.Errorf("daemon: Host %q is not a loopback name: this listener answers only requests addressed to this machine", r.Host)
	}
	if o := r.Header.Get("Origin"); o != "" {
		u, err := url.Parse(o)
		if err != nil || u.Host != r.Host {
			return http.StatusForbidden, fmt.Errorf("daemon: cross-origin requests (Origin %q) are refused", o)
		}
	}
	if r.Header.Get("Sec-Fetch-Site") == "cross-site" {
		return http.StatusForbidden, fmt.Errorf("daemon: cross-site requests are refused")
	}
	if r.Method == http.MethodPost && r.Header.Get(AdminRequestHeader) == "" {
		mt, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
		if mt != "application/json" {
			return http.StatusUnsupportedMediaType, fmt.Errorf("daemon: a POST needs Content-Type: application/json (got %q)", r.Header.Get("Content-Type"))
		}
	}
	return 0, nil
}
