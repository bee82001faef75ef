package host

import (
	"context"
	"errors"
	"regexp"
	"strconv"
	"testing"
	"time"

	"github.com/producerd/producerd/plugins/sdk"
)

// TestSwapAndAwaitRollback: SwapAndAwait returns only once the new strategy was rolled
// back, with ErrRolledBack and a reason whose counts are consistent (never more
// fallbacks than decisions), and Status names the strategy deciding again.
func TestSwapAndAwaitRollback(t *testing.T) {
	h, _ := newHost(t, func(c *Config) {
		c.Probation = 20 * time.Second
		c.Builtins["failafter"] = sdk.NoSettings(func() sdk.Selector { return &failAfter{} })
	})
	ctx := context.Background()
	if err := h.Start(ctx, Spec{Plugin: "roundrobin", InProcess: true}); err != nil {
		t.Fatal(err)
	}
	l := startLoad(t, h.Strategy(), 4, false)
	err := h.SwapAndAwait(ctx, Spec{Name: "flaky", Plugin: "failafter", InProcess: true})
	if !errors.Is(err, ErrRolledBack) {
		t.Fatalf("SwapAndAwait = %v, want ErrRolledBack", err)
	}
	if err := l.stop(); err != nil {
		t.Fatalf("a caller saw a failed decision: %v", err)
	}
	m := regexp.MustCompile(`(\d+) of its (\d+) decisions`).FindStringSubmatch(err.Error())
	if m == nil {
		t.Fatalf("reason %q does not count decisions", err)
	}
	f, _ := strconv.Atoi(m[1])
	d, _ := strconv.Atoi(m[2])
	if f > d {
		t.Fatalf("reason %q: more fallbacks than decisions", err)
	}
	if st := h.Status(); st.Name != "roundrobin" || st.Rollbacks != 1 {
		t.Fatalf("after the rollback Status = %+v, want roundrobin deciding", st)
	}
}

// TestSwapAndAwaitPasses: a healthy strategy's SwapAndAwait returns nil after the
// probation.
func TestSwapAndAwaitPasses(t *testing.T) {
	h, _ := newHost(t, nil) // Probation 200ms
	ctx := context.Background()
	if err := h.Start(ctx, Spec{Plugin: "roundrobin", InProcess: true}); err != nil {
		t.Fatal(err)
	}
	if err := h.SwapAndAwait(ctx, Spec{Plugin: "latencyfault", InProcess: true}); err != nil {
		t.Fatalf("SwapAndAwait = %v", err)
	}
	if st := h.Status(); st.Name != "latencyfault" || st.Standby != 0 {
		t.Fatalf("after probation Status = %+v", st)
	}
}

type (
	panics     struct{}
	outOfRange struct{}
)

func (panics) Select(context.Context, *sdk.Selection) (int, error) { panic("boom") }
func (outOfRange) Select(_ context.Context, s *sdk.Selection) (int, error) {
	return len(s.Queues), nil
}

// TestTrialDecisionForEveryKind: an in-process strategy gets the same trial decision
// as a plugin process; one that panics or answers out of range is refused.
func TestTrialDecisionForEveryKind(t *testing.T) {
	h, _ := newHost(t, func(c *Config) {
		c.Builtins["panics"] = sdk.NoSettings(func() sdk.Selector { return panics{} })
		c.Builtins["outofrange"] = sdk.NoSettings(func() sdk.Selector { return outOfRange{} })
	})
	ctx := context.Background()
	for _, name := range []string{"panics", "outofrange"} {
		if err := h.Start(ctx, Spec{Plugin: name, InProcess: true}); !errors.Is(err, ErrHealthCheck) {
			t.Fatalf("Start(%s) = %v, want ErrHealthCheck", name, err)
		}
	}
	if err := h.Start(ctx, Spec{Plugin: "roundrobin", InProcess: true}); err != nil {
		t.Fatal(err)
	}
	if err := h.Swap(ctx, Spec{Plugin: "panics", InProcess: true}); !errors.Is(err, ErrHealthCheck) {
		t.Fatalf("Swap(panics) = %v, want ErrHealthCheck", err)
	}
}
