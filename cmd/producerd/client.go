package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/producerd/producerd/api/producerdpb"
	"github.com/producerd/producerd/internal/apijson"
	"github.com/producerd/producerd/internal/config"
)

// connFlags are the flags of the commands that talk to a running daemon.
type connFlags struct {
	addr, admin string
	token       string
	tokenFile   string
	file        string
	tls         bool
	ca          string
	insecure    bool
	timeout     time.Duration
}

func envOr(k, def string) string {
	if v := os.Getenv(k); v != "" {
		return v
	}
	return def
}

func (c *connFlags) register(fs *flag.FlagSet, ingress, admin bool) {
	if ingress {
		fs.StringVar(&c.addr, "addr", envOr("PRODUCERD_ADDR", config.DefaultIngressGRPC), "daemon ingress gRPC `address`: host:port, or unix:///path for the ingress.unix socket (env PRODUCERD_ADDR)")
	}
	if admin {
		fs.StringVar(&c.admin, "admin", envOr("PRODUCERD_ADMIN", config.DefaultAdminListen), "daemon admin `address` (env PRODUCERD_ADMIN)")
		fs.StringVar(&c.token, "token", "", "admin bearer `token`; visible to other users in ps: prefer -token-file or env PRODUCERD_ADMIN_TOKEN")
		fs.StringVar(&c.tokenFile, "token-file", envOr("PRODUCERD_ADMIN_TOKEN_FILE", ""), "read the admin token from this `file` (env PRODUCERD_ADMIN_TOKEN_FILE; default: the config's token, else the token the daemon generated for -admin)")
	}
	fs.StringVar(&c.file, "c", "", "take the addresses (and admin token) from this config `file`")
	fs.BoolVar(&c.tls, "tls", false, "connect with TLS")
	fs.StringVar(&c.ca, "ca", "", "PEM `file` of the CA that signed the daemon's certificate (implies -tls)")
	fs.BoolVar(&c.insecure, "insecure-skip-verify", false, "with -tls, do not verify the daemon's certificate")
	fs.DurationVar(&c.timeout, "timeout", 30*time.Second, "deadline of the call")
}

// resolve applies -c and finds the admin token: -token, -token-file, env
// PRODUCERD_ADMIN_TOKEN, the config's token (-c), else the token file the daemon
// generated for the admin address (config.DefaultTokenPath, or the config's
// generated_token_file).
func (c *connFlags) resolve() error {
	if c.token == "" && c.tokenFile != "" {
		b, err := os.ReadFile(c.tokenFile)
		if err != nil {
			return fmt.Errorf("-token-file: %w", err)
		}
		c.token = strings.TrimSpace(string(b))
	}
	if c.token == "" {
		c.token = os.Getenv("PRODUCERD_ADMIN_TOKEN")
	}
	generated := ""
	if c.file != "" {
		cfg, err := config.Load(c.file)
		if err != nil {
			return err
		}
		switch {
		case cfg.Ingress.Unix != "": // the local path skips TCP
			c.addr = "unix://" + cfg.Ingress.Unix
		case cfg.Ingress.GRPC != "":
			c.addr = cfg.Ingress.GRPC
		}
		if cfg.Admin.Listen != "" {
			c.admin = cfg.Admin.Listen
		}
		if c.token == "" {
			c.token = cfg.Admin.Token
		}
		generated = cfg.Admin.GeneratedTokenFile
		if cfg.Ingress.TLS.Enabled() || cfg.Admin.TLS.Enabled() {
			c.tls = true
		}
	}
	if c.token == "" && c.admin != "" {
		c.token = generatedToken(generated, c.admin)
	}
	return nil
}

