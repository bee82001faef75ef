package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/producerd/producerd/devbroker"
	"github.com/producerd/producerd/internal/config"
	"github.com/producerd/producerd/internal/daemon"
)

// devConfig is the daemon's config in dev mode; the %s are filled with the addresses.
const devConfig = `
[daemon]
log_level = %q
shutdown_timeout = "5s"

[ingress]
grpc = %q
http = %q

[admin]
listen = %q

[client]
name_servers = [%q]
instance_name = "producerd-dev"

[strategy.latency]
plugin = "builtin:latencyfault"
settings = { preset = "rocketmq5" }

[strategy.rr]
plugin = "builtin:roundrobin"

[[producer]]
group = "producerd"
strategy = "latency"
`

func cmdDev(e *env, args []string) int {
	fs := newFlags(e, "dev", "[flags]", `
Start, in one process, a dev broker (an in-memory NameServer and brokers speaking the
RocketMQ protocol: for trying things out, not for data you care about) with a few
topics, and the daemon in front of it with the built-in strategies as plugins, then
print how to send. Stop it with Ctrl-C.

The dev broker auto-creates unknown topics. Use 127.0.0.1:0 for any address to take a
free port (the ports chosen are printed).`,
		`  producerd dev
  producerd dev -brokers 3 -topics orders,payments
  producerd dev -c producer.toml           (your strategies, on the dev broker)
  producerd dev -broker-only &   producerd run -c producer.toml
  producerd dev -grpc 127.0.0.1:0 -http 127.0.0.1:0 -admin 127.0.0.1:0 -namesrv 127.0.0.1:0`)
	grpcAddr := fs.String("grpc", config.DefaultIngressGRPC, "ingress gRPC listen `address`")
	httpAddr := fs.String("http", config.DefaultIngressHTTP, "ingress HTTP listen `address`")
	adminAddr := fs.String("admin", config.DefaultAdminListen, "admin listen `address`")
	nsAddr := fs.String("namesrv", "127.0.0.1:9876", "dev NameServer listen `address` (host must be an IP)")
	brokers := fs.Int("brokers", 2, "number of dev brokers")
	topics := fs.String("topics", "TopicTest,orders,payments", "comma-separated `topics` to create (4 queues per broker)")
	level := fs.String("log-level", "info", "daemon log `level`")
	format := fs.String("log-format", "text", "log `format`: text or json")
	freePorts := fs.Bool("free-ports", false, "listen on free ports (127.0.0.1:0) for every address not given, and print them")
	brokerOnly := fs.Bool("broker-only", false, "start only the dev broker (then run the daemon with: producerd run -c producer.toml)")
	userConfig := fs.String("c", "", "run the producer groups and strategies of this config `file` (your own plugins and .wasm modules) against the dev broker; its name servers, listeners, TLS and ACL are replaced by the dev ones")
	if _, code, ok := parse(fs, args); !ok {
		return code
	}
	if *format != "text" && *format != "json" {
		return usageError(fs, "-log-format %q: want text or json", *format)
	}
	if *freePorts {
		set := map[string]bool{}
		fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
		for name, addr := range map[string]*string{"grpc": grpcAddr, "http": httpAddr, "admin": adminAddr, "namesrv": nsAddr} {
			if !set[name] {
				*addr = "127.0.0.1:0"
			}
		}
	}
	if *brokers < 1 || *brokers > 26 {
		return fail(e, "dev: -brokers must be in 1..26")
	}
	nsHost, nsPortStr, found := strings.Cut(*nsAddr, ":")
	nsPort, err := strconv.Atoi(nsPortStr)
	if !found || err != nil {
		return fail(e, "dev: -namesrv %q: want IP:port", *nsAddr)
	}
	log := daemon.NewLogger(*level, *format, e.stderr)
	start := time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	bcfg := devbroker.Config{Host: nsHost, NameServerPort: nsPort, AutoCreate: true, Topics: map[string]int{},
		DefaultTopicQueueNums: 4, Logger: log}
	for i := range *brokers {
		bcfg.Brokers = append(bcfg.Brokers, "broker-"+string(rune('a'+i)))
	}
	for _, t := range splitList(*topics) {
		bcfg.Topics[t] = 4
	}
	cluster, err := devbroker.Start(ctx, bcfg)
	if err != nil {
		return fail(e, "dev: start the dev broker: %v%s", err, portHint(err, "-namesrv"))
	}
	defer cluster.Close()

	if *brokerOnly {
		return devBrokerOnly(e, cluster, log, start)
	}
	text := fmt.Sprintf(devConfig, *level, *grpcAddr, *httpAddr, *adminAddr, cluster.NameServerAddr())
	parseDev := func() (*config.Config, error) { return config.Parse("dev.toml", []byte(text), ".") }
	if *userConfig != "" {
		parseDev = devUserConfig(*userConfig, *level, *grpcAddr, *httpAddr, *adminAddr, cluster.NameServerAddr())
	}
	cfg, err := parseDev()
	if err != nil {
		return fail(e, "dev: %v", err)
	}
	tuneRuntime(cfg.Daemon, log)
	d, err := daemon.New(daemon.Options{Config: cfg, Logger: log, Version: versionString(), ReloadConfig: parseDev})
	if err != nil {
		return fail(e, "dev: %v", err)
	}
	defer adaptProcs(cfg.Daemon, d.Requests, log)()
	sigs := make(chan os.Signal, 4)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP)
	defer signal.Stop(sigs)
	if err := d.Start(ctx); err != nil {
		return fail(e, "dev: start the daemon: %v%s", err, portHint(err, "-grpc, -http or -admin"))
	}
	g, h, a := d.Addrs()
	var names []string
	for _, b := range cluster.Brokers() {
		names = append(names, b.Name()+"="+b.Addr())
	}
	topicList := splitList(*topics)
	slices.Sort(topicList)
	example := "TopicTest"
	if len(topicList) > 0 {
		example = topicList[0]
	}
	fmt.Fprintf(e.stdout, `producerd dev is ready (%s)
  dev NameServer:  %s
  dev brokers:     %s
  topics:          %s (others are auto-created)
  ingress gRPC:    %s
  ingress HTTP:    %s
  admin:           %s

Send a message:
  producerd send -addr %s %s 'hello'
  curl -s -X POST http://%s/v1/messages -H 'Content-Type: application/json' -d '{"topic":"%s","body":"hello","keys":["k1"]}'
  go run github.com/fullstorydev/grpcurl/cmd/grpcurl@v1.9.4 -plaintext -d '{"message":{"topic":"%s","body":"aGVsbG8="}}' %s producerd.v1.Ingress/Send
Look around:
  producerd status -admin %s
  producerd strategy list -admin %s
  producerd strategy swap rr -admin %s
  producerd bench -addr %s -d 10s %s
  curl -s http://%s/metrics | grep producerd_
Stop with Ctrl-C.
`, time.Since(start).Round(time.Millisecond), cluster.NameServerAddr(), strings.Join(names, " "), strings.Join(topicList, ", "),
		g, h, a, g, example, h, example, example, g, a, a, a, g, example, a)
	return serveUntilSignal(d, log, sigs)
}

