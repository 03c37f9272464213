// Package setup connects to AWS and the cluster, resolves the target (package target) and builds the stages of a run
// from it: the one place that decides which stage implementation runs (the signing-key modes, stand-ins for cluster
// stages when there is no cluster, the verify Job's command). Commands call Connect and then Runner, or one stage's
// functions (bind, unbind, verify); they decide nothing themselves.
package setup

import (
	"cmp"
	"context"
	"crypto"
	"crypto/x509"
	"fmt"
	"github.com/aws/aws-sdk-go-v2/aws"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"time"

	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/irsa-anywhere/irsa/pipeline/apiserver"
	"github.com/irsa-anywhere/irsa/pipeline/awsclient"
	"github.com/irsa-anywhere/irsa/pipeline/bindings"
	"github.com/irsa-anywhere/irsa/pipeline/config"
	"github.com/irsa-anywhere/irsa/pipeline/issuer"
	"github.com/irsa-anywhere/irsa/pipeline/keys"
	"github.com/irsa-anywhere/irsa/pipeline/provider"
	"github.com/irsa-anywhere/irsa/pipeline/roles"
	"github.com/irsa-anywhere/irsa/pipeline/runner"
	"github.com/irsa-anywhere/irsa/pipeline/stage"
	"github.com/irsa-anywhere/irsa/pipeline/target"
	"github.com/irsa-anywhere/irsa/pipeline/verify"
	"github.com/irsa-anywhere/irsa/pipeline/webhook"
)

// Options are what Connect needs besides the configuration.
type Options struct {
	// CABundle is a PEM file of CAs to trust for AWS and the issuer; empty means the system roots.
	CABundle string
	// Profile is the shared-config profile (--profile); empty means $AWS_PROFILE or the default profile.
	Profile string
	// Credentials replaces the SDK's default credential chain (tests).
	Credentials aws.CredentialsProvider
	Log         *slog.Logger
	// Hook, when set, sees the Env before Connect returns (tests count its AWS calls).
	Hook func(*Env)
}

// Env is a connected, resolved run.
type Env struct {
	Target  *target.Target
	AWS     *awsclient.Clients
	RootCAs *x509.CertPool
	// Cluster is nil when no cluster is configured: irsa then does the AWS side only.
	Cluster *Cluster
	Log     *slog.Logger
	// ForceTeardown lets teardown delete the issuer bucket although it holds objects irsa did not write.
	ForceTeardown bool
	// DeployTimeout and DeployPoll bound the waits of cloudfront hosting (cloudfront.Host); zero means its defaults.
	DeployTimeout, DeployPoll time.Duration
}

// Cluster reaches the target cluster.
type Cluster struct {
	Rest   *rest.Config
	Client kubernetes.Interface
	// Requests counts the requests made through Client.
	Requests *RequestCounter
}

// Connect completes cfg from the environment (the region as the AWS CLI finds it: the configuration, then
// $AWS_REGION, $AWS_DEFAULT_REGION and the profile; the key directory), fills its defaults and validates it, builds the
// AWS clients (failing early without credentials) and the cluster clients, and resolves the target. It writes nothing.
func Connect(ctx context.Context, cfg *config.Config, o Options) (*Env, error) {
	if cfg.Region == "" {
		region, err := awsclient.DefaultRegion(ctx, o.Profile)
		if err != nil {
			return nil, err
		}
		cfg.Region = region
	}
	if cfg.AWSEndpointURL == "" && cfg.IssuerURL == "" {
		ep, err := awsclient.S3Endpoint(ctx, o.Profile)
		if err != nil {
			return nil, err
		}
		cfg.SetEnvironmentS3Endpoint(ep)
	}
	if cfg.SigningKey == target.SigningKeyGenerate && cfg.KeyDir == "" {
		cfg.KeyDir = DefaultKeyDir(cfg.ClusterName)
	}
	cfg.Defaults()
	if err := cfg.ApplyImages(); err != nil { // the mirror rewrite, defaults included
		return nil, err
	}
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	log := o.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	e := &Env{Log: log}
	bundle, pool, err := LoadCABundle(cmp.Or(o.CABundle, os.Getenv("AWS_CA_BUNDLE")))
	if err != nil {
		return nil, err
	}
	e.RootCAs = pool
	e.AWS, err = awsclient.New(ctx, awsclient.Options{Region: cfg.Region, EndpointURL: cfg.AWSEndpointURL, CABundle: bundle,
		Profile: o.Profile, Credentials: o.Credentials})
	if err != nil {
		return nil, err
	}
	if err := e.AWS.CheckCredentials(ctx); err != nil {
		return nil, err
	}
	if e.Cluster, err = LoadCluster(cfg.Kubeconfig, cfg.Context); err != nil {
		return nil, err
	}
	if o.Hook != nil {
		o.Hook(e) // before Resolve, so tests also count the calls Resolve makes
	}
	if e.Target, err = target.Resolve(ctx, cfg, target.IAMReader{Clients: e.AWS}); err != nil {
		return nil, err
	}
	if err := e.locateIssuer(ctx); err != nil {
		return nil, err
	}
	return e, nil
}