// generatedToken reads the token a daemon on this machine generated for its admin
// listener at addr ("" when there is none): from file when the config names it, else
// from config.DefaultTokenPath of addr ("localhost" tried as 127.0.0.1 and ::1 too).
func generatedToken(file, addr string) string {
	paths := []string{file}
	if file == "" {
		paths = []string{config.DefaultTokenPath(addr)}
		if host, port, err := net.SplitHostPort(addr); err == nil && strings.EqualFold(host, "localhost") {
			paths = append(paths, config.DefaultTokenPath(net.JoinHostPort("127.0.0.1", port)), config.DefaultTokenPath(net.JoinHostPort("::1", port)))
		}
	}
	for _, p := range paths {
		if b, err := os.ReadFile(p); err == nil {
			return strings.TrimSpace(string(b))
		}
	}
	return ""
}

func (c *connFlags) dial(addr string) (*grpc.ClientConn, error) {
	creds := insecure.NewCredentials()
	if c.tls || c.ca != "" {
		tc := &tls.Config{MinVersion: tls.VersionTLS12, InsecureSkipVerify: c.insecure} //nolint:gosec // explicit flag
		if c.ca != "" {
			pem, err := os.ReadFile(c.ca)
			if err != nil {
				return nil, err
			}
			pool := x509.NewCertPool()
			if !pool.AppendCertsFromPEM(pem) {
				return nil, fmt.Errorf("%s holds no PEM certificate", c.ca)
			}
			tc.RootCAs = pool
		}
		creds = credentials.NewTLS(tc)
	}
	return grpc.NewClient(addr, grpc.WithTransportCredentials(creds), grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(64<<20)))
}

// adminCtx returns a context carrying the bearer token.
func (c *connFlags) adminCtx() (context.Context, context.CancelFunc) {
	ctx, cancel := context.WithTimeout(context.Background(), c.timeout)
	if c.token != "" {
		ctx = metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+c.token)
	}
	return ctx, cancel
}

func (c *connFlags) adminClient() (producerdpb.AdminClient, func(), error) {
	if err := c.resolve(); err != nil {
		return nil, nil, err
	}
	cc, err := c.dial(c.admin)
	if err != nil {
		return nil, nil, err
	}
	return producerdpb.NewAdminClient(cc), func() { _ = cc.Close() }, nil
}

// printProto prints m in producerd's JSON dialect (internal/apijson), the one the HTTP
// APIs answer in.
func printProto(w io.Writer, m proto.Message) {
	if !m.ProtoReflect().IsValid() {
		fmt.Fprintln(w, "null") // a oneway send has no result
		return
	}
	b, err := apijson.Marshal(m)
	if err != nil {
		fmt.Fprintf(w, "{\"error\": %q}\n", err.Error())
		return
	}
	_, _ = w.Write(b)
}

// rpcError renders a gRPC error with its producerd Error detail.
func rpcError(err error) string {
	st, ok := status.FromError(err)
	if !ok {
		return err.Error()
	}
	for _, d := range st.Details() {
		if pe, ok := d.(*producerdpb.Error); ok {
			if pe.GetCode() != 0 {
				return fmt.Sprintf("%s (RocketMQ code %d %s): %s", st.Code(), pe.GetCode(), pe.GetReason(), pe.GetMessage())
			}
			return fmt.Sprintf("%s (%s): %s", st.Code(), pe.GetReason(), pe.GetMessage())
		}
	}
	return fmt.Sprintf("%s: %s", st.Code(), st.Message())
}

// kvFlag collects repeated key=value flags.
type kvFlag map[string]string

func (k kvFlag) String() string {
	parts := make([]string, 0, len(k))
	for key, v := range k {
		parts = append(parts, key+"="+v)
	}
	sort.Strings(parts)
	return strings.Join(parts, ",")
}

func (k kvFlag) Set(s string) error {
	key, v, ok := strings.Cut(s, "=")
	if !ok || key == "" {
		return fmt.Errorf("want key=value, got %q", s)
	}
	k[key] = v
	return nil
}

func splitList(s string) []string {
	var out []string
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}

