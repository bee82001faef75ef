// Package rmqtest hands integration tests the real Apache RocketMQ cluster (one NameServer,
// brokers broker-a and broker-b) that testinfra/rocketmq/cluster.sh starts on loopback.
//
// The cluster is described by a JSON state file, found through the environment variable
// PRODUCERD_RMQ_STATE or, failing that, at <repository root>/.rmq/cluster.json. When no
// cluster is running, Require skips the test with a message saying how to start one;
// with CI=true it fails the test instead, so CI never silently skips the real broker.
//
// Tests that disturb the cluster (SIGSTOP, SIGKILL, restart) call RequireExclusive: it
// takes an exclusive file lock that every Require holder shares, so fault tests in one
// package never run while another package's tests use the cluster. An exclusive waiter
// is served before new shared holders, so it cannot be starved. A parallel test must call
// Require after t.Parallel(), so that its shared hold never overlaps a sequential
// RequireExclusive test of the same package.
package rmqtest

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"syscall"
	"testing"
	"time"
)

// Broker is one broker master of the test cluster.
type Broker struct {
	Name string `json:"name"`
	Addr string `json:"addr"`
	PID  int    `json:"pid"`
}

// Cluster describes the running test cluster.
type Cluster struct {
	// NameServer is the NameServer address, e.g. "127.0.0.1:9876".
	NameServer    string   `json:"namesrv"`
	NameServerPID int      `json:"namesrvPid"`
	ClusterName   string   `json:"cluster"`
	Brokers       []Broker `json:"brokers"`
	// Topics lists the topics the start script created (on both brokers).
	Topics []string `json:"topics"`
	// Script is the absolute path of cluster.sh, used to restart a broker.
	Script string `json:"script"`
	// Dir is the run directory holding configs, stores and logs.
	Dir string `json:"dir"`

	statePath string
}

// Broker returns the broker with the given name; it fails the test if there is none.
func (c *Cluster) Broker(t testing.TB, name string) Broker {
	t.Helper()
	for _, b := range c.Brokers {
		if b.Name == name {
			return b
		}
	}
	t.Fatalf("rmqtest: no broker %q in %s", name, c.statePath)
	return Broker{}
}

// Signal sends sig to the named broker's recorded PID.
func (c *Cluster) Signal(t testing.TB, name string, sig syscall.Signal) {
	t.Helper()
	b := c.Broker(t, name)
	if err := syscall.Kill(b.PID, sig); err != nil {
		t.Fatalf("rmqtest: signal %v to %s (pid %d): %v", sig, name, b.PID, err)
	}
}

// Restart starts the named broker again (after a SIGKILL) and waits until it is
// registered with the NameServer; it refreshes the recorded PIDs.
func (c *Cluster) Restart(t testing.TB, name string) {
	t.Helper()
	cmd := exec.Command("bash", c.Script, "restart", name)
	cmd.Env = append(os.Environ(), "RMQ_STATE="+c.statePath)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("rmqtest: restart %s: %v\n%s", name, err, out)
	}
	fresh, err := load(c.statePath)
	if err != nil {
		t.Fatalf("rmqtest: reload state after restart: %v", err)
	}
	c.Brokers = fresh.Brokers
	c.NameServerPID = fresh.NameServerPID
}

var (
	lockMu   sync.Mutex
	lockFile *os.File
	lockMode int // 0 none, syscall.LOCK_SH or syscall.LOCK_EX
	lockRefs int
)

// Require returns the running cluster, holding a shared lock on it until the test ends.
func Require(t testing.TB) *Cluster {
	t.Helper()
	return require(t, syscall.LOCK_SH)
}

// RequireExclusive is Require for tests that stop, kill or restart servers: no other
// test process uses the cluster while it runs. Such tests must not call t.Parallel.
func RequireExclusive(t testing.TB) *Cluster {
	t.Helper()
	return require(t, syscall.LOCK_EX)
}

