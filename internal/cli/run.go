package cli

import (
	"context"
	"slices"
	"time"

	"github.com/spf13/cobra"

	"github.com/irsa-anywhere/irsa/pipeline/runner"
	"github.com/irsa-anywhere/irsa/pipeline/stage"
)

var runDocs = map[runner.Mode][2]string{
	runner.Plan: {"Show what apply would change, without changing anything",
		"plan runs every stage's read-only diff. Exit status: 0 when nothing would change, 2 when something would, 1 on error."},
	runner.Apply: {"Set up IRSA: publish the issuer, trust it in IAM, configure the cluster, bind roles",
		`apply runs the stages along the stage graph: keys, issuer and provider while the webhook rolls out, then
bindings, then the apiserver (the one step that restarts something) and, when something changed (or with --verify),
verify. Each stage finds what exists and changes only what differs, so running it again changes nothing and makes no
writes. Progress goes to stderr, the report to stdout.`},
	runner.Delete: {"Remove everything irsa made for this cluster",
		"teardown removes the cluster objects, then gives the apiserver its original issuer back, then removes the AWS side;\nit removes only what irsa owns (found by its tags and labels); what is already\ngone counts as removed. The apiserver gets its original issuer back."},
}

func newRunCommand(g *globalOptions, name string, aliases []string, mode runner.Mode) *cobra.Command {
	var forceVerify, yes, awsOnly, force bool
	var lockWait time.Duration
	cmd := &cobra.Command{
		Use:     name,
		Aliases: aliases,
		Short:   runDocs[mode][0],
		Long:    runDocs[mode][1],
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			rep, err := g.run(cmd, mode, runOptions{forceVerify: forceVerify, yes: yes, awsOnly: awsOnly, force: force, lockWait: lockWait})
			if err != nil {
				return err
			}
			if mode == runner.Plan && rep.Changed {
				return &exitError{code: 2}
			}
			return nil
		},
	}
	addTargetFlags(cmd, g)
	addOnlyFlag(cmd, g)
	if mode != runner.Plan {
		addLockFlag(cmd, &lockWait)
	}
	switch mode {
	case runner.Apply:
		cmd.Flags().BoolVar(&forceVerify, "verify", false, "run the verify stage even when nothing changed")
	case runner.Delete:
		cmd.Flags().BoolVar(&yes, "yes", false, "do not ask for confirmation (required when stdin is not a terminal)")
		cmd.Flags().BoolVar(&force, "force", false, "also delete objects irsa did not write in the issuer bucket, and the bucket with them")
		cmd.Flags().BoolVar(&awsOnly, "aws-only", false, "remove the AWS side although no cluster is configured (the cluster is gone, or will never use this issuer again)")
	}
	return cmd
}

// run validates everything, then runs the stages and prints progress and the report.
// runOptions are the flags of plan, apply and teardown beyond the target's.
type runOptions struct {
	forceVerify, yes, awsOnly, force bool
	lockWait                         time.Duration
}

func (g *globalOptions) run(cmd *cobra.Command, mode runner.Mode, o runOptions) (*runner.Report, error) {
	only, err := runner.ParseOnly(g.only)
	if err != nil {
		return nil, err
	}
	if err := checkLockTimeout(o.lockWait); err != nil {
		return nil, err
	}
	env, err := g.connect(cmd.Context())
	if err != nil {
		return nil, err
	}
	if err := env.CheckOnly(only); err != nil {
		return nil, err
	}
	if mode == runner.Apply && (len(only) == 0 || slices.Contains(only, stage.Bindings)) {
		// A binding's missing ServiceAccount fails here, before the first write, not halfway through the run.
		if err := env.BindingsStage().Check(cmd.Context()); err != nil {
			return nil, err
		}
	}
	if mode == runner.Delete {
		env.ForceTeardown = o.force
		if err := env.CheckTeardown(only, o.awsOnly); err != nil {
			return nil, err
		}
		if err := g.confirm("teardown", env.TeardownSummary(only), o.yes); err != nil {
			return nil, err
		}
	}
	var created []stage.Change
	if mode != runner.Plan {
		// A first apply makes the bucket the lock lives in, once a plan says the run would not fail before its first
		// write (and only when the run includes the issuer stage, the bucket's owner).
		create := mode == runner.Apply && (len(only) == 0 || slices.Contains(only, stage.Issuer))
		plan := func(ctx context.Context) error {
			_, err := env.Runner(false).Run(ctx, runner.Plan, only)
			return err
		}
		release, made, err := g.lock(cmd.Context(), env, map[runner.Mode]string{runner.Apply: "apply", runner.Delete: "teardown"}[mode], create, plan, o.lockWait)
		defer release()
		if err != nil {
			return nil, err
		}
		created = made
	}
	r := env.Runner(o.forceVerify)
	p := g.progress()
	r.Progress = p.Event
	rep, runErr := r.Run(cmd.Context(), mode, only)
	p.Close()
	withCreated(rep, created)
	rep.Calls = env.Calls()
	if g.structured() {
		if err := g.write(rep); err != nil {
			return rep, err
		}
	} else if rep != nil {
		writeReport(g.stdout, rep, runErr != nil)
	}
	return rep, runErr
}