func cmdSend(e *env, args []string) int {
	fs := newFlags(e, "send", "[flags] TOPIC [BODY]", `
Send one message through a running daemon's gRPC ingress and print the result. The body
is BODY, the contents of -file, or standard input when neither is given (or BODY is -).`,
		`  producerd send TopicTest 'hello world'
  producerd send -tags urgent -keys order-42,customer-7 -p source=cli TopicTest 'hello'
  producerd send -file payload.bin TopicTest
  echo '{"id":42}' | producerd send -group orders -json TopicTest
  producerd send -oneway TopicTest 'fire and forget'`)
	var cf connFlags
	cf.register(fs, true, false)
	group := fs.String("group", "", "producer `group` (optional when the daemon has one)")
	tags := fs.String("tags", "", "message `tags`")
	keys := fs.String("keys", "", "comma-separated message `keys`")
	props := kvFlag{}
	fs.Var(props, "p", "user property `key=value` (repeatable)")
	file := fs.String("file", "", "read the body from `file`")
	delay := fs.Int("delay", 0, "delay `level` 1..18 (0 = none)")
	shard := fs.String("sharding-key", "", "sharding `key`: picks the queue (Java's hash), keeping per-key order")
	deliverAt := fs.String("deliver-at", "", "timer delivery at `time` (RFC 3339; RocketMQ 5.x)")
	after := fs.Duration("after", 0, "timer delivery after `duration`, e.g. 5s (RocketMQ 5.x)")
	oneway := fs.Bool("oneway", false, "send oneway (no result, no retry)")
	asJSON := fs.Bool("json", false, "print the result as JSON")
	pos, code, ok := parse(fs, args)
	if !ok {
		return code
	}
	switch {
	case len(pos) == 0:
		return usageError(fs, "missing TOPIC")
	case len(pos) > 2:
		return usageError(fs, "TOPIC [BODY] expected, got %d arguments (quote a body with spaces)", len(pos))
	}
	if err := cf.resolve(); err != nil {
		return fail(e, "%v", err)
	}
	var body []byte
	var err error
	switch {
	case *file != "":
		body, err = os.ReadFile(*file)
	case len(pos) == 2 && pos[1] != "-":
		body = []byte(pos[1])
	default:
		body, err = io.ReadAll(e.stdin)
	}
	if err != nil {
		return fail(e, "reading the body: %v", err)
	}
	m := &producerdpb.Message{ProducerGroup: *group, Topic: pos[0], Body: body, Tags: *tags, Keys: splitList(*keys),
		DelayLevel: int32(*delay), ShardingKey: *shard}
	if len(props) > 0 {
		m.Properties = props
	}
	if err := setTimer(m, *deliverAt, *after); err != nil {
		return fail(e, "%v", err)
	}
	if *oneway {
		m.Mode = producerdpb.SendMode_SEND_MODE_ONEWAY
	}
	cc, err := cf.dial(cf.addr)
	if err != nil {
		return fail(e, "%v", err)
	}
	defer cc.Close()
	ctx, cancel := context.WithTimeout(context.Background(), cf.timeout)
	defer cancel()
	resp, err := producerdpb.NewIngressClient(cc).Send(ctx, &producerdpb.SendRequest{Message: m})
	if err != nil {
		return fail(e, "send: %s", rpcError(err))
	}
	r := resp.GetResult()
	switch {
	case *asJSON:
		printProto(e.stdout, r)
	case r == nil:
		fmt.Fprintln(e.stdout, "sent (oneway)")
	default:
		fmt.Fprintf(e.stdout, "%s msgId=%s offsetMsgId=%s broker=%s queue=%d queueOffset=%d attempts=%d\n",
			strings.TrimPrefix(r.GetStatus().String(), "SEND_STATUS_"), r.GetMsgId(), r.GetOffsetMsgId(), r.GetBroker(),
			r.GetQueueId(), r.GetQueueOffset(), r.GetAttempts())
	}
	return 0
}

