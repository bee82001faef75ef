//go:build !wasip1

package pluginclient_test

import (
	"context"
	"errors"
	"hash/fnv"
	"net"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/test/bufconn"

	"github.com/producerd/producerd/host/internal/pluginclient"
	"github.com/producerd/producerd/internal/strategywire"
	"github.com/producerd/producerd/internal/strategywire/strategypb"
	"github.com/producerd/producerd/internal/testwait"
	"github.com/producerd/producerd/plugins/roundrobin"
	"github.com/producerd/producerd/plugins/sdk"
	"github.com/producerd/producerd/plugins/sdk/sdktest"
)

// connect serves impl on an in-memory gRPC connection, as a plugin process does, and
// returns a described, configured session to it.
func connect(t *testing.T, impl sdk.Selector, opts pluginclient.SessionOptions) *pluginclient.Session {
	t.Helper()
	return connectVia(t, impl, opts, nil)
}

// connectVia is connect with the host's end of the connection wrapped by wrap (nil:
// not wrapped).
func connectVia(t *testing.T, impl sdk.Selector, opts pluginclient.SessionOptions, wrap func(net.Conn) net.Conn) *pluginclient.Session {
	t.Helper()
	lis := bufconn.Listen(1 << 20)
	srv := grpc.NewServer()
	strategywire.RegisterServer(srv, sdk.NoSettings(func() sdk.Selector { return impl }))
	go func() { _ = srv.Serve(lis) }()
	conn, err := grpc.NewClient("passthrough:///bufnet",
		grpc.WithContextDialer(func(ctx context.Context, _ string) (net.Conn, error) {
			c, err := lis.DialContext(ctx)
			if err == nil && wrap != nil {
				c = wrap(c)
			}
			return c, err
		}),
		grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	r := pluginclient.NewRemote(conn)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	info, err := r.Describe(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := r.Configure(ctx, nil); err != nil {
		t.Fatal(err)
	}
	if opts.DecisionTimeout == 0 {
		opts.DecisionTimeout = 5 * time.Second // generous: -race on 2 cores
	}
	s, err := r.Open(ctx, info, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = s.Close()
		_ = conn.Close()
		srv.Stop()
	})
	return s
}

// keyed hashes the sharding key; it needs messages.
type keyed struct{}

func (keyed) Describe() sdk.Descriptor { return sdk.Descriptor{Name: "keyed", NeedsMessage: true} }

func (keyed) Select(_ context.Context, s *sdk.Selection) (int, error) {
	if s.Message == nil || s.Message.ShardingKey == "" {
		for i, q := range s.Queues {
			if q.Broker != s.LastBroker {
				return i, nil
			}
		}
		return 0, nil
	}
	h := fnv.New32a()
	_, _ = h.Write([]byte(s.Message.ShardingKey))
	return int(h.Sum32() % uint32(len(s.Queues))), nil
}

func TestSessionConformance(t *testing.T) {
	for _, tc := range []struct {
		name string
		new  func() sdk.Selector
	}{
		{"roundrobin", func() sdk.Selector { return roundrobin.New() }},
		{"keyed", func() sdk.Selector { return keyed{} }},
		{"isolating", func() sdk.Selector { return newIsolating() }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			sdktest.Conformance(t, func(t *testing.T) sdk.Selector { return connect(t, tc.new(), pluginclient.SessionOptions{}) })
		})
	}
}