// ConnectBinding is Connect for one binding given on the command line (bind, unbind). The binding joins cfg's
// bindings, replacing one for the same ServiceAccount, so it is validated with them (two bindings must not share a
// role); it is the last of Target.Bindings.
func ConnectBinding(ctx context.Context, cfg *config.Config, b config.Binding, o Options) (*Env, error) {
	cfg.Bindings = slices.DeleteFunc(cfg.Bindings, func(c config.Binding) bool {
		return c.Namespace == b.Namespace && c.ServiceAccount == b.ServiceAccount
	})
	cfg.Bindings = append(cfg.Bindings, b)
	e, err := Connect(ctx, cfg, o)
	if err == nil && e.Target.Pending() {
		return nil, fmt.Errorf("binding %s/%s: the issuer's CloudFront distribution does not exist yet, so its URL (the trust policy's condition keys) is unknown: run irsa apply first", b.Namespace, b.ServiceAccount)
	}
	return e, err
}

// Calls counts what this run asked of AWS and the cluster so far.
func (e *Env) Calls() *runner.Calls {
	c := &runner.Calls{AWSReads: e.AWS.Calls.Reads(), AWSWrites: e.AWS.Calls.Mutating(), ClusterWrites: []string{}}
	if c.AWSWrites == nil {
		c.AWSWrites = []string{}
	}
	if e.Cluster != nil {
		c.ClusterReads, c.ClusterWrites = e.Cluster.Requests.Reads(), e.Cluster.Requests.Writes()
	}
	if c.ClusterWrites == nil {
		c.ClusterWrites = []string{}
	}
	return c
}

// LoadCABundle reads a PEM bundle and returns it with a pool of the system roots plus its certificates. An empty path
// gives nil, nil: the system roots.
func LoadCABundle(path string) ([]byte, *x509.CertPool, error) {
	if path == "" {
		return nil, nil, nil
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, nil, fmt.Errorf("read CA bundle %q: %w", path, err)
	}
	pool, _ := x509.SystemCertPool()
	if pool == nil {
		pool = x509.NewCertPool()
	}
	if !pool.AppendCertsFromPEM(data) {
		return nil, nil, fmt.Errorf("CA bundle %q: no PEM certificate found", path)
	}
	return data, pool, nil
}