// withAdmin connects to the daemon's admin API and runs call with the call deadline.
func (cf *connFlags) withAdmin(e *env, call func(ctx context.Context, ac producerdpb.AdminClient) int) int {
	ac, closeFn, err := cf.adminClient()
	if err != nil {
		return fail(e, "%v", err)
	}
	defer closeFn()
	ctx, cancel := cf.adminCtx()
	defer cancel()
	return call(ctx, ac)
}

func cmdStatus(e *env, args []string) int {
	fs := newFlags(e, "status", "[flags]", `
Show a running daemon's status: in-flight messages, client instances with their brokers,
connections and routes (with versions), and each group's strategy with its generation,
plugin processes and live fault table.`,
		`  producerd status
  producerd status -json | jq '.groups[].strategy.fault_table'
  producerd status -admin 10.0.0.5:7390 -token-file /etc/producerd/admin.token`)
	var cf connFlags
	cf.register(fs, false, true)
	asJSON := fs.Bool("json", false, "print the full status as JSON")
	if _, code, ok := parse(fs, args); !ok {
		return code
	}
	return cf.withAdmin(e, func(ctx context.Context, ac producerdpb.AdminClient) int {
		st, err := ac.Status(ctx, &producerdpb.StatusRequest{})
		if err != nil {
			return fail(e, "status: %s", rpcError(err))
		}
		if *asJSON {
			printProto(e.stdout, st)
			return 0
		}
		printStatus(e.stdout, st)
		return 0
	})
}

