package daemon

import (
	"context"
	"crypto/rand"
	"crypto/subtle"
	"errors"
	"fmt"
	"mime"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"

	"github.com/producerd/producerd/internal/config"
)

// AdminRequestHeader marks an admin HTTP request as coming from a program, not a web
// page (a browser cannot send it cross-origin without a CORS preflight the daemon never
// grants). A POST needs it or a JSON content type.
const AdminRequestHeader = "X-Producerd-Request"

// authLogEvery is the least time between two logs of failed admin authentications;
// the failures in between are counted in the next log and in the metric.
const authLogEvery = 10 * time.Second

// adminToken returns the token admin calls must carry: the configured one, else the
// one generated at start.
func (d *Daemon) adminToken() string {
	if t := d.Config().Admin.Token; t != "" {
		return t
	}
	if t := d.genToken.Load(); t != nil {
		return *t
	}
	return ""
}

// tokenOK compares a presented Authorization value with the admin token in constant
// time. Without a token (no admin listener) nothing passes.
func (d *Daemon) tokenOK(authorization string) bool {
	want := d.adminToken()
	if want == "" {
		return false
	}
	got, ok := strings.CutPrefix(authorization, "Bearer ")
	if !ok {
		return false
	}
	return subtle.ConstantTimeCompare([]byte(got), []byte(want)) == 1
}

// authFailed counts a failed admin authentication and logs it, at most once per
// authLogEvery (with the number of failures not logged since).
func (d *Daemon) authFailed(api, remote, what string) {
	d.met.authFailures.WithLabelValues(api).Inc()
	ok, n := d.authLog.allow(authLogEvery, 1)
	if !ok {
		return
	}
	d.log.Warn("admin authentication failed", "api", api, "remote", remote, "path", what, "failures_not_logged", n)
}

// requireToken wraps h with the admin token check.
func (d *Daemon) requireToken(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !d.tokenOK(r.Header.Get("Authorization")) {
			d.authFailed("http", r.RemoteAddr, r.URL.Path)
			writeErrorCode(w, http.StatusUnauthorized, "UNAUTHENTICATED", ErrUnauthenticated.Error())
			return
		}
		h.ServeHTTP(w, r)
	})
}

// grpcTokenOK reports whether a gRPC call carries the admin token ("authorization:
// Bearer TOKEN"); a call without it is counted and logged as a failed authentication of
// method.
func (d *Daemon) grpcTokenOK(ctx context.Context, method string) bool {
	var auth string
	if v := metadata.ValueFromIncomingContext(ctx, "authorization"); len(v) > 0 {
		auth = v[0]
	}
	if d.tokenOK(auth) {
		return true
	}
	remote := ""
	if p, ok := peer.FromContext(ctx); ok {
		remote = p.Addr.String()
	}
	d.authFailed("grpc", remote, method)
	return false
}

// adminAuth checks the bearer token on the Admin service (health and reflection stay
// open).
func (d *Daemon) adminAuth(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
	if strings.HasPrefix(info.FullMethod, "/producerd.v1.Admin/") && !d.grpcTokenOK(ctx, info.FullMethod) {
		return nil, status.Error(codes.Unauthenticated, ErrUnauthenticated.Error())
	}
	return handler(ctx, req)
}

// browserGuard refuses admin HTTP requests a web page could make: a foreign Origin (or
// a browser's cross-site fetch), a Host that is not a loopback name on a loopback
// listener (DNS rebinding), and a POST a browser sends without a preflight (neither a
// JSON content type nor AdminRequestHeader).
func (d *Daemon) browserGuard(loopback bool, h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if _, err := checkBrowser(r, loopback, "admin "); err != nil {
			writeErrorCode(w, http.StatusForbidden, "PERMISSION_DENIED", err.Error())
			return
		}
		h.ServeHTTP(w, r)
	})
}

