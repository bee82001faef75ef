package main

import (
	"bufio"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// affectedLatency: a send slower than this during the stop touched the stopped broker
// (a normal send takes a few milliseconds).
const affectedLatency = 200 * time.Millisecond

// failoverResult is what a failover cell's trace shows.
type failoverResult struct {
	StopUnixUs, ContUnixUs int64
	Sends, Failed          int
	// Slow counts sends slower than 1 s.
	Slow int
	// Affected counts sends started during the stop that failed or took over 200 ms.
	Affected int
	// AvoidSec: from SIGSTOP until the end of the last affected send that started during
	// the stop; after it, traffic avoided the stopped broker. Equal to the stop length (or
	// more) when it never did for good.
	AvoidSec float64
	// ReturnSec: from SIGCONT until the first send started after it that broker-b stored;
	// -1 if none did.
	ReturnSec float64
	// ShareB is broker-b's share of stored messages before, during and after the stop.
	ShareB [3]float64
	// Series is per second since the phase's first send: stored messages and sends
	// slower than 1 s, by start time.
	Series    []int
	SlowPerS  []int
	FirstUs   int64
	StopAtSec float64
	ContAtSec float64
}

// stopper SIGSTOPs one broker for a while and makes sure it gets SIGCONT.
type stopper struct {
	mu      sync.Mutex
	pid     int
	stopped bool
}

func (s *stopper) stop(pid int) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.pid = pid
	if err := syscall.Kill(pid, syscall.SIGSTOP); err != nil {
		return err
	}
	s.stopped = true
	return nil
}

// cont sends SIGCONT if the broker is stopped by us; safe to call any time, repeatedly.
func (s *stopper) cont() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.stopped {
		if err := syscall.Kill(s.pid, syscall.SIGCONT); err != nil {
			logf("SIGCONT pid %d: %v", s.pid, err)
		}
		s.stopped = false
	}
}

// failoverSchedule is run when the failover cell's measured phase starts: after
// before, SIGSTOP broker for hold, then SIGCONT. It records the times.
func (h *harness) failoverSchedule(broker string, before, hold time.Duration, fr *failoverResult, done chan<- error) func(int) {
	return func(int) {
		var err error
		defer func() { done <- err }()
		time.Sleep(before)
		pid, perr := h.cl.brokerPID(broker)
		if perr != nil {
			err = perr
			return
		}
		fr.StopUnixUs = time.Now().UnixMicro()
		if err = h.stopper.stop(pid); err != nil {
			return
		}
		logf("failover: SIGSTOP %s (pid %d) for %v", broker, pid, hold)
		time.Sleep(hold)
		h.stopper.cont()
		fr.ContUnixUs = time.Now().UnixMicro()
		logf("failover: SIGCONT %s (pid %d)", broker, pid)
	}
}

// analyzeTrace reads a driver's trace and fills fr's counts and times.
func analyzeTrace(path, broker string, fr *failoverResult) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	type row struct {
		start, lat int64
		broker     string
		ok         bool
	}
	var rows []row
	sc := bufio.NewScanner(f)
	sc.Scan() // header
	for sc.Scan() {
		p := strings.Split(sc.Text(), ",")
		if len(p) != 4 {
			continue
		}
		st, _ := strconv.ParseInt(p[0], 10, 64)
		lat, _ := strconv.ParseInt(p[1], 10, 64)
		rows = append(rows, row{st, lat, p[2], p[3] == "1"})
	}
	if err := sc.Err(); err != nil {
		return err
	}
	if len(rows) == 0 {
		return fmt.Errorf("empty trace %s", path)
	}
	first := rows[0].start
	lastSec := 0
	for _, r := range rows {
		first = min(first, r.start)
	}
	for _, r := range rows {
		lastSec = max(lastSec, int((r.start-first)/1e6))
	}
	fr.FirstUs = first
	fr.Series = make([]int, lastSec+1)
	fr.SlowPerS = make([]int, lastSec+1)
	fr.StopAtSec = float64(fr.StopUnixUs-first) / 1e6
	fr.ContAtSec = float64(fr.ContUnixUs-first) / 1e6
	var total, onB [3]int
	avoidEnd := fr.StopUnixUs
	fr.ReturnSec = -1
	firstBack := int64(-1)
	for _, r := range rows {
		fr.Sends++
		sec := int((r.start - first) / 1e6)
		if !r.ok {
			fr.Failed++
		} else {
			fr.Series[sec]++
		}
		if r.lat > 1e6 {
			fr.Slow++
			fr.SlowPerS[sec]++
		}
		phase := 1
		switch {
		case r.start < fr.StopUnixUs:
			phase = 0
		case r.start >= fr.ContUnixUs:
			phase = 2
		}
		if r.ok {
			total[phase]++
			if r.broker == broker {
				onB[phase]++
			}
		}
		if phase == 1 && (!r.ok || r.lat > affectedLatency.Microseconds()) {
			fr.Affected++
			avoidEnd = max(avoidEnd, r.start+r.lat)
		}
		if phase == 2 && r.ok && r.broker == broker && (firstBack < 0 || r.start+r.lat < firstBack) {
			firstBack = r.start + r.lat
		}
	}
	fr.AvoidSec = float64(avoidEnd-fr.StopUnixUs) / 1e6
	if firstBack >= 0 {
		fr.ReturnSec = float64(firstBack-fr.ContUnixUs) / 1e6
	}
	for i := range 3 {
		if total[i] > 0 {
			fr.ShareB[i] = float64(onB[i]) / float64(total[i])
		}
	}
	return nil
}
