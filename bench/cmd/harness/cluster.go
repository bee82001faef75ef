package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/producerd/producerd/core"
	"github.com/producerd/producerd/plugins/sdk"
)

// cluster is the state file cluster.sh writes (.rmq/cluster.json).
type cluster struct {
	NameServer    string `json:"namesrv"`
	NameServerPID int    `json:"namesrvPid"`
	Brokers       []struct {
		Name string `json:"name"`
		Addr string `json:"addr"`
		PID  int    `json:"pid"`
	} `json:"brokers"`
	Topics []string `json:"topics"`
	Dir    string   `json:"dir"`
	Script string   `json:"script"`
}

func loadCluster(path string) (*cluster, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var c cluster
	if err := json.Unmarshal(data, &c); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if c.NameServer == "" || len(c.Brokers) == 0 {
		return nil, fmt.Errorf("%s: no NameServer or brokers", path)
	}
	for _, b := range c.Brokers {
		if err := syscall.Kill(b.PID, 0); err != nil {
			return nil, fmt.Errorf("%s: broker %s pid %d is not running", path, b.Name, b.PID)
		}
	}
	return &c, nil
}

// brokerPID returns the recorded PID of broker name after checking that it is that
// broker's JVM of this cluster (a java process whose command line names the run dir
// and the broker's config), so that a stale state file never makes us signal a
// stranger.
func (c *cluster) brokerPID(name string) (int, error) {
	for _, b := range c.Brokers {
		if b.Name != name {
			continue
		}
		raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", b.PID))
		if err != nil {
			return 0, fmt.Errorf("broker %s pid %d: %w", name, b.PID, err)
		}
		args := strings.Split(string(raw), "\x00")
		isJava := len(args) > 0 && filepath.Base(args[0]) == "java"
		home, conf := false, false
		for _, a := range args {
			home = home || a == "-Drocketmq.home.dir="+c.Dir
			conf = conf || a == filepath.Join(c.Dir, name+".conf")
		}
		if !isJava || !home || !conf {
			return 0, fmt.Errorf("broker %s pid %d is not this cluster's %s JVM (java=%v home=%v conf=%v)", name, b.PID, name, isJava, home, conf)
		}
		return b.PID, nil
	}
	return 0, fmt.Errorf("no broker %s in the state file", name)
}

