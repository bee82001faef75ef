package wasm

import "errors"

// KillInstance kills the instance in slot i as a trap would: it is discarded and
// replaced. It reports false when the slot has no live instance.
func KillInstance(s Strategy, i int) bool {
	st := s.(*strategy)
	sl := st.slots[i]
	sl.mu.Lock()
	defer sl.mu.Unlock()
	in := sl.inst.Load()
	if in == nil {
		return false
	}
	in.kill(errors.New("wasm: killed by a test"))
	st.fail(sl, in, "test")
	return true
}
