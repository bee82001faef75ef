//go:build !wasip1

package sdk

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-hclog"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/producerd/producerd/internal/strategywire"
	"github.com/producerd/producerd/internal/strategywire/strategypb"
)

// healthRefresh is how often a plugin session compares its strategy's health table with
// the last one it sent, to publish changes that no outcome caused (an isolation the
// strategy ended early, a probe that re-admitted a broker).
const healthRefresh = 200 * time.Millisecond

// server is the plugin side of the strategy service. It builds the strategy from the
// settings Describe carries (protocol 2) or, for a version-1 host, rebuilds it when
// Configure brings settings that differ.
type server struct {
	strategypb.UnimplementedStrategyServer

	build Constructor
	log   hclog.Logger

	mu       sync.Mutex // serialises builds
	cur      atomic.Pointer[served]
	settings []byte // what cur was built from
}

// served is one built strategy with its optional interfaces.
type served struct {
	impl Selector
	obs  Observer
	hr   HealthReporter
	hs   HealthSeeder
	feat strategywire.Features
	log  hclog.Logger
}

func newServer(build Constructor, log hclog.Logger) *server {
	if log == nil {
		log = hclog.NewNullLogger()
	}
	return &server{build: build, log: log}
}

// newServed builds the strategy from settings.
func (s *server) newServed(settings []byte) (*served, error) {
	impl, err := s.build(settings)
	if err != nil {
		if !errors.Is(err, ErrInvalidSettings) {
			err = fmt.Errorf("%w: %w", ErrInvalidSettings, err)
		}
		return nil, err
	}
	if impl == nil {
		return nil, fmt.Errorf("%w: the constructor returned no strategy", ErrInvalidSettings)
	}
	st := &served{impl: impl, log: s.log}
	st.obs, _ = impl.(Observer)
	st.hr, _ = impl.(HealthReporter)
	st.hs, _ = impl.(HealthSeeder)
	_, describer := impl.(Describer)
	st.feat = strategywire.Features{Observer: st.obs != nil, HealthReporter: st.hr != nil, HealthSeeder: st.hs != nil, Describer: describer}
	st.feat.Configurable = true // a Constructor takes settings
	return st, nil
}

// current returns the built strategy, building it with settings when there is none yet
// or when the settings differ (the old one hands over its broker health and is closed).
func (s *server) current(settings []byte, rebuild bool) (*served, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	old := s.cur.Load()
	if old != nil && (!rebuild || bytes.Equal(bytes.TrimSpace(settings), bytes.TrimSpace(s.settings)) ||
		emptySettings(settings) && emptySettings(s.settings)) {
		return old, nil
	}
	st, err := s.newServed(settings)
	if err != nil {
		s.log.Error("settings rejected", "error", err)
		return nil, err
	}
	if old != nil {
		if st.feat != old.feat {
			closeSelector(st.impl)
			return nil, fmt.Errorf("%w: these settings change the strategy's declared interfaces", ErrInvalidSettings)
		}
		if old.hr != nil && st.hs != nil {
			st.hs.Seed(old.hr.Health())
		}
		closeSelector(old.impl)
	}
	s.cur.Store(st)
	s.settings = bytes.Clone(settings)
	return st, nil
}

func closeSelector(sel Selector) {
	if c, ok := sel.(io.Closer); ok {
		_ = c.Close()
	}
}

var errNoImpl = status.Error(codes.Unimplemented, "sdk: no strategy served")

func (s *server) Describe(_ context.Context, req *strategypb.DescribeRequest) (*strategypb.DescribeResponse, error) {
	if s.build == nil {
		return nil, errNoImpl
	}
	resp := &strategypb.DescribeResponse{Pid: int64(os.Getpid())}
	lo, hi := req.GetMinVersion(), req.GetMaxVersion()
	if hi == 0 {
		hi = lo
	}
	if lo > strategywire.ProtocolVersion || hi < strategywire.MinProtocolVersion || lo > hi {
		resp.Code = strategypb.Code_CODE_UNSUPPORTED_VERSION
		resp.Message = fmt.Sprintf("host speaks strategy protocol %d..%d, plugin %d..%d", lo, hi, strategywire.MinProtocolVersion, strategywire.ProtocolVersion)
		return resp, nil
	}
	resp.Version = min(hi, strategywire.ProtocolVersion)
	st, err := s.current(req.GetSettings(), true)
	if err != nil {
		resp.Code, resp.Message = strategypb.Code_CODE_INVALID_SETTINGS, err.Error()
		resp.SettingProblems = settingProblemsToPB(err)
		return resp, nil
	}
	resp.Features = featuresToPB(st.feat)
	resp.Declared = descriptorToPB(descriptorOf(st.impl))
	return resp, nil
}

