package lock

import (
	"errors"
	"syscall"
)

// processRuns says whether pid is a live process: kill(pid, 0) checks without signalling; EPERM means it runs as
// someone else.
func processRuns(pid int) bool {
	err := syscall.Kill(pid, 0)
	return err == nil || errors.Is(err, syscall.EPERM)
}
