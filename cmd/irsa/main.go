// Command irsa gives a self-managed Kubernetes cluster IAM Roles for Service Accounts and proves that they work.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"github.com/irsa-anywhere/irsa/internal/cli"
)

func main() {
	// The first Ctrl-C cancels the run, which stops at its next call, reports what it changed and exits 130; once
	// it is cancelled the default handling returns, so a second Ctrl-C ends irsa at once.
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	go func() { <-ctx.Done(); stop() }()
	code := cli.Main(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}
