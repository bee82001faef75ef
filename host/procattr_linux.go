//go:build linux

package host

import (
	"os"
	"os/exec"
	"strconv"
	"syscall"
)

// setProcAttr has the kernel SIGKILL the plugin when the daemon dies, even by SIGKILL.
// (Pdeathsig follows the thread that started the child; Go's runtime keeps its threads
// alive unless a goroutine locked to one exits, and the plugin's own parent watchdog
// covers that case.) It also marks every descriptor above stderr close-on-exec: Go
// opens its own that way, but one the daemon inherited from its parent, or one opened
// by C code, would otherwise reach the plugin; the plugin gets only go-plugin's
// (stdin, and the pipes of its stdout and stderr).
func setProcAttr(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	closeOnExec()
}

func closeOnExec() {
	entries, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		return
	}
	for _, e := range entries {
		if fd, err := strconv.Atoi(e.Name()); err == nil && fd > 2 {
			syscall.CloseOnExec(fd)
		}
	}
}
