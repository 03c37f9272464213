//go:build !linux

package lock

// processRuns cannot tell elsewhere (thisProcess is empty there, so it is never asked): a holder is taken as running.
func processRuns(int) bool { return true }
