package daemon

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/producerd/producerd/api/producerdpb"
	"github.com/producerd/producerd/host"
)

// poolGroups is the number of groups on one strategy in the shared-process tests.
const poolGroups = 20

// groupsConfig is configText with poolGroups groups g1..gN, all on strategy.
func groupsConfig(t *testing.T, ns, strategy string) string {
	var b strings.Builder
	b.WriteString(configText(ns, instanceName(t), strategy, 10000))
	for i := 2; i <= poolGroups; i++ {
		fmt.Fprintf(&b, "\n[[producer]]\ngroup = \"g%d\"\nstrategy = %q\n", i, strategy)
	}
	return b.String()
}

// groupHost returns the host of a group.
func groupHost(t *testing.T, d *Daemon, group string) *host.Host {
	t.Helper()
	g, ok := d.groupMap()[group]
	if !ok {
		t.Fatalf("no group %s", group)
	}
	return g.host.(*hostAdapter).h
}

// groupPIDs returns each group's plugin pid (0 when it decides in-process).
func groupPIDs(t *testing.T, d *Daemon) map[string]int {
	t.Helper()
	out := map[string]int{}
	for i := 1; i <= poolGroups; i++ {
		name := fmt.Sprintf("g%d", i)
		st := d.groupMap()[name].strategyStatus()
		pid := 0
		if len(st.Plugins) > 0 && st.State == string(host.ModePlugin) {
			pid = st.Plugins[0].PID
		}
		out[name] = pid
	}
	return out
}

// groupLoad sends through every group until stopped and counts what failed.
type groupLoad struct {
	stop   chan struct{}
	wg     sync.WaitGroup
	sent   atomic.Int64
	failed atomic.Int64
	mu     sync.Mutex
	first  error
}

func startGroupLoad(t *testing.T, h *harness) *groupLoad {
	t.Helper()
	l := &groupLoad{stop: make(chan struct{})}
	for i := 1; i <= poolGroups; i++ {
		group := fmt.Sprintf("g%d", i)
		l.wg.Go(func() {
			for {
				select {
				case <-l.stop:
					return
				default:
				}
				ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
				_, err := h.ingress.Send(ctx, &producerdpb.SendRequest{Message: &producerdpb.Message{
					ProducerGroup: group, Topic: testTopic, Body: []byte("pool " + group)}})
				cancel()
				l.sent.Add(1)
				if err != nil {
					l.failed.Add(1)
					l.mu.Lock()
					if l.first == nil {
						l.first = fmt.Errorf("group %s: %w", group, err)
					}
					l.mu.Unlock()
				}
			}
		})
	}
	t.Cleanup(l.end)
	return l
}

func (l *groupLoad) end() {
	select {
	case <-l.stop:
	default:
		close(l.stop)
	}
	l.wg.Wait()
}

