// Package realaws is the e2e AWS backend for real AWS, used by the nightly workflow. It is refused unless
// IRSA_E2E_REAL_AWS=1 is set, so no test run reaches an account by accident. Credentials come from the SDK's
// default chain (in CI: GitHub's OIDC token exchanged by aws-actions/configure-aws-credentials; no long-lived keys).
//
// Every run gets a unique ID (RunID), used as the irsa cluster name, so everything the run creates carries the
// owner tag config.OwnerTagKey=<run ID>. Close deletes what this run owns whatever the scenario managed to tear down,
// and New first sweeps what earlier runs left behind (owner tag starting with RunPrefix, managed-by irsa, older than
// Options.SweepAfter).
package realaws

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/irsa-anywhere/irsa/e2e/framework"
	"github.com/irsa-anywhere/irsa/pipeline/awsclient"
)

const (
	// OptInEnv must be "1" for New to touch real AWS.
	OptInEnv = "IRSA_E2E_REAL_AWS"
	// RunPrefix starts every run ID; the sweeper touches nothing else.
	RunPrefix = "irsa-e2e-"
	// DefaultSweepAfter is the age after which another run's leftovers are deleted. A nightly run takes minutes;
	// hours of margin keep a sweep from hitting a run still in progress on another runner.
	DefaultSweepAfter = 6 * time.Hour
)

// Options configure the real AWS backend.
type Options struct {
	// Region is required (or AWS_REGION through the default chain).
	Region string
	// RunID overrides the generated run ID; it must start with RunPrefix.
	RunID string
	// SweepAfter is how old another run's resources must be to be swept by New; 0 means DefaultSweepAfter,
	// negative skips the sweep.
	SweepAfter time.Duration
	// Getenv reads OptInEnv; nil means os.Getenv.
	Getenv func(string) string
	// Now is the clock; nil means time.Now.
	Now func() time.Time
	// Client overrides the AWS client options (Region above wins when set). The zero value is real AWS through
	// the default chain; the package's own tests point it at moto_server.
	Client awsclient.Options
}

// Backend is real AWS. It implements framework.AWS.
type Backend struct {
	runID   string
	region  string
	sweeper *Sweeper
	// Swept lists what New deleted from earlier runs.
	Swept []Resource
}

var _ framework.AWS = (*Backend)(nil)

// NewRunID returns a unique run ID: RunPrefix, the UTC start time and random hex, short enough for bucket and
// role names.
func NewRunID(now time.Time) (string, error) {
	b := make([]byte, 3)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("random run ID: %w", err)
	}
	return RunPrefix + now.UTC().Format("20060102t150405") + "-" + hex.EncodeToString(b), nil
}

// New checks the opt-in and the credentials, sweeps stale resources of earlier runs and returns the backend.
func New(ctx context.Context, o Options) (*Backend, error) {
	getenv := o.Getenv
	if getenv == nil {
		getenv = os.Getenv
	}
	if v := getenv(OptInEnv); v != "1" {
		return nil, fmt.Errorf("real AWS backend refused: %s=%q, want \"1\"; it creates and deletes an S3 bucket, an IAM OIDC provider and IAM roles in the account of the default credential chain, so it runs only when asked (the nightly workflow sets it)", OptInEnv, v)
	}
	now := o.Now
	if now == nil {
		now = time.Now
	}
	runID := o.RunID
	if runID == "" {
		var err error
		if runID, err = NewRunID(now()); err != nil {
			return nil, err
		}
	}
	if len(runID) <= len(RunPrefix) || runID[:len(RunPrefix)] != RunPrefix {
		return nil, fmt.Errorf("real AWS run ID %q: must start with %q so the sweeper can find its leftovers", runID, RunPrefix)
	}
	co := o.Client
	if o.Region != "" {
		co.Region = o.Region
	}
	clients, err := awsclient.New(ctx, co)
	if err != nil {
		return nil, err
	}
	if clients.Config.Region == "" {
		return nil, errors.New("real AWS backend: no region: set AWS_REGION or Options.Region")
	}
	if err := clients.CheckCredentials(ctx); err != nil {
		return nil, err
	}
	if _, err := clients.AccountID(ctx); err != nil {
		return nil, fmt.Errorf("real AWS backend: %w", err)
	}
	b := &Backend{runID: runID, region: clients.Config.Region, sweeper: NewSweeper(clients)}
	if o.SweepAfter >= 0 {
		after := o.SweepAfter
		if after == 0 {
			after = DefaultSweepAfter
		}
		all, err := b.sweeper.List(ctx)
		if err != nil {
			return nil, fmt.Errorf("sweep earlier runs: %w", err)
		}
		b.Swept = Stale(all, now(), after, runID)
		if err := b.sweeper.Delete(ctx, b.Swept); err != nil {
			return nil, fmt.Errorf("sweep earlier runs: %w", err)
		}
	}
	return b, nil
}

// Sweeper lists and deletes tagged resources in the backend's account.
func (b *Backend) Sweeper() *Sweeper { return b.sweeper }

// RunID is this run's unique ID: use it as the irsa cluster name (and bucket name prefix).
func (b *Backend) RunID() string { return b.runID }

// Endpoint is empty: the irsa CLI talks to AWS itself.
func (b *Backend) Endpoint() string { return "" }

// PodEndpoint is empty: pods use the regional STS endpoint.
func (b *Backend) PodEndpoint() string { return "" }

// IssuerURL is empty: irsa's default issuer (the bucket's S3 URL).
func (b *Backend) IssuerURL(string) string { return "" }

// CAFile is empty: the system roots.
func (b *Backend) CAFile() string { return "" }

// Region is the region of the run.
func (b *Backend) Region() string { return b.region }

// Env sets the region; credentials stay those of the process's default chain.
func (b *Backend) Env() []string {
	return []string{"AWS_REGION=" + b.region, "AWS_DEFAULT_REGION=" + b.region}
}

// Close deletes every resource this run owns, whether or not the scenario's teardown ran.
func (b *Backend) Close(ctx context.Context) error {
	all, err := b.sweeper.List(ctx)
	if err != nil {
		return fmt.Errorf("teardown of run %s: %w", b.runID, err)
	}
	if err := b.sweeper.Delete(ctx, Owned(all, b.runID)); err != nil {
		return fmt.Errorf("teardown of run %s: %w", b.runID, err)
	}
	return nil
}