// checkBrowser returns why r looks like a request a web page made through a browser on
// this machine, and the HTTP status that fits (403, or 415 for a POST a browser can send
// without a preflight), or a nil error. what names the API in the messages ("admin ").
// The admin API and the HTTP ingress share it.
func checkBrowser(r *http.Request, loopback bool, what string) (int, error) {
	if loopback && !loopbackHost(r.Host) {
		return http.StatusForbidden, fmt.Errorf("daemon: Host %q is not a loopback name: this %slistener answers only requests addressed to this machine", r.Host, what)
	}
	if o := r.Header.Get("Origin"); o != "" {
		u, err := url.Parse(o)
		if err != nil || u.Host != r.Host {
			return http.StatusForbidden, fmt.Errorf("daemon: cross-origin %srequests (Origin %q) are refused", what, o)
		}
	}
	if r.Header.Get("Sec-Fetch-Site") == "cross-site" {
		return http.StatusForbidden, fmt.Errorf("daemon: cross-site %srequests are refused", what)
	}
	if r.Method != http.MethodGet && r.Method != http.MethodHead && r.Header.Get(AdminRequestHeader) == "" {
		if mt, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type")); mt != "application/json" {
			return http.StatusUnsupportedMediaType, fmt.Errorf("daemon: this %s%s request needs Content-Type: application/json or the %s header (got %q)",
				what, r.Method, AdminRequestHeader, r.Header.Get("Content-Type"))
		}
	}
	return 0, nil
}

// loopbackHost reports whether a Host header names this machine.
func loopbackHost(hostport string) bool {
	host := hostport
	if h, _, err := net.SplitHostPort(hostport); err == nil {
		host = h
	}
	host = strings.TrimSuffix(strings.TrimPrefix(host, "["), "]")
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// generateToken creates the admin token when none is configured and writes it to path,
// readable by the user only (0600 in a directory only the user may write). Its path is
// logged, never its value.
func (d *Daemon) generateToken(path string) error {
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("daemon: admin token directory: %w", err)
	}
	if err := checkTokenDir(dir); err != nil {
		return err
	}
	tok := rand.Text()
	f, err := os.CreateTemp(dir, ".admin-token-*")
	if err != nil {
		return fmt.Errorf("daemon: admin token: %w", err)
	}
	_, werr := f.WriteString(tok + "\n")
	cerr := f.Close()
	if err := errors.Join(werr, cerr, os.Chmod(f.Name(), 0o600), os.Rename(f.Name(), path)); err != nil {
		_ = os.Remove(f.Name())
		return fmt.Errorf("daemon: admin token: %w", err)
	}
	d.genToken.Store(&tok)
	d.genTokenPath = path
	d.log.Info("no admin token configured: generated one; the CLI on this machine reads it", "file", path)
	return nil
}

// removeToken deletes the generated token file if it still holds this daemon's token.
func (d *Daemon) removeToken() {
	t := d.genToken.Load()
	if t == nil {
		return
	}
	if b, err := os.ReadFile(d.genTokenPath); err == nil && strings.TrimSpace(string(b)) == *t {
		_ = os.Remove(d.genTokenPath)
	}
}

// tokenPath is where the generated token goes for the admin listener at addr.
func tokenPath(cfg *config.Config, addr string) string {
	if cfg.Admin.GeneratedTokenFile != "" {
		return cfg.Admin.GeneratedTokenFile
	}
	return config.DefaultTokenPath(addr)
}

// warnExposure logs, at every start, what the config allowed with insecure = true and
// whether the daemon runs as root.
func (d *Daemon) warnExposure(cfg *config.Config) {
	for _, w := range exposureWarnings(cfg) {
		d.log.Warn(w)
	}
}

// checkTokenDir refuses a directory for the generated token that others could write
// (they could swap the file) or that another user owns.
func checkTokenDir(dir string) error {
	fi, err := os.Lstat(dir)
	if err != nil {
		return fmt.Errorf("daemon: admin token directory: %w", err)
	}
	if st, ok := fi.Sys().(*syscall.Stat_t); !fi.IsDir() || fi.Mode().Perm()&0o022 != 0 || ok && int(st.Uid) != os.Geteuid() {
		return fmt.Errorf("daemon: admin token directory %s must be a directory owned by this user and writable by nobody else", dir)
	}
	return nil
}