// Configure serves version-1 hosts, which send settings after Describe.
func (s *server) Configure(_ context.Context, req *strategypb.ConfigureRequest) (*strategypb.ConfigureResponse, error) {
	if s.build == nil {
		return nil, errNoImpl
	}
	if _, err := s.current(req.GetSettings(), true); err != nil {
		return &strategypb.ConfigureResponse{Code: strategypb.Code_CODE_INVALID_SETTINGS, Message: err.Error(), SettingProblems: settingProblemsToPB(err)}, nil
	}
	return &strategypb.ConfigureResponse{}, nil
}

func (s *server) Session(stream strategypb.Strategy_SessionServer) error {
	if s.build == nil {
		return errNoImpl
	}
	st, err := s.current(nil, false)
	if err != nil {
		return status.Error(codes.FailedPrecondition, err.Error())
	}
	ctx, cancel := context.WithCancel(stream.Context())
	defer cancel()
	ss := &serverSession{
		srv:    st,
		stream: stream,
		ctx:    ctx,
		routes: make(map[string]*topicRoutes),
	}
	return ss.run(cancel)
}

// serverSession is one Session stream on the plugin side. One goroutine receives each
// Up message, applies it in order (routes, seed, outcomes, selections, sync) and sends
// the answers itself: no hand-off between goroutines on the decision path. A second
// goroutine publishes health changes that no message caused.
type serverSession struct {
	srv    *served
	stream strategypb.Strategy_SessionServer
	ctx    context.Context

	routes   map[string]*topicRoutes // receive loop only
	answered uint64                  // Up messages with selections answered; receive loop only
	sel      Selection               // reused per selection; receive loop only
	msg      MessageInfo
	outs     []Outcome

	sendMu     sync.Mutex // serialises stream.Send and guards lastHealth
	lastHealth []BrokerHealth
}

// topicRoutes keeps a topic's most recently defined queue lists; the host keeps a
// mirror of it (strategywire.TopicRoutes) and so knows which versions the plugin holds.
type topicRoutes = strategywire.TopicRoutes[[]Queue]

func (ss *serverSession) run(cancel context.CancelFunc) error {
	s := ss.srv
	var bg sync.WaitGroup
	if s.hr != nil {
		bg.Go(ss.refreshHealth)
	}
	defer bg.Wait()
	defer cancel()
	for {
		up, err := ss.stream.Recv()
		if err != nil {
			if errors.Is(err, io.EOF) || status.Code(err) == codes.Canceled {
				return nil
			}
			return err
		}
		down := ss.apply(up)
		if down == nil {
			continue
		}
		if err := ss.send(down); err != nil {
			return err
		}
	}
}

// apply handles one Up message and returns the answer to send, if any.
func (ss *serverSession) apply(up *strategypb.Up) *strategypb.Down {
	s := ss.srv
	for _, r := range up.GetRoutes() {
		qs, err := routeFromPB(r)
		if err != nil {
			s.log.Warn("ignoring malformed route", "topic", r.GetTopic(), "version", r.GetVersion())
			continue
		}
		tr := ss.routes[r.GetTopic()]
		if tr == nil {
			if len(ss.routes) >= strategywire.RouteTopicsKept {
				clear(ss.routes)
			}
			tr = &topicRoutes{}
			ss.routes[r.GetTopic()] = tr
		}
		tr.Put(r.GetVersion(), qs)
	}
	changed := false
	if seed := up.GetSeed(); seed != nil && s.hs != nil {
		s.hs.Seed(strategywire.HealthFromPB[BrokerHealth](seed))
		changed = true
	}
	if o := up.GetOutcomes(); o != nil && s.obs != nil {
		var err error
		ss.outs, err = outcomesFromPB(o, ss.outs[:0])
		if err != nil {
			s.log.Warn("ignoring malformed outcome batch", "error", err)
		} else {
			ss.observe(ss.outs)
			changed = true
		}
		clear(ss.outs) // drop references to this batch's strings
	}
	var down *strategypb.Down
	if reqs := up.GetSelects(); len(reqs) > 0 {
		down = &strategypb.Down{}
		ss.decide(reqs, down)
	}
	switch {
	case up.GetSync() != 0:
		// The ack carries the health table, so that the host sees the effect of an
		// urgent outcome or a seed before its wait ends.
		if down == nil {
			down = &strategypb.Down{}
		}
		down.Ack = up.GetSync()
		if s.hr != nil {
			rows := s.hr.Health()
			ss.sendMu.Lock()
			ss.lastHealth = rows
			ss.sendMu.Unlock()
			down.Health = strategywire.HealthToPB(rows)
		}
	case changed && s.hr != nil:
		// Availability changes go out at once; latency-only changes wait for the
		// periodic refresh, so a stream of ordinary outcomes costs no table each.
		if h := ss.healthChange(false); h != nil {
			if down == nil {
				down = &strategypb.Down{}
			}
			down.Health = h
		}
	}
	return down
}

