// Package testwait is the one place tests wait for a condition: polled on a ticker until
// a deadline, never slept on for a fixed time.
package testwait

import (
	"testing"
	"time"
)

// Poll is how often a condition is checked.
const Poll = 10 * time.Millisecond

// For waits until cond holds, failing the test with what when timeout passes first.
func For(tb testing.TB, timeout time.Duration, what string, cond func() bool) {
	tb.Helper()
	if !Until(timeout, cond) {
		tb.Fatalf("timed out after %v waiting for %s", timeout, what)
	}
}

// Until waits until cond holds or timeout passes, and reports whether it held.
func Until(timeout time.Duration, cond func() bool) bool {
	if cond() {
		return true
	}
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	tick := time.NewTicker(Poll)
	defer tick.Stop()
	for {
		select {
		case <-deadline.C:
			return cond()
		case <-tick.C:
			if cond() {
				return true
			}
		}
	}
}

// Pause blocks for d without sleeping the goroutine in a loop: for tests that must let
// real time pass (a load running while a fault is injected), not to wait for a state.
func Pause(d time.Duration) { <-time.After(d) }