// devBrokerOnly serves the dev broker alone until SIGINT or SIGTERM.
func devBrokerOnly(e *env, cluster *devbroker.Cluster, log hclog.Logger, start time.Time) int {
	sigs := make(chan os.Signal, 2)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM)
	defer signal.Stop(sigs)
	var names []string
	for _, b := range cluster.Brokers() {
		names = append(names, b.Name()+"="+b.Addr())
	}
	fmt.Fprintf(e.stdout, `dev broker is ready (%s)
  dev NameServer:  %s
  dev brokers:     %s
Run the daemon against it:
  producerd run -c producer.toml
Stop with Ctrl-C.
`, time.Since(start).Round(time.Millisecond), cluster.NameServerAddr(), strings.Join(names, " "))
	sig := <-sigs
	log.Info("signal received: stopping the dev broker", "signal", sig.String())
	return 0
}

// portHint explains an "address already in use" start failure of dev: which flag moves
// the listener, and -free-ports.
func portHint(err error, flags string) string {
	if !errors.Is(err, syscall.EADDRINUSE) {
		return ""
	}
	return "\n  the port is taken (another producerd dev, NameServer or daemon?): choose another with " + flags +
		" ADDR, or run 'producerd dev -free-ports' to take free ports (they are printed)"
}

// devUserConfig loads the user's config (and again on reload) and points it at the dev
// broker: its producer groups and strategies stay, the cluster-facing and listening
// parts become the dev ones.
func devUserConfig(path, level, grpcAddr, httpAddr, adminAddr, ns string) func() (*config.Config, error) {
	return func() (*config.Config, error) {
		cfg, err := config.Load(path)
		if err != nil {
			return nil, err
		}
		cfg.Daemon.LogLevel = level
		cfg.Ingress.GRPC, cfg.Ingress.HTTP, cfg.Ingress.TLS = grpcAddr, httpAddr, config.TLS{}
		// The user's other listeners (Unix socket, RocketMQ 5 gRPC) are theirs, not dev's.
		cfg.Ingress.Unix, cfg.Ingress.RocketMQGRPC, cfg.Ingress.RocketMQGRPCAuth = "", "", nil
		cfg.Admin.Listen, cfg.Admin.TLS = adminAddr, config.TLS{}
		cfg.Client.NameServers, cfg.Client.InstanceName = []string{ns}, "producerd-dev"
		cfg.Client.TLS, cfg.Client.TLSCA, cfg.Client.ACL = false, "", nil
		return cfg, nil
	}
}