// decide answers selections into down.
func (ss *serverSession) decide(reqs []*strategypb.Select, down *strategypb.Down) {
	now := time.Now()
	var deadline time.Time
	for _, r := range reqs {
		if d := now.Add(time.Duration(r.GetTimeoutNs())); d.After(deadline) {
			deadline = d
		}
	}
	ctx := &decisionContext{Context: ss.ctx, deadline: deadline}
	defer ctx.stop()
	down.Ids = make([]uint64, 0, len(reqs))
	down.Indexes = make([]int32, 0, len(reqs))
	for _, r := range reqs {
		var qs []Queue
		ok := false
		if tr := ss.routes[r.GetTopic()]; tr != nil {
			qs, ok = tr.Get(r.GetRouteVersion())
		}
		if !ok {
			down.Errors = append(down.Errors, &strategypb.SelectError{Id: r.GetId(), Code: strategypb.Code_CODE_ROUTE_UNKNOWN})
			continue
		}
		var n int
		err := ctx.Err()
		if err == nil {
			// An answer after the deadline would be dropped by the host: skip the work.
			selectionFromPB(r, &ss.sel, &ss.msg)
			ss.sel.Queues = qs
			n, err = ss.safeSelect(ctx, &ss.sel)
		}
		if err != nil {
			down.Errors = append(down.Errors, &strategypb.SelectError{Id: r.GetId(), Code: strategywire.CodeOf(err), Message: err.Error()})
			continue
		}
		down.Ids = append(down.Ids, r.GetId())
		down.Indexes = append(down.Indexes, int32(max(min(n, 1<<31-1), -1)))
	}
	ss.sel, ss.msg = Selection{}, MessageInfo{}
	ss.answered++
	down.Answered = ss.answered
}

func (ss *serverSession) observe(outs []Outcome) {
	defer func() {
		if p := recover(); p != nil {
			ss.srv.log.Error("Observe panicked", "panic", fmt.Sprint(p))
		}
	}()
	ss.srv.obs.Observe(ss.ctx, outs)
}

func (ss *serverSession) safeSelect(ctx context.Context, sel *Selection) (n int, err error) {
	defer func() {
		if p := recover(); p != nil {
			n, err = -1, fmt.Errorf("%w: %v", strategywire.ErrSelectPanic, p)
			ss.srv.log.Error("Select panicked", "panic", fmt.Sprint(p))
		}
	}()
	return ss.srv.impl.Select(ctx, sel)
}

func (ss *serverSession) send(d *strategypb.Down) error {
	ss.sendMu.Lock()
	defer ss.sendMu.Unlock()
	return ss.stream.Send(d)
}

// healthChange returns the strategy's health table when it differs from the last one
// sent (in availability and isolation end, or also in latency with withLatency), and
// records it as sent.
func (ss *serverSession) healthChange(withLatency bool) *strategypb.HealthTable {
	rows := ss.srv.hr.Health()
	ss.sendMu.Lock()
	defer ss.sendMu.Unlock()
	if equalHealth(rows, ss.lastHealth, withLatency) {
		return nil
	}
	ss.lastHealth = rows
	return strategywire.HealthToPB(rows)
}

func (ss *serverSession) refreshHealth() {
	t := time.NewTicker(healthRefresh)
	defer t.Stop()
	for {
		select {
		case <-t.C:
			if h := ss.healthChange(true); h != nil {
				if err := ss.send(&strategypb.Down{Health: h}); err != nil {
					return
				}
			}
		case <-ss.ctx.Done():
			return
		}
	}
}

// decisionContext is the context of a batch of selections: it carries the latest
// decision deadline of the batch and costs nothing unless Done is called, when it
// starts a timer.
type decisionContext struct {
	context.Context
	deadline time.Time

	mu    sync.Mutex
	done  chan struct{}
	timer *time.Timer
	stopC func() bool
}

func (c *decisionContext) Deadline() (time.Time, bool) { return c.deadline, true }

func (c *decisionContext) Done() <-chan struct{} {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.done == nil {
		c.done = make(chan struct{})
		closeDone := sync.OnceFunc(func() { close(c.done) })
		c.timer = time.AfterFunc(time.Until(c.deadline), closeDone)
		c.stopC = context.AfterFunc(c.Context, closeDone)
	}
	return c.done
}

func (c *decisionContext) Err() error {
	if err := c.Context.Err(); err != nil {
		return err
	}
	if !time.Now().Before(c.deadline) {
		return context.DeadlineExceeded
	}
	return nil
}

func (c *decisionContext) stop() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.timer != nil {
		c.timer.Stop()
		c.stopC()
	}
}

func equalHealth(a, b []BrokerHealth, withLatency bool) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i].Broker != b[i].Broker || a[i].Available != b[i].Available || a[i].Weight != b[i].Weight ||
			!a[i].Until.Equal(b[i].Until) || withLatency && a[i].Latency != b[i].Latency {
			return false
		}
	}
	return true
}

// descriptorOf returns s's Descriptor, or the zero Descriptor when s does not implement
// Describer.
func descriptorOf(s Selector) Descriptor {
	if d, ok := s.(Describer); ok {
		return d.Describe()
	}
	return Descriptor{}
}