// TestGroupsShareOnePluginProcess: 20 groups on one out-of-process strategy run one
// plugin process (one child, the same pid in every group's status) and all send; a
// SIGKILL of it restarts it once and every group recovers without a failed send (its
// fallback decides meanwhile); a group swapped to another strategy leaves the others
// on the process; shutdown leaves no plugin process.
func TestGroupsShareOnePluginProcess(t *testing.T) {
	c := startCluster(t)
	h := startText(t, c, groupsConfig(t, c.NameServerAddr(), "latency"))

	children := pluginChildren()
	if len(children) != 1 {
		t.Fatalf("%d groups on one strategy run %d plugin processes %v, want 1", poolGroups, len(children), children)
	}
	pid := children[0]
	for g, p := range groupPIDs(t, h.d) {
		if p != pid {
			t.Fatalf("group %s: plugin pid %d, want the shared %d", g, p, pid)
		}
	}
	// The admin status (the JSON and the `producerd status` table) shows the one
	// process in every group, with its users.
	st, err := h.admin.Status(adminCtx(t), &producerdpb.StatusRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if len(st.GetGroups()) != poolGroups {
		t.Fatalf("status lists %d groups, want %d", len(st.GetGroups()), poolGroups)
	}
	for _, g := range st.GetGroups() {
		ps := g.GetStrategy().GetPlugins()
		if len(ps) != 1 || ps[0].GetPid() != int64(pid) || ps[0].GetUsers() != poolGroups {
			t.Fatalf("group %s: status plugins %v, want pid %d with %d users", g.GetGroup(), ps, pid, poolGroups)
		}
	}

	l := startGroupLoad(t, h)
	waitFor(t, "sends through every group", func() bool { return l.sent.Load() > 10*poolGroups })
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	var newPID int
	waitFor(t, "every group back on one restarted plugin", func() bool {
		pids := groupPIDs(t, h.d)
		newPID = pids["g1"]
		for _, p := range pids {
			if p == 0 || p == pid || p != newPID {
				return false
			}
		}
		return true
	})
	before := l.sent.Load()
	waitFor(t, "sends after the restart", func() bool { return l.sent.Load() > before+10*poolGroups })
	l.end()
	if n := l.failed.Load(); n != 0 {
		t.Fatalf("%d of %d sends failed across the restart, first: %v", n, l.sent.Load(), l.first)
	}
	for i := 1; i <= poolGroups; i++ {
		st := groupHost(t, h.d, fmt.Sprintf("g%d", i)).Status()
		if st.Crashes != 1 || st.Restarts != 1 {
			t.Fatalf("group g%d: crashes %d restarts %d, want 1 and 1 (one crash, one restart)", i, st.Crashes, st.Restarts)
		}
	}
	procs := h.d.plugins.Processes()
	if len(procs) != 1 || procs[0].Starts != 2 || procs[0].PID != newPID {
		t.Fatalf("pool processes = %+v, want one started twice with pid %d", procs, newPID)
	}
	if children := pluginChildren(); len(children) != 1 || children[0] != newPID {
		t.Fatalf("plugin processes after the restart: %v, want [%d]", children, newPID)
	}
	t.Logf("%d sends across a SIGKILL of the shared plugin, none failed; pid %d -> %d", l.sent.Load(), pid, newPID)

	// One group leaves for another strategy: the others keep the process.
	actx := adminCtx(t)
	if _, err := h.admin.SwapStrategy(actx, &producerdpb.SwapStrategyRequest{Name: "rr", ProducerGroup: "g20"}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the swapped group's old generation to leave the process", func() bool {
		return groupHost(t, h.d, "g1").Status().ProcessUsers == poolGroups-1
	})
	pids := groupPIDs(t, h.d)
	for g, p := range pids {
		if g != "g20" && p != newPID {
			t.Fatalf("group %s left the shared process after g20's swap: pid %d, want %d", g, p, newPID)
		}
	}
	if pids["g20"] == 0 || pids["g20"] == newPID || !pidAlive(newPID) {
		t.Fatalf("g20 runs pid %d after its swap (shared %d alive %v)", pids["g20"], newPID, pidAlive(newPID))
	}
	if children := pluginChildren(); len(children) != 2 {
		t.Fatalf("plugin processes after one group's swap: %v, want 2 (latency shared, rr)", children)
	}
	// g20 swaps back: it joins the running process instead of starting one.
	if _, err := h.admin.SwapStrategy(actx, &producerdpb.SwapStrategyRequest{Name: "latency", ProducerGroup: "g20"}); err != nil {
		t.Fatal(err)
	}
	if p := groupPIDs(t, h.d)["g20"]; p != newPID {
		t.Fatalf("g20 swapped back runs pid %d, want the shared %d", p, newPID)
	}
	waitFor(t, "the rr process to stop with its last user", func() bool { return len(pluginChildren()) == 1 })

	// The last user leaving stops the process.
	if err := h.d.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	h.stopped = true
	if children := pluginChildren(); len(children) != 0 || pidAlive(newPID) {
		t.Fatalf("plugin processes after shutdown: %v", children)
	}
}

// pidAlive reports whether pid is a live (not zombie) process.
func pidAlive(pid int) bool {
	for _, p := range pluginChildren() {
		if p == pid {
			return true
		}
	}
	return false
}