// LoadCluster returns nil, without error, when no kubeconfig is given and none exists at the default places
// ($KUBECONFIG, ~/.kube/config): irsa then does the AWS side only. An explicit kubeconfig that cannot be read is an
// error.
func LoadCluster(kubeconfig, context string) (*Cluster, error) {
	rules := clientcmd.NewDefaultClientConfigLoadingRules()
	if kubeconfig != "" {
		if _, err := os.Stat(kubeconfig); err != nil {
			return nil, fmt.Errorf("kubeconfig %q: %w", kubeconfig, err)
		}
		rules.ExplicitPath = kubeconfig
	} else {
		found := false
		for _, p := range rules.Precedence {
			if _, err := os.Stat(p); err == nil {
				found = true
			}
		}
		if env := os.Getenv(clientcmd.RecommendedConfigPathEnvVar); !found && env != "" {
			// $KUBECONFIG asks for a cluster: a typo in it must not silently turn irsa into an AWS-only run.
			return nil, fmt.Errorf("KUBECONFIG=%q: no such file: fix the path, or unset KUBECONFIG for an AWS-only run", env)
		}
		if !found {
			return nil, nil
		}
	}
	rc, err := clientcmd.NewNonInteractiveDeferredLoadingClientConfig(rules, &clientcmd.ConfigOverrides{CurrentContext: context}).ClientConfig()
	if err != nil {
		return nil, fmt.Errorf("load kubeconfig: %w", err)
	}
	rc.UserAgent = "irsa"
	counter := &RequestCounter{}
	counted := rest.CopyConfig(rc)
	counted.Wrap(counter.wrap)
	client, err := kubernetes.NewForConfig(counted)
	if err != nil {
		return nil, fmt.Errorf("build Kubernetes client for %s: %w", rc.Host, err)
	}
	return &Cluster{Rest: rc, Client: client, Requests: counter}, nil
}

// DefaultKeyDir is where --signing-key generate keeps the keypair when --key-dir is not given.
func DefaultKeyDir(cluster string) string {
	dir, err := os.UserConfigDir()
	if err != nil {
		dir = os.TempDir()
	}
	return filepath.Join(dir, "irsa", cluster, "keys")
}

// NoClusterReason is why cluster stages are skipped without a cluster.
const NoClusterReason = "no cluster: give --kubeconfig (or set KUBECONFIG)"

// Runner builds the run's stages along the stage graph. Cluster stages are skipped, with the reason, when no cluster
// is configured; the bindings stage then does its AWS half. The verify stage runs in apply mode only when another
// stage changed something, or when forceVerify is set.
func (e *Env) Runner(forceVerify bool) *runner.Runner {
	t := e.Target
	cfg := t.Config
	stages := []stage.Stage{
		&keys.Stage{Dir: cfg.KeyDir},
		&issuer.Stage{
			Host: e.IssuerHost(), IssuerURL: t.Issuer.URL, DiscoveryKey: t.Issuer.DiscoveryKey, JWKSKey: t.Issuer.JWKSKey,
			Keys: e.KeySource().Load, LegacyEmptyKID: cfg.LegacyEmptyKID, Located: t.SetIssuerURL,
		},
		// The stages that use the issuer URL are built when they run: with cloudfront hosting the issuer stage may
		// learn the URL only then (afterIssuer).
		&afterIssuer{name: stage.Provider, e: e, build: func() stage.Stage { return e.ProviderStage() }, pending: stage.Change{Action: stage.Create, Kind: "iam-oidc-provider", Name: "(the distribution's issuer URL)", Detail: PendingReason}},
		&afterIssuer{name: stage.Bindings, e: e, build: func() stage.Stage { return e.BindingsStage() },
			pending: stage.Change{Action: stage.Update, Kind: "iam-role", Name: "(every binding's role)", Detail: "trust policy for the new issuer; " + PendingReason}},
	}
	skip := map[string]string{}
	if e.Cluster != nil {
		stages = append(stages, &apiserverStage{e: e}, e.webhookStage(),
			&afterIssuer{name: stage.Verify, e: e, build: e.verifyStageOrFailing,
				pending: stage.Change{Action: stage.Create, Kind: "job", Name: "(verify)", Detail: PendingReason}})
	} else {
		for _, n := range []string{stage.APIServer, stage.Webhook, stage.Verify} {
			stages = append(stages, standIn(n))
			skip[n] = NoClusterReason
		}
	}
	return &runner.Runner{Stages: inOrder(stages), Skip: skip, IfChanged: []string{stage.Verify}, Force: forceVerify, Log: e.Log}
}

