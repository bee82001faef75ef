package host

import (
	"github.com/producerd/producerd/plugins/sdk"
	"github.com/producerd/producerd/plugins/sdk/pick"
)

// localApply makes the decisions of a strategy that declares Descriptor.LocalApply, in
// the host's process, from the policy (health table with weights) the strategy
// publishes. The walk is package pick's, the same one every built-in uses in its own
// Select: the host holds no strategy's algorithm. An unavailable row is an exclusion
// until its Until (zero: until the next table) whose cost is the row's latency; a row's
// Weight steers first picks. Select takes no lock and allocates nothing in steady state.
type localApply struct {
	p *pick.Picker
}

func newLocalApply() *localApply {
	return &localApply{p: pick.New(pick.Options{})}
}

// update installs a newly published table.
func (l *localApply) update(rows []sdk.BrokerHealth) {
	l.p.SetPolicy(pick.FromHealth(rows))
}

// Select returns an index into sel.Queues, or -1 when it is empty.
func (l *localApply) Select(sel *sdk.Selection) int {
	return l.p.Pick(sel)
}
