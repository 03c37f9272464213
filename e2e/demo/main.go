// Command demo is `make demo`: on a fresh machine it brings up a real kubeadm cluster and moto (behind the strict
// STS gate), runs irsa apply, bind and verify with their progress lines, prints the verify report (the pod's caller
// identity and its bucket listing), and tears everything down. KEEP=1 leaves it running and says how to use it.
package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/irsa-anywhere/irsa/e2e/scenario"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Stdout)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "demo:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, out io.Writer) error {
	keep := os.Getenv("KEEP") == "1"
	level := slog.LevelWarn
	if os.Getenv("VERBOSE") == "1" {
		level = slog.LevelInfo
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))
	fmt.Fprintln(out, "==> bringing up a kubeadm cluster and moto (the first run builds Kubernetes from source: 15-25 min)")
	start := time.Now()
	e, err := scenario.Start(ctx, os.Getenv, log)
	defer func() {
		if e.Backends != nil {
			// The demo's own teardown is its last step; KEEP only delays it until Ctrl-C.
			e.Backends.Selection.Keep = false
		}
		fmt.Fprintln(out, "==> tearing down the cluster and moto")
		if cerr := e.Close(context.WithoutCancel(ctx)); cerr != nil {
			fmt.Fprintln(os.Stderr, "demo: tear down:", cerr)
		}
	}()
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "    ready in %s: cluster %s (%s), AWS %s\n", time.Since(start).Round(time.Second), e.ClusterName, e.Selection.Cluster, e.Selection.AWS)

	steps := [][]string{
		{"apply"},
		{"bind", "default/s3-echoer", "--create-service-account", "--policy-arn", "arn:aws:iam::aws:policy/AmazonS3ReadOnlyAccess"},
		{"verify"},
	}
	for _, args := range steps {
		fmt.Fprintf(out, "==> irsa %s\n", strings.Join(args, " "))
		if err := stream(ctx, e, out, args...); err != nil {
			return err
		}
	}
	if keep {
		// moto's strict STS gate lives in this process, so the setup stays usable while the demo waits.
		fmt.Fprintf(out, `==> KEEP=1: the cluster and moto keep running until you press Ctrl-C.
    kubectl --kubeconfig %s get pods -A
    env %s aws s3 ls
    %s status %s
`, e.Backends.Cluster.Kubeconfig(), strings.Join(e.Backends.AWS.Env(), " "), e.Irsa, strings.Join(e.Flags(), " "))
		<-ctx.Done()
	}
	fmt.Fprintln(out, "==> irsa teardown")
	return stream(ctx, e, out, "teardown", "--yes")
}

// stream runs irsa with the environment's flags and passes its output through.
func stream(ctx context.Context, e *scenario.Env, out io.Writer, args ...string) error {
	cmd := exec.CommandContext(ctx, e.Irsa, append(args, e.Flags()...)...)
	cmd.Env = append(os.Environ(), e.Backends.AWS.Env()...)
	cmd.Stdout, cmd.Stderr = out, os.Stderr
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("irsa %s: %w", args[0], err)
	}
	return nil
}
