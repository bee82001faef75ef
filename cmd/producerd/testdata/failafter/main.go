// Command failafter is a strategy plugin for the CLI tests: it passes the host's trial
// decision (its synthetic topic) and fails every real decision, so a swap to it is
// rolled back during its probation.
package main

import (
	"context"
	"errors"

	"github.com/producerd/producerd/plugins/sdk"
)

type failAfter struct{}

func (failAfter) Select(_ context.Context, s *sdk.Selection) (int, error) {
	if s.Topic == "__producerd_health_check__" {
		return 0, nil
	}
	return -1, errors.New("failafter: this strategy fails every real decision")
}

func main() { sdk.Serve(sdk.NoSettings(func() sdk.Selector { return failAfter{} })) }