// printStatus prints the status as aligned tables: the daemon, then per client its
// brokers, connections and routes, then per group its strategy, plugins and fault table.
func printStatus(w io.Writer, st *producerdpb.StatusResponse) {
	in := st.GetInflight()
	state := "serving"
	switch {
	case st.GetDraining():
		state = "DRAINING"
	case !st.GetReady():
		state = "NOT READY (" + st.GetNotReadyReason() + ")"
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintf(tw, "version\t%s\n", st.GetVersion())
	fmt.Fprintf(tw, "pid\t%d\n", st.GetPid())
	fmt.Fprintf(tw, "up\t%s\n", time.Since(time.UnixMilli(st.GetStartedUnixMs())).Round(time.Second))
	fmt.Fprintf(tw, "config\t%s (generation %d)\n", st.GetConfigFile(), st.GetConfigGeneration())
	fmt.Fprintf(tw, "state\t%s\n", state)
	fmt.Fprintf(tw, "in flight\t%d of %d messages, %s of %s\n", in.GetMessages(), in.GetMaxMessages(), bytesText(in.GetBytes()), bytesText(in.GetMaxBytes()))
	_ = tw.Flush()
	for _, c := range st.GetClients() {
		fmt.Fprintf(w, "\nCLIENT %s (groups %s)\n", c.GetClientId(), strings.Join(c.GetGroups(), ", "))
		tw = tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "BROKER\tADDRESS")
		for _, b := range c.GetBrokers() {
			fmt.Fprintf(tw, "%s\t%s\n", b.GetName(), b.GetAddr())
		}
		_ = tw.Flush()
		if len(c.GetConnections()) > 0 {
			fmt.Fprintln(w)
			tw = tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "CONNECTION\tPENDING\tIN\tOUT\tTLS")
			for _, cn := range c.GetConnections() {
				fmt.Fprintf(tw, "%s\t%d\t%s\t%s\t%v\n", cn.GetAddr(), cn.GetPending(), bytesText(cn.GetBytesIn()), bytesText(cn.GetBytesOut()), cn.GetTls())
			}
			_ = tw.Flush()
		}
		if len(c.GetRoutes()) > 0 {
			fmt.Fprintln(w)
			tw = tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "ROUTE\tVERSION\tQUEUES")
			for _, r := range c.GetRoutes() {
				per := map[string]int{}
				for _, q := range r.GetQueues() {
					per[q.GetBroker()]++
				}
				names := make([]string, 0, len(per))
				for b := range per {
					names = append(names, b)
				}
				sort.Strings(names)
				qs := make([]string, len(names))
				for i, b := range names {
					qs[i] = fmt.Sprintf("%s:%d", b, per[b])
				}
				queues := strings.Join(qs, " ")
				if r.GetFromDefault() {
					queues += " (from TBW102)"
				}
				fmt.Fprintf(tw, "%s\t%d\t%s\n", r.GetTopic(), r.GetVersion(), queues)
			}
			_ = tw.Flush()
		}
	}
	if len(st.GetGroups()) == 0 {
		return
	}
	fmt.Fprintln(w)
	tw = tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "GROUP\tSTRATEGY\tPLUGIN\tGENERATION\tSTATE")
	for _, g := range st.GetGroups() {
		s := g.GetStrategy()
		fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%s\n", g.GetGroup(), s.GetName(), s.GetPlugin(), s.GetGeneration(), s.GetState())
	}
	_ = tw.Flush()
	for _, g := range st.GetGroups() {
		s := g.GetStrategy()
		if len(s.GetPlugins()) == 0 && len(s.GetFaultTable()) == 0 && s.GetLastError() == "" {
			continue
		}
		fmt.Fprintf(w, "\nGROUP %s\n", g.GetGroup())
		tw = tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
		if len(s.GetPlugins()) > 0 {
			fmt.Fprintln(tw, "PLUGIN\tPID\tUSERS\tRESTARTS\tSTATE")
			for _, p := range s.GetPlugins() {
				fmt.Fprintf(tw, "%s\t%d\t%d\t%d\t%s\n", p.GetName(), p.GetPid(), p.GetUsers(), p.GetRestarts(), p.GetState())
			}
			_ = tw.Flush()
		}
		if len(s.GetFaultTable()) > 0 {
			fmt.Fprintln(tw, "BROKER\tHEALTH\tLAST LATENCY")
			for _, h := range s.GetFaultTable() {
				avail := "available"
				if !h.GetAvailable() {
					avail = "ISOLATED until " + time.UnixMilli(h.GetUntilUnixMs()).Format(time.TimeOnly)
				}
				fmt.Fprintf(tw, "%s\t%s\t%s\n", h.GetBroker(), avail, (time.Duration(h.GetLatencyUs()) * time.Microsecond).String())
			}
		}
		_ = tw.Flush()
		if s.GetLastError() != "" {
			fmt.Fprintf(w, "last error: %s\n", s.GetLastError())
		}
	}
}

// bytesText writes n bytes with a binary unit: 512 B, 1.5 KiB, 64.0 MiB.
func bytesText(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}