func TestSessionPipelinedAnswersMatch(t *testing.T) {
	s := connect(t, keyed{}, pluginclient.SessionOptions{})
	rt := sdktest.NewRoute("pipelined", sdktest.Queues(4, 8))
	var wg sync.WaitGroup
	errs := make(chan error, 16)
	for w := range 16 {
		wg.Go(func() {
			for k := range 200 {
				sel := rt.First()
				sel.Message = &sdk.MessageInfo{ShardingKey: "key-" + strconv.Itoa(w*1000+k)}
				want, _ := keyed{}.Select(context.Background(), sel)
				got, err := s.Select(context.Background(), sel)
				if err != nil || got != want {
					errs <- errors.New("worker " + strconv.Itoa(w) + ": got " + strconv.Itoa(got) + " want " + strconv.Itoa(want) + ": " + errString(err))
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

func errString(err error) string {
	if err == nil {
		return "<nil>"
	}
	return err.Error()
}

// TestSessionRouteVersions interleaves more route versions of one topic than a plugin
// keeps: every selection must still be answered (the host re-sends evicted lists).
func TestSessionRouteVersions(t *testing.T) {
	s := connect(t, roundrobin.New(), pluginclient.SessionOptions{})
	routes := make([]*sdktest.Route, 3*strategywire.RouteVersionsKept)
	for i := range routes {
		routes[i] = &sdktest.Route{Topic: "versions", Version: uint64(i + 1), Queues: sdktest.Queues(1+i%3, 2)}
	}
	for k := range 500 {
		rt := routes[(k*7)%len(routes)]
		if k%5 == 0 {
			rt = routes[k%2]
		}
		sdktest.MustSelect(t, s, rt.First())
	}
}

type failing struct{ panics bool }

func (f failing) Select(context.Context, *sdk.Selection) (int, error) {
	if f.panics {
		panic("boom")
	}
	return 0, errors.New("no luck")
}

type blocking struct{ release chan struct{} }

func (b blocking) Select(ctx context.Context, _ *sdk.Selection) (int, error) {
	<-b.release
	return 0, nil
}

func TestSessionErrors(t *testing.T) {
	rt := sdktest.NewRoute("errors", sdktest.Queues(2, 2))
	t.Run("error", func(t *testing.T) {
		s := connect(t, failing{}, pluginclient.SessionOptions{})
		if _, err := s.Select(context.Background(), rt.First()); !errors.Is(err, strategywire.ErrSelectFailed) {
			t.Fatalf("err = %v, want ErrSelectFailed", err)
		}
	})
	t.Run("panic", func(t *testing.T) {
		s := connect(t, failing{panics: true}, pluginclient.SessionOptions{})
		if _, err := s.Select(context.Background(), rt.First()); !errors.Is(err, strategywire.ErrSelectPanic) {
			t.Fatalf("err = %v, want ErrSelectPanic", err)
		}
	})
	t.Run("timeout", func(t *testing.T) {
		b := blocking{release: make(chan struct{})}
		s := connect(t, b, pluginclient.SessionOptions{DecisionTimeout: 20 * time.Millisecond})
		if _, err := s.Select(context.Background(), rt.First()); !errors.Is(err, strategywire.ErrDecisionTimeout) {
			t.Fatalf("err = %v, want ErrDecisionTimeout", err)
		}
		close(b.release)
		if st := s.Stats(); st.Timeouts != 1 {
			t.Fatalf("Timeouts = %d, want 1", st.Timeouts)
		}
	})
	t.Run("budget", func(t *testing.T) {
		// The send's budget ends the wait though ctx has no deadline and the decision
		// timeout (5 s here) is far off: core passes the budget as Selection.Remaining.
		b := blocking{release: make(chan struct{})}
		s := connect(t, b, pluginclient.SessionOptions{})
		sel := rt.First()
		sel.Remaining = 20 * time.Millisecond
		if _, err := s.Select(context.Background(), sel); !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("err = %v, want context.DeadlineExceeded", err)
		}
		close(b.release)
		if st := s.Stats(); st.Timeouts != 0 {
			t.Fatalf("Timeouts = %d, want 0: the send ran out, not the plugin", st.Timeouts)
		}
	})
	t.Run("cancelled", func(t *testing.T) {
		s := connect(t, roundrobin.New(), pluginclient.SessionOptions{})
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		if _, err := s.Select(ctx, rt.First()); !errors.Is(err, context.Canceled) {
			t.Fatalf("err = %v, want context.Canceled", err)
		}
	})
	t.Run("closed", func(t *testing.T) {
		s := connect(t, roundrobin.New(), pluginclient.SessionOptions{})
		_ = s.Close()
		if _, err := s.Select(context.Background(), rt.First()); !errors.Is(err, pluginclient.ErrSessionClosed) {
			t.Fatalf("err = %v, want ErrSessionClosed", err)
		}
		<-s.Done()
	})
}

// slowReads delays everything the host reads by d: answers spend d between the
// processes, as on a machine so busy that the host's reader waits that long to run.
type slowReads struct {
	net.Conn
	d time.Duration
}

func (c slowReads) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	testwait.Pause(c.d)
	return n, err
}

// sleepy answers after d.
type sleepy struct{ d time.Duration }

func (s sleepy) Select(context.Context, *sdk.Selection) (int, error) {
	testwait.Pause(s.d)
	return 0, nil
}

// TestSessionLatenessIsThePlugins: the decision timeout measures the plugin's own time
// between receiving a request and answering it (both stamped by the plugin), not the
// time the answer spends between the processes: behind a connection that delays the
// host's reads by three times the timeout, a plugin that answers at once keeps
// deciding, and one that takes twice the timeout still times out.
func TestSessionLatenessIsThePlugins(t *testing.T) {
	t.Parallel()
	const timeout = 50 * time.Millisecond
	tests := []struct {
		name   string
		plugin sdk.Selector
		want   error
	}{
		{"prompt", roundrobin.New(), nil},
		{"slow", sleepy{d: 2 * timeout}, strategywire.ErrDecisionTimeout},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			s := connectVia(t, tc.plugin, pluginclient.SessionOptions{DecisionTimeout: timeout},
				func(c net.Conn) net.Conn { return slowReads{Conn: c, d: 3 * timeout} })
			rt := sdktest.NewRoute("transit", sdktest.Queues(2, 2))
			ctx := context.Background()
			// The first answers show the session how long the connection takes; one
			// may time out before it knows.
			for range 2 {
				_, _ = s.Select(ctx, rt.First())
			}
			base := s.Stats().Timeouts
			for k := range 4 {
				if _, err := s.Select(ctx, rt.First()); !errors.Is(err, tc.want) {
					t.Fatalf("decision %d: err = %v, want %v", k, err, tc.want)
				}
			}
			if got := s.Stats().Timeouts - base; tc.want == nil && got != 0 {
				t.Fatalf("%d timeouts for a plugin that answers at once", got)
			}
		})
	}
}

// isolating isolates a broker for an hour on any failure and publishes it.
type isolating struct {
	mu   sync.Mutex
	bad  map[string]time.Time
	seen map[string]bool
}

func newIsolating() *isolating {
	return &isolating{bad: make(map[string]time.Time), seen: make(map[string]bool)}
}

func (s *isolating) Describe() sdk.Descriptor {
	return sdk.Descriptor{Name: "isolating", UrgentLatency: time.Second, LocalApply: true}
}

func (s *isolating) Select(_ context.Context, sel *sdk.Selection) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for i, q := range sel.Queues {
		if _, bad := s.bad[q.Broker]; !bad && q.Broker != sel.LastBroker {
			return i, nil
		}
	}
	return 0, nil
}

func (s *isolating) Observe(_ context.Context, os []sdk.Outcome) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, o := range os {
		if o.Broker == "" {
			continue
		}
		s.seen[o.Broker] = true
		if o.Kind.Failed() || o.Latency > time.Second {
			s.bad[o.Broker] = time.Now().Add(time.Hour)
		} else {
			delete(s.bad, o.Broker)
		}
	}
}

