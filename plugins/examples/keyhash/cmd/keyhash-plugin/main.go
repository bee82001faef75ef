// Command keyhash-plugin serves the example key-hash strategy (package keyhash) as a
// producerd strategy plugin. Point a strategy's plugin path at the built binary; it is
// not meant to be run by hand.
package main

import (
	"github.com/producerd/producerd/plugins/examples/keyhash"
	"github.com/producerd/producerd/plugins/sdk"
)

func main() { sdk.Serve(keyhash.Build) }