func require(t testing.TB, mode int) *Cluster {
	t.Helper()
	path := StatePath()
	unavailable := func(err error) {
		t.Helper()
		msg := fmt.Sprintf("real RocketMQ not available (%v); start it with `bash testinfra/rocketmq/cluster.sh start` or run `bash .ci/run`", err)
		if os.Getenv("CI") == "true" {
			t.Fatal("rmqtest: " + msg)
		}
		t.Skip("rmqtest: " + msg)
	}
	if _, err := os.Stat(path); err != nil {
		unavailable(err)
	}
	if err := acquire(filepath.Join(filepath.Dir(path), "cluster.lock"), mode); err != nil {
		t.Fatalf("rmqtest: lock cluster: %v", err)
	}
	t.Cleanup(release)
	// Read (and check the recorded processes) only under the lock: a test in another
	// process holding it exclusively may be between killing and restarting a broker.
	c, err := load(path)
	if err != nil {
		unavailable(err)
	}
	return c
}

func acquire(path string, mode int) error {
	lockMu.Lock()
	defer lockMu.Unlock()
	if lockFile != nil && lockMode == mode {
		lockRefs++
		return nil
	}
	if lockFile != nil {
		return fmt.Errorf("lock already held in another mode (a parallel test mixes Require and RequireExclusive)")
	}
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return err
	}
	// flock has no fairness: test processes taking shared locks one test after another
	// could starve an exclusive waiter forever. An exclusive waiter therefore announces
	// itself with a file, and shared takers wait while any live waiter is announced.
	deadline := time.Now().Add(10 * time.Minute)
	if mode == syscall.LOCK_EX {
		want := fmt.Sprintf("%s.want.%d", path, os.Getpid())
		if err := os.WriteFile(want, nil, 0o644); err == nil {
			defer os.Remove(want)
		}
	} else {
		for exclusiveWaiting(path) && time.Now().Before(deadline) {
			time.Sleep(50 * time.Millisecond)
		}
	}
	for {
		err = syscall.Flock(int(f.Fd()), mode|syscall.LOCK_NB)
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			f.Close()
			return fmt.Errorf("timed out waiting for %s: %w", path, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	lockFile, lockMode, lockRefs = f, mode, 1
	return nil
}

// exclusiveWaiting reports whether a live process announced that it waits for the
// exclusive lock; announcements of dead processes are removed.
func exclusiveWaiting(path string) bool {
	wants, _ := filepath.Glob(path + ".want.*")
	for _, w := range wants {
		var pid int
		if _, err := fmt.Sscanf(w[len(path)+len(".want."):], "%d", &pid); err != nil || pid == os.Getpid() {
			continue
		}
		if syscall.Kill(pid, 0) == nil {
			return true
		}
		os.Remove(w)
	}
	return false
}

func release() {
	lockMu.Lock()
	defer lockMu.Unlock()
	lockRefs--
	if lockRefs > 0 || lockFile == nil {
		return
	}
	syscall.Flock(int(lockFile.Fd()), syscall.LOCK_UN)
	lockFile.Close()
	lockFile, lockMode = nil, 0
}

// StatePath returns where the cluster state file is looked for.
func StatePath() string {
	if p := os.Getenv("PRODUCERD_RMQ_STATE"); p != "" {
		return p
	}
	return filepath.Join(repoRoot(), ".rmq", "cluster.json")
}

func repoRoot() string {
	dir, err := os.Getwd()
	if err != nil {
		return "."
	}
	for d := dir; ; d = filepath.Dir(d) {
		if _, err := os.Stat(filepath.Join(d, "go.mod")); err == nil {
			if _, err := os.Stat(filepath.Join(d, "testinfra")); err == nil {
				return d
			}
		}
		if filepath.Dir(d) == d {
			return dir
		}
	}
}

func load(path string) (*Cluster, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var c Cluster
	if err := json.Unmarshal(data, &c); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if c.NameServer == "" || len(c.Brokers) == 0 {
		return nil, fmt.Errorf("%s: no NameServer or brokers recorded", path)
	}
	for _, b := range c.Brokers {
		// A recorded PID that is gone means the cluster was stopped without removing
		// the state file.
		if err := syscall.Kill(b.PID, 0); err != nil {
			return nil, fmt.Errorf("%s: broker %s pid %d is not running", path, b.Name, b.PID)
		}
	}
	c.statePath = path
	return &c, nil
}
