package daemon

import (
	"net"
	"net/http"
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
		code, err := checkBrowser(r, lb, "")
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
