// Command leastlatency-plugin serves the example least-latency strategy (package
// leastlatency) as a producerd strategy plugin. Point a strategy's plugin path at the
// built binary; it is not meant to be run by hand.
package main

import (
	"github.com/producerd/producerd/plugins/examples/leastlatency"
	"github.com/producerd/producerd/plugins/sdk"
)

func main() { sdk.Serve(leastlatency.New) }
