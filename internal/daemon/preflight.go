package daemon

import (
	"fmt"
	"os"
	"syscall"

	"github.com/producerd/producerd/host"
	"github.com/producerd/producerd/internal/config"
)

// selfExecutable is where the built-in plugins are started from: the daemon's own,
// already-running image (host.SelfExecutable), never a path someone could replace.
var selfExecutable = host.SelfExecutable

// checkPlugins runs, for every external strategy (binary or WebAssembly module), the
// checks the host makes before it runs one (host.CheckPlugin): the trust check unless
// allow_insecure_path = true, and the sha256 pin. Start meets them when it starts the
// plugins; Check reports them without starting anything.
func checkPlugins(cfg *config.Config) []error {
	var errs []error
	for _, name := range cfg.StrategyNames() {
		s := cfg.Strategies[name]
		if s.Path == "" {
			continue
		}
		if err := host.CheckPlugin(s.Path, s.AllowInsecurePath, s.SHA256); err != nil {
			errs = append(errs, fmt.Errorf("%s: strategy %s: %w", cfg.File, name, err))
		}
	}
	return errs
}

// StartWarnings returns, one line each, the warnings Start logs for cfg before it
// serves: the configuration's own (config.Config.Warnings), the listeners insecure =
// true exposes, running as root, and limits.max_connections lowered to fit the
// descriptor limit. `producerd validate` prints them.
func StartWarnings(cfg *config.Config) []string {
	out := append([]string(nil), cfg.Warnings()...)
	out = append(out, exposureWarnings(cfg)...)
	if fit, nofile, lowered := connectionFit(cfg.Limits.MaxConnections); lowered {
		out = append(out, fmt.Sprintf("limits.max_connections lowered to fit the descriptor limit (ulimit -n %d): %d configured, %d used", nofile, cfg.Limits.MaxConnections, fit))
	}
	return out
}

// exposureWarnings are what the config allowed with insecure = true, and running as
// root; warnExposure logs them at every start.
func exposureWarnings(cfg *config.Config) []string {
	var out []string
	for _, l := range []struct{ name, addr string }{
		{"ingress grpc", cfg.Ingress.GRPC}, {"ingress http", cfg.Ingress.HTTP}, {"ingress rocketmq grpc", cfg.Ingress.RocketMQGRPC}} {
		if l.addr != "" && !config.IsLoopback(l.addr) && !cfg.Ingress.TLS.Enabled() {
			out = append(out, fmt.Sprintf("INSECURE: a listener on a non-loopback address without TLS (ingress.insecure = true): %s on %s", l.name, l.addr))
		}
	}
	if a := cfg.Admin.Listen; a != "" && !config.IsLoopback(a) && (!cfg.Admin.TLS.Enabled() || cfg.Admin.Token == "") {
		out = append(out, fmt.Sprintf("INSECURE: the admin API listens on a non-loopback address without TLS and a configured token (admin.insecure = true): %s", a))
	}
	if os.Geteuid() == 0 {
		out = append(out, "producerd runs as root: run it as an unprivileged user (it needs no privilege)")
	}
	return out
}

// connectionFit is the per-listener connection cap that leaves descriptors for the
// brokers and plugins: a quarter of the descriptor limit (ulimit -n) above a reserve of
// 64, at least 16. lowered reports that configured is above it.
func connectionFit(configured int) (fit int, nofile uint64, lowered bool) {
	var rl syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &rl); err != nil || rl.Cur == 0 || rl.Cur > 1<<30 {
		return configured, 0, false
	}
	fit = max(16, (int(rl.Cur)-64)/4)
	if configured <= fit {
		return configured, rl.Cur, false
	}
	return fit, rl.Cur, true
}
