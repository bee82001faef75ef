//go:build linux

package host

import (
	"os/exec"
	"syscall"
)

// setProcAttr has the kernel SIGKILL the plugin when the daemon dies, even by SIGKILL.
// (Pdeathsig follows the thread that started the child; Go's runtime keeps its threads
// alive unless a goroutine locked to one exits, and the plugin's own parent watchdog
// covers that case.)
func setProcAttr(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
