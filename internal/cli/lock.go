package cli

import (
	"context"
	"fmt"
	"time"

	"github.com/spf13/cobra"

	"github.com/irsa-anywhere/irsa/pipeline/runner"
	"github.com/irsa-anywhere/irsa/pipeline/setup"
	"github.com/irsa-anywhere/irsa/pipeline/stage"
)

// defaultLockTimeout is how long a mutating run waits for another run of the same cluster.
const defaultLockTimeout = 5 * time.Minute

// lockTTL overrides the lock's lifetime in tests (0: lock.DefaultTTL).
var lockTTL time.Duration

func addLockFlag(cmd *cobra.Command, wait *time.Duration) {
	cmd.Flags().DurationVar(wait, "lock-timeout", defaultLockTimeout, "how long to wait for another irsa run on this cluster to finish (0: fail at once, naming it)")
}

// checkLockTimeout refuses a negative --lock-timeout before anything connects.
func checkLockTimeout(wait time.Duration) error {
	if wait < 0 {
		return fmt.Errorf("--lock-timeout %s: must not be negative", wait)
	}
	return nil
}

// lock takes the cluster's lock for a mutating command (see package lock) and returns its release, which runs even
// when ctx is cancelled (Ctrl-C).
// check, when set, is the run's plan: it runs before the lock makes a missing bucket.
func (g *globalOptions) lock(ctx context.Context, env *setup.Env, command string, create bool, check func(context.Context) error, wait time.Duration) (func(), []stage.Change, error) {
	release, created, err := env.Lock(ctx, setup.LockOptions{Command: command, Create: create, Check: check, Wait: wait, TTL: lockTTL,
		Progress: func(msg string) {
			if !g.quiet {
				fmt.Fprintln(g.stderr, "…", msg)
			}
		}})
	return func() {
		ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
		defer cancel()
		if err := release(ctx); err != nil {
			fmt.Fprintf(g.stderr, "warning: %v\n", err)
		}
	}, created, err
}

// withCreated puts the changes the lock made before the run (the issuer bucket) first in the issuer stage's report.
func withCreated(rep *runner.Report, created []stage.Change) {
	if rep == nil || len(created) == 0 {
		return
	}
	rep.Changed = true
	for i := range rep.Stages {
		if rep.Stages[i].Name == stage.Issuer {
			rep.Stages[i].Changes = append(append([]stage.Change{}, created...), rep.Stages[i].Changes...)
		}
	}
}