func (s *isolating) Health() []sdk.BrokerHealth {
	s.mu.Lock()
	defer s.mu.Unlock()
	var rows []sdk.BrokerHealth
	for b := range s.seen {
		until, bad := s.bad[b]
		rows = append(rows, sdk.BrokerHealth{Broker: b, Available: !bad, Until: until})
	}
	sort.Slice(rows, func(i, j int) bool { return rows[i].Broker < rows[j].Broker })
	return rows
}

func (s *isolating) Seed(rows []sdk.BrokerHealth) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, r := range rows {
		if r.Broker == "" {
			continue
		}
		s.seen[r.Broker] = true
		if !r.Available && r.Until.After(time.Now()) {
			s.bad[r.Broker] = r.Until
		}
	}
}

func availability(rows []sdk.BrokerHealth) map[string]bool {
	m := make(map[string]bool)
	for _, r := range rows {
		m[r.Broker] = r.Available
	}
	return m
}

// TestSessionUrgentOutcome: once Observe of a failure returns, the published health
// already shows the broker isolated; ordinary outcomes are batched and arrive later.
func TestSessionUrgentOutcome(t *testing.T) {
	var mu sync.Mutex
	var published [][]sdk.BrokerHealth
	s := connect(t, newIsolating(), pluginclient.SessionOptions{
		UrgentTimeout: 10 * time.Second, // the test waits for the ack, not a timing bound
		OnHealth: func(rows []sdk.BrokerHealth) {
			mu.Lock()
			published = append(published, rows)
			mu.Unlock()
		},
	})
	ctx := context.Background()
	s.Observe(ctx, []sdk.Outcome{sdktest.OK("broker-a", time.Millisecond)})
	s.Observe(ctx, []sdk.Outcome{sdktest.Failure("broker-b", sdk.OutcomeTimeout, time.Second)})
	if avail := availability(s.Health()); avail["broker-b"] {
		t.Fatalf("after an urgent failure, Health = %v: broker-b still available", s.Health())
	}
	s.Observe(ctx, []sdk.Outcome{sdktest.OK("broker-c", 2*time.Second)}) // slower than UrgentLatency
	if avail := availability(s.Health()); avail["broker-c"] {
		t.Fatalf("after a slow OK, Health = %v: broker-c still available", s.Health())
	}
	s.Observe(ctx, []sdk.Outcome{sdktest.OK("broker-d", time.Millisecond)})
	deadline := time.Now().Add(10 * time.Second)
	for {
		if _, ok := availability(s.Health())["broker-d"]; ok {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("a batched outcome never reached the plugin")
		}
		time.Sleep(time.Millisecond)
	}
	mu.Lock()
	n := len(published)
	mu.Unlock()
	if n == 0 {
		t.Fatal("OnHealth was never called")
	}
	s.Seed([]sdk.BrokerHealth{{Broker: "broker-e", Available: false, Until: time.Now().Add(time.Hour)}})
	if avail := availability(s.Health()); avail["broker-e"] {
		t.Fatalf("after Seed, Health = %v: broker-e available", s.Health())
	}
}