// ProviderStage is the provider stage for the target.
func (e *Env) ProviderStage() *provider.Stage {
	t := e.Target
	return &provider.Stage{
		IAM: e.AWS.IAM, Region: t.Region, ClusterName: t.ClusterName, IssuerURL: t.Issuer.URL, Audience: t.Audience,
		ClientIDs: bindingAudiences(t.Config.Bindings), TrustedAudiences: e.RoleManager().TrustedAudiences, Thumbprints: t.Config.Thumbprints, AccountID: e.AWS.AccountID, RootCAs: e.RootCAs,
		PublicCA: t.Issuer.Hosting == config.HostingCloudFront,
	}
}

// bindingAudiences are the audiences bindings ask for besides the default: the provider lists them as client IDs.
func bindingAudiences(bs []config.Binding) []string {
	var out []string
	for _, b := range bs {
		if b.Audience != "" {
			out = append(out, b.Audience)
		}
	}
	return out
}

// CheckOnly refuses to run cluster stages named with --only when no cluster is configured: asked for explicitly, a
// stage that cannot run is an error, not a skip.
func (e *Env) CheckOnly(only []string) error {
	if e.Cluster != nil {
		return nil
	}
	for _, n := range only {
		if n == stage.APIServer || n == stage.Webhook || n == stage.Verify {
			return fmt.Errorf("stage %s needs a cluster, and none is configured: give --kubeconfig (or set KUBECONFIG)", n)
		}
	}
	return nil
}

// CheckTeardown refuses to remove the issuer and the IAM provider while no cluster is configured, unless awsOnly
// says the cluster is gone: a live cluster would go on issuing tokens for the deleted issuer, and every pod using a role
// would fail with InvalidIdentityToken.
func (e *Env) CheckTeardown(only []string, awsOnly bool) error {
	if e.Cluster != nil || awsOnly {
		return nil
	}
	if len(only) > 0 && !slices.Contains(only, stage.Issuer) && !slices.Contains(only, stage.Provider) {
		return nil
	}
	return fmt.Errorf("teardown: no cluster configured, and removing issuer %s and its IAM provider would break every pod of a cluster that still issues tokens for it: give --kubeconfig so the apiserver gets its original issuer back first, or --aws-only if the cluster is gone", e.Target.Issuer.URL)
}

// TeardownSummary lists, one line each, what teardown of the selected stages removes.
func (e *Env) TeardownSummary(only []string) []string {
	t := e.Target
	in := func(s string) bool { return len(only) == 0 || slices.Contains(only, s) }
	var out []string
	if in(stage.Verify) && e.Cluster != nil {
		out = append(out, "the verify Job, its ServiceAccount and role, if left behind")
	}
	if in(stage.Bindings) {
		out = append(out, fmt.Sprintf("every IAM role under path %s, irsa's trust statements on roles bound with a role ARN, and the annotations irsa set on their ServiceAccounts", roles.Path(t.ClusterName)))
	}
	if in(stage.APIServer) && e.Cluster != nil {
		out = append(out, "irsa's issuer from kube-apiserver, which gets its original issuer back (each control-plane apiserver restarts)")
	}
	if in(stage.Webhook) && e.Cluster != nil {
		out = append(out, "the pod identity webhook and its namespace")
	}
	if in(stage.Provider) {
		out = append(out, "IAM OIDC provider "+t.ProviderARN+", and any other tagged for this cluster")
	}
	if in(stage.Issuer) {
		what := "if irsa owns it and holds nothing else"
		if e.ForceTeardown {
			what = "and everything in it (--force), if irsa owns it"
		}
		if t.Issuer.Hosting == config.HostingCloudFront {
			out = append(out, "the CloudFront distribution (disabled first, then deleted once deployed) and origin access control irsa made for "+t.Issuer.Bucket+
				"; with issuer.domain, its ACM certificate and the Route 53 records irsa's ownership TXT names")
		}
		out = append(out, fmt.Sprintf("S3 bucket %s and its documents, %s; the same for any other bucket in %s tagged for this cluster", t.Issuer.Bucket, what, t.Region))
	}
	return out
}