func cmdStrategy(e *env, args []string) int {
	fs := newFlags(e, "strategy", "list | swap NAME [-group GROUP]", `
List the configured strategies (and the built-ins) with the groups using each, or swap
the active strategy of every group (or of -group) to NAME while traffic flows. A swap
builds and health-checks the new strategy first; on failure the old one stays.`,
		`  producerd strategy list
  producerd strategy swap rr
  producerd strategy swap latency -group orders`)
	var cf connFlags
	cf.register(fs, false, true)
	group := fs.String("group", "", "swap only this producer `group`")
	asJSON := fs.Bool("json", false, "print JSON")
	pos, code, ok := parse(fs, args)
	if !ok {
		return code
	}
	switch {
	case len(pos) == 0:
		return usageError(fs, "missing list or swap")
	case pos[0] != "list" && pos[0] != "swap":
		return usageError(fs, "unknown subcommand %q: want list or swap", pos[0])
	case pos[0] == "swap" && len(pos) != 2:
		return usageError(fs, "swap takes one strategy NAME")
	case pos[0] == "list" && len(pos) != 1:
		return usageError(fs, "list takes no argument")
	}
	return cf.withAdmin(e, func(ctx context.Context, ac producerdpb.AdminClient) int {
		if pos[0] == "list" {
			resp, err := ac.ListStrategies(ctx, &producerdpb.ListStrategiesRequest{})
			if err != nil {
				return fail(e, "strategy list: %s", rpcError(err))
			}
			if *asJSON {
				printProto(e.stdout, resp)
				return 0
			}
			for _, s := range resp.GetStrategies() {
				active := ""
				if len(s.GetActiveIn()) > 0 {
					active = "  active in " + strings.Join(s.GetActiveIn(), ",")
				}
				fmt.Fprintf(e.stdout, "%-14s %-24s %s%s\n", s.GetName(), s.GetPlugin(), s.GetSummary(), active)
			}
			return 0
		}
		resp, err := ac.SwapStrategy(ctx, &producerdpb.SwapStrategyRequest{Name: pos[1], ProducerGroup: *group})
		if err != nil {
			return fail(e, "strategy swap: %s", rpcError(err))
		}
		if *asJSON {
			printProto(e.stdout, resp)
			return 0
		}
		for _, s := range resp.GetSwapped() {
			fmt.Fprintf(e.stdout, "group %s: %s -> %s (generation %d)\n", s.GetGroup(), s.GetFrom(), s.GetTo(), s.GetGeneration())
		}
		return 0
	})
}

func cmdReload(e *env, args []string) int {
	fs := newFlags(e, "reload", "[flags]", `
Make a running daemon re-read its config file, as SIGHUP does. A broken config leaves
the running one in place and the error is printed. Changed strategies are swapped;
settings that need a restart are listed.`,
		`  producerd reload
  producerd reload -admin 127.0.0.1:7390 -token-file /etc/producerd/admin.token`)
	var cf connFlags
	cf.register(fs, false, true)
	if _, code, ok := parse(fs, args); !ok {
		return code
	}
	return cf.withAdmin(e, func(ctx context.Context, ac producerdpb.AdminClient) int {
		resp, err := ac.Reload(ctx, &producerdpb.ReloadRequest{})
		if err != nil {
			return fail(e, "reload: %s", rpcError(err))
		}
		fmt.Fprintf(e.stdout, "reloaded (config generation %d)\n", resp.GetConfigGeneration())
		for _, c := range resp.GetChanges() {
			fmt.Fprintf(e.stdout, "  changed: %s\n", c)
		}
		for _, c := range resp.GetRestartNeeded() {
			fmt.Fprintf(e.stdout, "  needs a restart: %s\n", c)
		}
		return 0
	})
}

func cmdDrain(e *env, args []string) int {
	fs := newFlags(e, "drain", "[-resume] [flags]", `
Make a running daemon stop accepting messages (they get UNAVAILABLE, HTTP 503) and wait
for those in flight, up to daemon.shutdown_timeout; prints how many remained. The
daemon keeps running; -resume makes it accept messages again.`,
		`  producerd drain
  producerd drain -resume`)
	var cf connFlags
	cf.register(fs, false, true)
	resume := fs.Bool("resume", false, "accept messages again")
	if _, code, ok := parse(fs, args); !ok {
		return code
	}
	return cf.withAdmin(e, func(ctx context.Context, ac producerdpb.AdminClient) int {
		if *resume {
			if _, err := ac.Resume(ctx, &producerdpb.ResumeRequest{}); err != nil {
				return fail(e, "resume: %s", rpcError(err))
			}
			fmt.Fprintln(e.stdout, "resumed")
			return 0
		}
		resp, err := ac.Drain(ctx, &producerdpb.DrainRequest{})
		if err != nil {
			return fail(e, "drain: %s", rpcError(err))
		}
		fmt.Fprintf(e.stdout, "drained; %d message(s) still in flight\n", resp.GetRemaining())
		return 0
	})
}
