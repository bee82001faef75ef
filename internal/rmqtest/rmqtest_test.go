package rmqtest

import (
	"net"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestRequire checks that the state file written by testinfra/rocketmq/cluster.sh has every
// field Cluster reads and that the recorded servers answer on their addresses. It skips when
// no cluster runs (and fails under CI=true, like every Require).
func TestRequire(t *testing.T) {
	c := Require(t)

	if c.NameServer == "" || c.NameServerPID <= 0 {
		t.Errorf("namesrv = %q, namesrvPid = %d", c.NameServer, c.NameServerPID)
	}
	if c.ClusterName != "ItCluster" {
		t.Errorf("cluster = %q, want ItCluster", c.ClusterName)
	}
	if !filepath.IsAbs(c.Script) {
		t.Errorf("script %q is not absolute", c.Script)
	} else if _, err := os.Stat(c.Script); err != nil {
		t.Errorf("script: %v", err)
	}
	if st, err := os.Stat(c.Dir); err != nil || !st.IsDir() {
		t.Errorf("dir %q: %v", c.Dir, err)
	}
	for _, want := range []string{"IT_Remoting", "IT_Send", "IT_RoundRobin", "IT_Failover", "IT_Swap", "IT_Bench", "IT_Daemon"} {
		if !slices.Contains(c.Topics, want) {
			t.Errorf("topics %v lack %s", c.Topics, want)
		}
	}
	if len(c.Brokers) != 2 {
		t.Fatalf("brokers = %+v, want broker-a and broker-b", c.Brokers)
	}
	pids := map[int]bool{c.NameServerPID: true}
	for _, name := range []string{"broker-a", "broker-b"} {
		b := c.Broker(t, name)
		if !strings.HasPrefix(b.Addr, "127.0.0.1:") {
			t.Errorf("%s addr %q is not on loopback", name, b.Addr)
		}
		if b.PID <= 0 || pids[b.PID] {
			t.Errorf("%s pid %d is not a distinct PID", name, b.PID)
		}
		pids[b.PID] = true
		// The recorded PID is the java process itself, started for this run dir.
		cmdline, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(b.PID), "cmdline"))
		if err != nil {
			t.Errorf("%s: %v", name, err)
		} else if !strings.Contains(string(cmdline), "-Drocketmq.home.dir="+c.Dir+"\x00") {
			t.Errorf("%s pid %d is not a server of run dir %s", name, b.PID, c.Dir)
		}
	}
	for _, addr := range append([]string{c.NameServer}, c.Brokers[0].Addr, c.Brokers[1].Addr) {
		conn, err := net.DialTimeout("tcp", addr, 2*time.Second)
		if err != nil {
			t.Errorf("dial %s: %v", addr, err)
			continue
		}
		conn.Close()
	}
}

// TestRestart SIGKILLs broker-b by its recorded PID and restarts it through cluster.sh, the
// path fault tests use. It disturbs the shared cluster, so it runs only under CI=true or with
// PRODUCERD_RMQ_FAULT_TESTS=1 (and holds the exclusive lock).
func TestRestart(t *testing.T) {
	if os.Getenv("CI") != "true" && os.Getenv("PRODUCERD_RMQ_FAULT_TESTS") != "1" {
		t.Skip("set PRODUCERD_RMQ_FAULT_TESTS=1 to kill and restart broker-b of the running cluster")
	}
	c := RequireExclusive(t)
	old := c.Broker(t, "broker-b")
	c.Signal(t, "broker-b", syscall.SIGKILL)
	c.Restart(t, "broker-b")
	b := c.Broker(t, "broker-b")
	if b.PID == old.PID || b.PID <= 0 {
		t.Fatalf("broker-b pid after restart = %d (before %d)", b.PID, old.PID)
	}
	if err := syscall.Kill(b.PID, 0); err != nil {
		t.Fatalf("restarted broker-b pid %d: %v", b.PID, err)
	}
	conn, err := net.DialTimeout("tcp", b.Addr, 2*time.Second)
	if err != nil {
		t.Fatalf("dial restarted broker-b: %v", err)
	}
	conn.Close()
	// The state file on disk has the new PID too.
	fresh, err := load(c.statePath)
	if err != nil {
		t.Fatalf("reload state: %v", err)
	}
	if got := fresh.Broker(t, "broker-b").PID; got != b.PID {
		t.Errorf("state file pid %d, want %d", got, b.PID)
	}
}