// inOrder sorts stages as stage.Order lists them, the order of the report.
func inOrder(stages []stage.Stage) []stage.Stage {
	var out []stage.Stage
	for _, n := range stage.Order {
		for _, s := range stages {
			if s.Name() == n {
				out = append(out, s)
			}
		}
	}
	return out
}

// RoleManager manages the cluster's IAM roles.
func (e *Env) RoleManager() *roles.Manager {
	t := e.Target
	return &roles.Manager{
		IAM: e.AWS.IAM, ClusterName: t.ClusterName, IssuerURL: t.Issuer.URL, Audience: t.Audience,
		ProviderARN: func(context.Context) (string, error) { return t.ProviderARN, nil },
		AccountID:   func(context.Context) (string, error) { return t.AccountID, nil },
		Partition:   t.Partition,
	}
}

// KeySource says where the published keys come from: given files, the key directory and the cluster.
func (e *Env) KeySource() keys.Source {
	src := keys.Source{Files: e.Target.Config.PublicKeyFiles, Dir: e.Target.Config.KeyDir}
	if e.Cluster != nil {
		src.Cluster = e.servedKeys
	}
	return src
}

// servedKeys reads the keys the apiserver serves at /openid/v1/jwks.
func (e *Env) servedKeys(ctx context.Context) ([]crypto.PublicKey, error) {
	set, err := apiserver.ServedKeys(ctx, e.Cluster.Client)
	if err != nil {
		return nil, err
	}
	var out []crypto.PublicKey
	for _, k := range set.Keys {
		// RSA and ECDSA keys alike: kube-apiserver signs ES256/384/512 with an EC key, and STS accepts those.
		if _, err := keys.AlgorithmOf(k.Key); err == nil {
			out = append(out, k.Key)
		}
	}
	return out, nil
}

// BindingsStage is the bindings stage for the configured bindings.
func (e *Env) BindingsStage() *bindings.Stage {
	s := &bindings.Stage{Roles: e.RoleManager(), Bindings: e.Target.Config.Bindings}
	if e.Cluster != nil {
		s.ServiceAccounts = &bindings.ClusterServiceAccounts{Client: e.Cluster.Client, ClusterName: e.Target.ClusterName}
	}
	return s
}

func (e *Env) webhookStage() stage.Stage {
	t := e.Target
	wh, err := webhook.New(e.Cluster.Client, webhook.Options{
		ClusterName: t.ClusterName, Image: t.Config.Webhook.Image, Audience: t.Audience, Region: t.Region,
		Replicas: t.Config.Webhook.Replicas, Wait: true, ImagePullSecrets: t.Config.Images.PullSecrets,
	}, e.Log)
	if err != nil {
		return failing{stage.Webhook, err}
	}
	return wh
}

func (e *Env) verifyStageOrFailing() stage.Stage {
	vs, err := e.VerifyStage(false)
	if err != nil {
		return failing{stage.Verify, err}
	}
	return vs
}

// VerifyStage builds the verify stage. With irsa's own image as the verify image, the Job runs `irsa probe`, which
// prints what the aws-cli commands print. keep leaves the Job, ServiceAccount and role in place.
func (e *Env) VerifyStage(keep bool) (*verify.Stage, error) {
	if e.Cluster == nil {
		return nil, fmt.Errorf("verify needs a cluster: give --kubeconfig (or set KUBECONFIG)")
	}
	cfg := e.Target.Config
	opts := verify.Options{
		ClusterName: cfg.ClusterName, Bucket: cfg.Bucket, Image: cfg.Verify.Image, Command: cfg.Verify.Command,
		Audience: cfg.Audience, STSEndpoint: cmp.Or(cfg.Verify.PodSTSEndpointURL, cfg.Verify.PodEndpointURL),
		S3Endpoint: cfg.Verify.PodEndpointURL, Keep: keep, ImagePullSecrets: cfg.Images.PullSecrets,
	}
	if len(opts.Command) == 0 && cfg.Verify.Image == cfg.Image {
		opts.Command = verify.ProbeCommand
	}
	if cfg.Verify.PodCABundle != "" {
		data, err := os.ReadFile(cfg.Verify.PodCABundle)
		if err != nil {
			return nil, fmt.Errorf("read pod CA bundle %q: %w", cfg.Verify.PodCABundle, err)
		}
		opts.CABundle = data
	}
	return verify.New(e.Cluster.Client, e.RoleManager(), opts, e.Log)
}

