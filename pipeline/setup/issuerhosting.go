package setup

import (
	"context"
	"fmt"
	"strings"

	"github.com/irsa-anywhere/irsa/pipeline/config"
	"github.com/irsa-anywhere/irsa/pipeline/issuer"
	"github.com/irsa-anywhere/irsa/pipeline/issuer/cloudfront"
	"github.com/irsa-anywhere/irsa/pipeline/issuer/s3public"
	"github.com/irsa-anywhere/irsa/pipeline/stage"
)

// IssuerHost is where the issuer's documents are served: the hosting mode's issuer.Host.
func (e *Env) IssuerHost() issuer.Host {
	t := e.Target
	if t.Issuer.Hosting == config.HostingCloudFront {
		return e.CloudFrontHost()
	}
	return &s3public.Host{
		S3: e.AWS.S3, Bucket: t.Issuer.Bucket, Region: t.Region, ClusterName: t.ClusterName,
		DiscoveryKey: t.Issuer.DiscoveryKey, JWKSKey: t.Issuer.JWKSKey, Force: e.ForceTeardown,
	}
}

// CloudFrontHost is the cloudfront hosting mode's host.
func (e *Env) CloudFrontHost() *cloudfront.Host {
	t := e.Target
	return &cloudfront.Host{
		S3: e.AWS.S3, CloudFront: e.AWS.CloudFront, ACM: e.AWS.ACM, Route53: e.AWS.Route53,
		Bucket: t.Issuer.Bucket, Region: t.Region, Partition: t.Partition, AccountID: t.AccountID, ClusterName: t.ClusterName,
		DiscoveryKey: t.Issuer.DiscoveryKey, JWKSKey: t.Issuer.JWKSKey, Domain: t.Issuer.Domain, HostedZoneID: t.Config.Issuer.HostedZoneID,
		Force: e.ForceTeardown, DeployTimeout: e.DeployTimeout, PollInterval: e.DeployPoll, Log: e.Log,
		S3PublicIssuerURL: s3PublicIssuerURL(t.Config),
	}
}

// s3PublicIssuerURL is the issuer s3-public hosting gives the bucket (config.Defaults' rule).
func s3PublicIssuerURL(c *config.Config) string {
	if c.AWSEndpointURL != "" {
		return strings.TrimSuffix(c.AWSEndpointURL, "/") + "/" + c.Bucket
	}
	return config.BucketIssuerURL(c.Bucket, c.Region)
}

// locateIssuer completes a target whose issuer URL depends on its host (cloudfront hosting without a domain): it
// finds the distribution, read-only, and takes its domain. With no distribution yet the URL stays pending; the issuer
// stage makes it in apply and passes the URL on (issuer.Stage.Located).
func (e *Env) locateIssuer(ctx context.Context) error {
	if !e.Target.Pending() {
		return nil
	}
	h, ok := e.IssuerHost().(issuer.Locator)
	if !ok {
		return nil
	}
	u, _, err := h.Locate(ctx, false)
	if err != nil {
		return fmt.Errorf("find the issuer's CloudFront distribution: %w", err)
	}
	if u != "" {
		e.Target.SetIssuerURL(u)
	}
	return nil
}

// PendingReason is why a stage that needs the issuer URL cannot plan yet.
const PendingReason = "waits for the issuer URL: https://<the CloudFront distribution's domain>, known once apply creates the distribution"

// afterIssuer builds a stage that uses the issuer URL when it runs, from the target as it is then: with cloudfront
// hosting the issuer stage, which runs first (stage.Needs), may only then have learnt the URL (Target.SetIssuerURL).
// While the URL is pending, Plan reports the one change the stage waits to make, and Apply and Delete fail (Apply
// cannot run before the issuer stage has succeeded; Delete has nothing to find).
type afterIssuer struct {
	name    string
	e       *Env
	build   func() stage.Stage
	pending stage.Change
	built   stage.Stage
}

func (a *afterIssuer) Name() string { return a.name }

func (a *afterIssuer) stage() (stage.Stage, error) {
	if a.e.Target.Pending() {
		return nil, fmt.Errorf("stage %s: %s", a.name, PendingReason)
	}
	if a.built == nil {
		a.built = a.build()
	}
	return a.built, nil
}

func (a *afterIssuer) Plan(ctx context.Context) ([]stage.Change, error) {
	if a.e.Target.Pending() {
		return []stage.Change{a.pending}, nil
	}
	s, err := a.stage()
	if err != nil {
		return nil, err
	}
	return s.Plan(ctx)
}

func (a *afterIssuer) Apply(ctx context.Context) ([]stage.Change, error) {
	s, err := a.stage()
	if err != nil {
		return nil, err
	}
	return s.Apply(ctx)
}

func (a *afterIssuer) Delete(ctx context.Context) ([]stage.Change, error) {
	if a.e.Target.Pending() {
		return nil, nil // no distribution, so no provider or trust policy for its URL
	}
	s, err := a.stage()
	if err != nil {
		return nil, err
	}
	return s.Delete(ctx)
}

// Prepare forwards to the stage's Prepare (the verify stage's).
func (a *afterIssuer) Prepare(ctx context.Context) ([]stage.Change, error) {
	s, err := a.stage()
	if err != nil {
		return nil, err
	}
	if p, ok := s.(stage.Preparer); ok {
		return p.Prepare(ctx)
	}
	return nil, nil
}
