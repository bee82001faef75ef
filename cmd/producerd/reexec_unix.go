//go:build unix

package main

import (
	"os"
	"syscall"
)

// reexec replaces the process with its own image, arguments and environ; the PID, open
// descriptors without close-on-exec and the working directory stay. On Linux the image
// is /proc/self/exe, the file this process runs even if its path now names another
// (a binary upgraded in place), as for the built-in plugins (host ServeBuiltin).
func reexec(environ []string) error {
	exe := "/proc/self/exe"
	if _, err := os.Stat(exe); err != nil {
		if exe, err = os.Executable(); err != nil {
			return err
		}
	}
	return syscall.Exec(exe, os.Args, environ)
}
