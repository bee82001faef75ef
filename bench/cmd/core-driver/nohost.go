//go:build nohost

package main

import (
	"errors"
	"fmt"
	"strings"

	"github.com/producerd/producerd/plugins/sdk"
)

func hostStrategy(name string) (sdk.Selector, func(), error) {
	if strings.HasSuffix(name, "-inproc") || strings.HasSuffix(name, "-plugin") || strings.HasSuffix(name, "-wasm") {
		return nil, nil, errNoHost
	}
	return nil, nil, fmt.Errorf("unknown -strategy %q", name)
}

func servePlugin(string) error { return errNoHost }

// errNoHost is returned for host strategies when built with -tags nohost.
var errNoHost = errors.New("host strategies unavailable: core-driver was built with -tags nohost (package host did not compile)")