func TestDescribeConfigure(t *testing.T) {
	s := connect(t, newIsolating(), pluginclient.SessionOptions{})
	info := s.Info()
	if info.ProtocolVersion != strategywire.ProtocolVersion || info.Descriptor.Name != "isolating" || !info.Descriptor.LocalApply ||
		!info.Features.Observer || !info.Features.HealthReporter || !info.Features.HealthSeeder || !info.Features.Configurable {
		t.Fatalf("Info = %+v", info)
	}
	if err := s.Sync(context.Background()); err != nil {
		t.Fatalf("Sync: %v", err)
	}
}

// TestConstructorSettings: the plugin builds its strategy from the settings Describe
// carries (protocol 2); a version-1 host's Configure rebuilds it with its settings; a
// constructor error is ErrInvalidSettings with the constructor's message.
func TestConstructorSettings(t *testing.T) {
	var built []string
	build := func(settings []byte) (sdk.Selector, error) {
		if string(settings) == `{"bad":true}` {
			return nil, &sdk.SettingError{Key: "bad", Err: errors.New("is not allowed")}
		}
		built = append(built, string(settings))
		return roundrobin.New(), nil
	}
	dial := func(build sdk.Constructor) *pluginclient.Remote {
		lis := bufconn.Listen(1 << 20)
		srv := grpc.NewServer()
		strategywire.RegisterServer(srv, build)
		go func() { _ = srv.Serve(lis) }()
		t.Cleanup(srv.Stop)
		conn, err := grpc.NewClient("passthrough:///bufnet",
			grpc.WithContextDialer(func(ctx context.Context, _ string) (net.Conn, error) { return lis.DialContext(ctx) }),
			grpc.WithTransportCredentials(insecure.NewCredentials()))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = conn.Close() })
		return pluginclient.NewRemote(conn)
	}
	ctx := context.Background()
	if _, err := dial(build).Describe(ctx, []byte(`{"bad":true}`)); !errors.Is(err, sdk.ErrInvalidSettings) || !strings.Contains(err.Error(), "bad: is not allowed") {
		t.Fatalf("Describe(bad) = %v, want ErrInvalidSettings naming the key", err)
	}
	r := dial(build)
	if _, err := r.Describe(ctx, []byte(`{"x":1}`)); err != nil || !slices.Equal(built, []string{`{"x":1}`}) {
		t.Fatalf("Describe = %v, built %q", err, built)
	}
	if err := r.Configure(ctx, []byte(`{"x":1}`)); err != nil || len(built) != 1 {
		t.Fatalf("Configure with the same settings = %v, built %q (want no rebuild)", err, built)
	}
	if err := r.Configure(ctx, []byte(`{"x":2}`)); err != nil || len(built) != 2 {
		t.Fatalf("Configure with new settings = %v, built %q (want a rebuild)", err, built)
	}
	// Each key crosses as its own problem (protocol field setting_problems), in
	// Describe and in a version-1 host's Configure.
	twoBad := func([]byte) (sdk.Selector, error) {
		return nil, errors.Join(&sdk.SettingError{Key: "a", Err: errors.New("too big")}, &sdk.SettingError{Key: "b", Err: errors.New("unknown key")})
	}
	_, dErr := dial(twoBad).Describe(ctx, []byte(`{"a":1,"b":2}`))
	r2 := dial(build)
	if _, err := r2.Describe(ctx, nil); err != nil {
		t.Fatal(err)
	}
	cErr := r2.Configure(ctx, []byte(`{"bad":true}`))
	for _, tc := range []struct {
		name string
		err  error
		want []string
	}{{"Describe", dErr, []string{"a: too big", "b: unknown key"}}, {"Configure", cErr, []string{"bad: is not allowed"}}} {
		var got []string
		for _, se := range strategywire.ErrorsOf[*sdk.SettingError](tc.err) {
			got = append(got, se.Error())
		}
		if !errors.Is(tc.err, sdk.ErrInvalidSettings) || !slices.Equal(got, tc.want) {
			t.Errorf("%s: setting errors %q (error %v), want %q", tc.name, got, tc.err, tc.want)
		}
	}
	plain := dial(sdk.NoSettings(func() sdk.Selector { return roundrobin.New() }))
	for _, ok := range []string{"", "{}", " null "} {
		if _, err := plain.Describe(ctx, []byte(ok)); err != nil {
			t.Errorf("Describe(%q) on a strategy without settings = %v", ok, err)
		}
	}
	if _, err := plain.Describe(ctx, []byte(`{"x":1}`)); !errors.Is(err, sdk.ErrInvalidSettings) {
		t.Errorf("Describe({x:1}) on a strategy without settings = %v, want ErrInvalidSettings", err)
	}
}

