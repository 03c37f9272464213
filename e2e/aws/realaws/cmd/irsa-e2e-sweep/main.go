// Command irsa-e2e-sweep deletes what e2e runs against real AWS left behind: with -run, everything that run owns
// (the nightly workflow's last step, whatever failed before it); otherwise everything of other runs older than
// -older-than. It needs IRSA_E2E_REAL_AWS=1 and uses the default credential chain.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"time"

	"github.com/irsa-anywhere/irsa/e2e/aws/realaws"
	"github.com/irsa-anywhere/irsa/pipeline/config"
)

func main() {
	run := flag.String("run", "", "delete everything this run ID owns (irsa-e2e-...)")
	olderThan := flag.Duration("older-than", realaws.DefaultSweepAfter, "without -run: delete other runs' resources older than this")
	region := flag.String("region", "", "AWS region (default: AWS_REGION)")
	dryRun := flag.Bool("dry-run", false, "list what would be deleted, delete nothing")
	flag.Parse()
	if err := sweep(*run, *olderThan, *region, *dryRun); err != nil {
		fmt.Fprintln(os.Stderr, "irsa-e2e-sweep:", err)
		os.Exit(1)
	}
}

func sweep(run string, olderThan time.Duration, region string, dryRun bool) error {
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Minute)
	defer cancel()
	// New checks the opt-in and credentials; its own sweep is skipped so that -dry-run deletes nothing.
	b, err := realaws.New(ctx, realaws.Options{Region: region, RunID: run, SweepAfter: -1})
	if err != nil {
		return err
	}
	s := b.Sweeper()
	all, err := s.List(ctx)
	if err != nil {
		return err
	}
	var doomed []realaws.Resource
	if run != "" {
		doomed = realaws.Owned(all, run)
	} else {
		doomed = realaws.Stale(all, time.Now(), olderThan, "")
	}
	for _, r := range doomed {
		fmt.Printf("%s\t%s\tcreated %s\towner %s\n", map[bool]string{true: "would delete", false: "delete"}[dryRun], r, r.Created.UTC().Format(time.RFC3339), r.Tags[config.OwnerTagKey])
	}
	if dryRun {
		return nil
	}
	return s.Delete(ctx, doomed)
}
