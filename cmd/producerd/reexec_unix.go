//go:build unix

package main

import (
	"os"
	"syscall"
)

// reexec replaces the process with its own executable and arguments and environ; the
// PID, open descriptors without close-on-exec and the working directory stay.
func reexec(environ []string) error {
	exe, err := os.Executable()
	if err != nil {
		return err
	}
	return syscall.Exec(exe, os.Args, environ)
}
