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
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := cli.Main(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}
