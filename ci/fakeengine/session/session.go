// Package session lets the generated Dagger client of this module start in a test process.
//
// That client (internal/dagger) reads DAGGER_SESSION_PORT and DAGGER_SESSION_TOKEN while its
// package is initialised and panics when they are unset, before TestMain or any test runs. This
// package opens a loopback listener for the fake engine and sets both variables first: Go
// initialises, among the packages whose imports are all initialised, the one whose import path
// sorts first (Go spec, "Package initialization", Go 1.21 and later). "dagger/irsa/fakeengine/session"
// sorts before "dagger/irsa/internal/dagger" and imports only packages that one imports too, so it
// is always ready first.
package session

import (
	"fmt"
	"net"
	"os"
	"strconv"
)

// Token is the session token the fake engine expects as the basic-auth user name.
const Token = "fake-session-token"

// Listener is the loopback listener the fake engine serves on; the generated client dials it.
var Listener net.Listener

func init() {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		// Nothing can run without it, and the generated client is about to panic anyway, with a
		// message that would hide this cause.
		panic(fmt.Sprintf("fake Dagger engine: listen on 127.0.0.1: %v", err))
	}
	Listener = l
	port := strconv.Itoa(l.Addr().(*net.TCPAddr).Port)
	if err := os.Setenv("DAGGER_SESSION_PORT", port); err != nil {
		panic(fmt.Sprintf("fake Dagger engine: set DAGGER_SESSION_PORT=%s: %v", port, err))
	}
	if err := os.Setenv("DAGGER_SESSION_TOKEN", Token); err != nil {
		panic(fmt.Sprintf("fake Dagger engine: set DAGGER_SESSION_TOKEN: %v", err))
	}
}
