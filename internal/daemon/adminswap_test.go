package daemon

import (
	"strings"
	"testing"

	"github.com/producerd/producerd/api/producerdpb"
)

// TestReloadKeepsAdminSwap: a strategy swapped in through admin survives a reload of
// a file that changed neither the group's strategy nor the swapped-in one, and the
// reload's answer says so; a file that changes the group's strategy replaces the swap
// and says why.
func TestReloadKeepsAdminSwap(t *testing.T) {
	c := startCluster(t)
	h := start(t, c, "latency", 1000)
	ctx := callCtx(t)
	actx := adminCtx(t)
	good := configText(c.NameServerAddr(), strings.NewReplacer("/", "-").Replace(t.Name()), "latency", 1000)
	if _, err := h.admin.SwapStrategy(actx, &producerdpb.SwapStrategyRequest{Name: "rr"}); err != nil {
		t.Fatal(err)
	}

	h.write(good)
	changes, _, err := h.d.Reload(ctx)
	if err != nil || !strings.Contains(strings.Join(changes, ";"), "group g1: keeps rr (swapped through admin") {
		t.Fatalf("reload of an unchanged file: %v %v", changes, err)
	}
	if name := h.d.groupMap()["g1"].strategyStatus().Name; name != "rr" {
		t.Fatalf("after the reload the group runs %s, want rr", name)
	}

	h.write(strings.Replace(good, `preset = "rocketmq5"`, `preset = "rocketmq4"`, 1))
	changes, _, err = h.d.Reload(ctx)
	if err != nil || !strings.Contains(strings.Join(changes, ";"), "admin swap to rr replaced: the file changed the group's strategy latency") {
		t.Fatalf("reload that changed latency: %v %v", changes, err)
	}
	if name := h.d.groupMap()["g1"].strategyStatus().Name; name != "latency" {
		t.Fatalf("after the reload the group runs %s, want latency", name)
	}
}
