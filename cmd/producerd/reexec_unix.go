//go:build unix

package main

import (
	"os"
	"syscall"
)

// reexec replaces the process with its own executable, arguments and environ; the PID,
// open descriptors without close-on-exec and the working directory stay. The path is
// os.Executable's, not /proc/self/exe, so that the process keeps its name (comm) for
// pidof, pkill and process exporters.
func reexec(environ []string) error {
	exe, err := os.Executable()
	if err != nil {
		return err
	}
	return syscall.Exec(exe, os.Args, environ)
}
