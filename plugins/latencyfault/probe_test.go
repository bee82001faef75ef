package latencyfault_test

import (
	"context"
	"errors"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/producerd/producerd/plugins/latencyfault"
	"github.com/producerd/producerd/plugins/sdk"
	"github.com/producerd/producerd/plugins/sdk/sdktest"
)

func TestProbeReadmits(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var mu sync.Mutex
		probed := map[string]int{}
		s, err := latencyfault.New(latencyfault.Options{
			MaxIsolatedShare: 1,
			ProbeInterval:    time.Second,
			Probe: func(ctx context.Context, broker string) error {
				mu.Lock()
				probed[broker]++
				mu.Unlock()
				if broker == "broker-a" {
					return nil
				}
				return errors.New("still down")
			},
		})
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		ctx := context.Background()
		s.Observe(ctx, []sdk.Outcome{
			sdktest.Failure("broker-a", sdk.OutcomeConnectFailure, time.Millisecond),
			sdktest.Failure("broker-b", sdk.OutcomeConnectFailure, time.Millisecond),
		})
		time.Sleep(500 * time.Millisecond)
		synctest.Wait()
		if !isolated(s, "broker-a") || !isolated(s, "broker-b") {
			t.Fatalf("re-admitted before the first probe round: %+v", s.Health())
		}
		time.Sleep(time.Second)
		synctest.Wait()
		if isolated(s, "broker-a") {
			t.Error("broker-a still isolated after a successful probe")
		}
		if !isolated(s, "broker-b") {
			t.Error("broker-b re-admitted though its probe failed")
		}
		time.Sleep(time.Second)
		synctest.Wait()
		mu.Lock()
		defer mu.Unlock()
		if probed["broker-a"] != 1 || probed["broker-b"] != 2 {
			t.Errorf("probe calls %v: want broker-a once (then available), broker-b every round", probed)
		}
	})
}

func TestProbeTimeoutAndClose(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		started := make(chan struct{}, 8)
		s, err := latencyfault.New(latencyfault.Options{
			ProbeInterval: time.Second,
			ProbeTimeout:  100 * time.Millisecond,
			Probe: func(ctx context.Context, broker string) error {
				started <- struct{}{}
				<-ctx.Done() // a hung broker: only the timeout ends the probe
				return ctx.Err()
			},
		})
		if err != nil {
			t.Fatal(err)
		}
		s.Observe(context.Background(), []sdk.Outcome{sdktest.Failure("broker-a", sdk.OutcomeTimeout, time.Second)})
		time.Sleep(1050 * time.Millisecond)
		synctest.Wait()
		if len(started) != 1 {
			t.Fatalf("%d probes started, want 1", len(started))
		}
		time.Sleep(100 * time.Millisecond) // the probe's timeout passes
		synctest.Wait()
		if !isolated(s, "broker-a") {
			t.Fatal("a timed-out probe re-admitted broker-a")
		}
		time.Sleep(900 * time.Millisecond) // next round starts and hangs
		synctest.Wait()
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
		_ = s.Close() // idempotent
	})
}

func TestProbeLosesToNewerOutcome(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var s latencyfault.Strategy
		s, err := latencyfault.New(latencyfault.Options{
			ProbeInterval: time.Second,
			Probe: func(ctx context.Context, broker string) error {
				// While the probe runs, a send fails on the same broker: that newer
				// evidence must win over the probe's success.
				time.Sleep(10 * time.Millisecond)
				s.Observe(ctx, []sdk.Outcome{sdktest.Failure(broker, sdk.OutcomeTimeout, time.Second)})
				return nil
			},
		})
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		s.Observe(context.Background(), []sdk.Outcome{sdktest.Failure("broker-a", sdk.OutcomeTimeout, time.Second)})
		time.Sleep(1100 * time.Millisecond)
		synctest.Wait()
		if !isolated(s, "broker-a") {
			t.Fatal("probe re-admitted broker-a over a newer failure")
		}
	})
}

func isolated(s latencyfault.Strategy, broker string) bool {
	for _, row := range s.Health() {
		if row.Broker == broker {
			return !row.Available
		}
	}
	return false
}