// apiserverStage builds the apiserver stage when it runs, because with --signing-key generate the key it installs is
// made by the keys stage just before.
type apiserverStage struct {
	e *Env
}

func (s *apiserverStage) Name() string { return stage.APIServer }

// build makes the stage; withKey false builds it with the cluster's own key (for Delete, and for Plan before the
// keys stage has made the key).
func (s *apiserverStage) build(withKey bool) (*apiserver.Stage, error) {
	t := s.e.Target
	opts := apiserver.Options{
		IssuerURL: cmp.Or(t.Issuer.URL, issuer.PendingURL), Audience: t.Audience, ClusterType: t.Config.ClusterType, Image: t.Config.Image,
		ClusterName: t.ClusterName, Logger: s.e.Log, ImagePullSecrets: t.Config.Images.PullSecrets,
		AcceptIssuerReplacement: t.Config.AcceptIssuerReplacement,
	}
	if withKey {
		switch t.SigningKey.Mode {
		case target.SigningKeyGenerate:
			data, err := os.ReadFile(t.SigningKey.Path)
			if err != nil {
				return nil, fmt.Errorf("signing key: %w (the keys stage makes it: run without --only, or with --only keys first)", err)
			}
			opts.SigningKey = data
		case target.SigningKeyFile:
			opts.SigningKey = t.SigningKey.PEM
		}
	}
	return apiserver.New(s.e.Cluster.Client, s.e.Cluster.Rest, opts)
}

func (s *apiserverStage) Plan(ctx context.Context) ([]stage.Change, error) {
	if s.e.Target.Pending() {
		return []stage.Change{{Action: stage.Update, Kind: "kube-apiserver", Name: "--service-account-issuer", Detail: PendingReason}}, nil
	}
	withKey := true
	if s.e.Target.SigningKey.Mode == target.SigningKeyGenerate {
		if _, err := os.Stat(s.e.Target.SigningKey.Path); err != nil {
			withKey = false // not made yet: the plan is the stage's own with the cluster's key
		}
	}
	st, err := s.build(withKey)
	if err != nil {
		return nil, err
	}
	return st.Plan(ctx)
}

func (s *apiserverStage) Apply(ctx context.Context) ([]stage.Change, error) {
	st, err := s.build(true)
	if err != nil {
		return nil, err
	}
	return st.Apply(ctx)
}

func (s *apiserverStage) Delete(ctx context.Context) ([]stage.Change, error) {
	st, err := s.build(false) // restoring needs no key
	if err != nil {
		return nil, err
	}
	return st.Delete(ctx)
}

// failing is a stage that could not be built; it fails with the reason when it runs.
type failing struct {
	name string
	err  error
}

func (f failing) Name() string                                   { return f.name }
func (f failing) Plan(context.Context) ([]stage.Change, error)   { return nil, f.err }
func (f failing) Apply(context.Context) ([]stage.Change, error)  { return nil, f.err }
func (f failing) Delete(context.Context) ([]stage.Change, error) { return nil, f.err }

// standIn stands for a stage that cannot run here; the runner reports the reason instead of running it.
type standIn string

func (s standIn) Name() string                                   { return string(s) }
func (s standIn) Plan(context.Context) ([]stage.Change, error)   { return nil, nil }
func (s standIn) Apply(context.Context) ([]stage.Change, error)  { return nil, nil }
func (s standIn) Delete(context.Context) ([]stage.Change, error) { return nil, nil }
