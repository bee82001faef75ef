//go:build !linux

package host

import "os/exec"

// setProcAttr does nothing here: without Pdeathsig, the plugin's parent watchdog
// (sdk.Serve) ends it when the daemon dies.
func setProcAttr(*exec.Cmd) {}