// lockExclusive takes the exclusive flock on the cluster lock file that rmqtest's
// shared holders respect; it waits at most limit. The lock is held until the process
// exits (the returned file stays open).
func lockExclusive(path string, limit time.Duration) (*os.File, error) {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return nil, err
	}
	deadline := time.Now().Add(limit)
	logged := false
	for {
		err = syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
		if err == nil {
			return f, nil
		}
		if !errors.Is(err, syscall.EWOULDBLOCK) || time.Now().After(deadline) {
			f.Close()
			return nil, fmt.Errorf("exclusive lock %s: %w", path, err)
		}
		if !logged {
			logf("waiting (at most %v) for the exclusive cluster lock %s: other tests are using the cluster", limit, path)
			logged = true
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// waitBrokerHealthy sends to broker's queue 0 until 20 sends in a row succeed within
// 100 ms each (a broker just woken by SIGCONT answers SYSTEM_BUSY for a while), bounded
// by limit.
func waitBrokerHealthy(namesrv, topic, broker string, limit time.Duration) error {
	prod, err := core.NewProducer(core.ProducerConfig{Group: fmt.Sprintf("bench_probe_%d", os.Getpid()),
		Client: core.ClientConfig{NameServers: []string{namesrv}, InstanceName: fmt.Sprintf("bench_probe_%d", time.Now().UnixNano())}})
	if err != nil {
		return err
	}
	defer func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = prod.Close(ctx)
	}()
	deadline := time.Now().Add(limit)
	good := 0
	var last error
	for time.Now().Before(deadline) {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		t0 := time.Now()
		_, err := prod.SendToQueue(ctx, &core.Message{Topic: topic, Body: []byte("probe")}, sdk.Queue{Broker: broker, ID: 0})
		cancel()
		if err == nil && time.Since(t0) < 100*time.Millisecond {
			good++
			if good >= 20 {
				return nil
			}
			time.Sleep(20 * time.Millisecond)
			continue
		}
		good, last = 0, err
		time.Sleep(200 * time.Millisecond)
	}
	return fmt.Errorf("broker %s not healthy after %v: %v", broker, limit, last)
}

// freshStore restarts the cluster (cluster.sh stop, then start: an empty store, the
// same run dir, ports and topics) when its store takes more than -store-restart of the
// file system it lives on (the store lives on /dev/shm, that is in memory: a full run
// stores some 15 GiB, more than the machine can spare beside its processes), reloads the
// state file and warms the brokers up. It restarts only the two-broker cluster
// cluster.sh starts by default (broker-a and broker-b, no extra profile). The harness
// holds the cluster's exclusive lock, so no test uses the cluster meanwhile (stop is told
// not to wait for the lock). It runs between scenarios, and between the strategy paths'
// cells, which compare their paths within themselves. A failed restart is an error: the
// run must not go on against a stopped cluster.
func (h *harness) freshStore(statePath string) error {
	if h.cl == nil || h.cl.Dir == "" || h.cl.Script == "" || h.storeShare <= 0 {
		return nil
	}
	var st syscall.Statfs_t
	if err := syscall.Statfs(h.cl.Dir, &st); err != nil || st.Blocks == 0 {
		return nil
	}
	used := float64(diskUsage(h.cl.Dir)) / float64(st.Blocks*uint64(st.Bsize))
	if used <= h.storeShare {
		return nil
	}
	env, ok := h.cl.restartEnv()
	if !ok {
		logf("the cluster's store takes %.0f%% of its file system, but it is not cluster.sh's default two-broker cluster: not restarting it", used*100)
		return nil
	}
	logf("the cluster's store takes %.0f%% of its file system: restarting the cluster for an empty store", used*100)
	for _, verb := range []string{"stop", "start"} {
		cmd := exec.Command("bash", h.cl.Script, verb)
		cmd.Env = append(append(os.Environ(), "RMQ_STATE="+statePath, "RMQ_STOP_LOCK_WAIT=0"), env...)
		if out, err := cmd.CombinedOutput(); err != nil {
			return fmt.Errorf("cluster %s for an empty store: %v: %s", verb, err, lastLines(string(out), 5))
		}
	}
	cl, err := loadCluster(statePath)
	if err != nil {
		return fmt.Errorf("after the cluster's restart: %w", err)
	}
	h.cl = cl
	h.restarts++
	logf("cluster restarted: NameServer pid %d; warming the brokers up", cl.NameServerPID)
	h.warmBrokers()
	return nil
}

// restartEnv is the cluster.sh environment that starts this cluster again where it ran:
// its run dir and ports. ok is false for anything but the default two-broker cluster.
func (c *cluster) restartEnv() ([]string, bool) {
	env := []string{"RMQ_RUN_DIR=" + c.Dir}
	port := func(addr string) string {
		_, p, _ := strings.Cut(addr, ":")
		return p
	}
	env = append(env, "RMQ_NAMESRV_PORT="+port(c.NameServer))
	names := map[string]string{"broker-a": "RMQ_BROKER_A_PORT", "broker-b": "RMQ_BROKER_B_PORT"}
	if len(c.Brokers) != len(names) {
		return nil, false
	}
	for _, b := range c.Brokers {
		k, ok := names[b.Name]
		if !ok {
			return nil, false
		}
		env = append(env, k+"="+port(b.Addr))
	}
	return env, true
}

// diskUsage is the space the files under dir take (their blocks: a store's mapped files
// are sparse until written).
func diskUsage(dir string) int64 {
	var n int64
	_ = filepath.WalkDir(dir, func(_ string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return nil
		}
		if info, err := d.Info(); err == nil {
			if st, ok := info.Sys().(*syscall.Stat_t); ok {
				n += st.Blocks * 512
			}
		}
		return nil
	})
	return n
}

// warmBrokers runs the core driver's async load against a freshly started cluster for
// 20 s (not measured), so that the brokers' JIT has compiled the send path before the
// next cell: without it the first cell after a restart ran at half its rate.
func (h *harness) warmBrokers() {
	bin := filepath.Join(h.binDir, "core-driver")
	cmd := exec.Command(bin, "-namesrv", h.cl.NameServer, "-topic", h.topic, "-mode", "async", "-n", "2000000",
		"-duration", "20s", "-size", "1024", "-concurrency", "256", "-warmup", "1000", "-timeout", "3s", "-label", "broker-warm-up")
	cmd.Dir = h.rawDir
	if out, err := cmd.CombinedOutput(); err != nil {
		logf("broker warm-up failed: %v: %s", err, lastLines(string(out), 3))
	}
}

// lastLines returns the last n lines of s.
func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	return strings.Join(lines[max(0, len(lines)-n):], "\n")
}