func TestDescribeVersionNegotiation(t *testing.T) {
	lis := bufconn.Listen(1 << 20)
	srv := grpc.NewServer()
	strategywire.RegisterServer(srv, sdk.NoSettings(func() sdk.Selector { return roundrobin.New() }))
	go func() { _ = srv.Serve(lis) }()
	defer srv.Stop()
	conn, err := grpc.NewClient("passthrough:///bufnet",
		grpc.WithContextDialer(func(ctx context.Context, _ string) (net.Conn, error) { return lis.DialContext(ctx) }),
		grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	c := strategypb.NewStrategyClient(conn)
	for _, tc := range []struct {
		lo, hi uint32
		ok     bool
		want   uint32
	}{{1, 1, true, 1}, {1, 9, true, 2}, {2, 9, true, 2}, {3, 9, false, 0}, {0, 0, false, 0}} {
		resp, err := c.Describe(context.Background(), &strategypb.DescribeRequest{MinVersion: tc.lo, MaxVersion: tc.hi})
		if err != nil {
			t.Fatal(err)
		}
		got := resp.GetCode() == strategypb.Code_CODE_OK
		if got != tc.ok || got && resp.GetVersion() != tc.want {
			t.Errorf("host range [%d, %d]: code %v version %d", tc.lo, tc.hi, resp.GetCode(), resp.GetVersion())
		}
	}
}
