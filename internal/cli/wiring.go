package cli

import (
	"context"
	"crypto/x509"
	"log/slog"
	"os"

	"github.com/irsa-anywhere/irsa/pipeline/awsclient"
	"github.com/irsa-anywhere/irsa/pipeline/config"
	"github.com/irsa-anywhere/irsa/pipeline/issuer"
	"github.com/irsa-anywhere/irsa/pipeline/keys"
	"github.com/irsa-anywhere/irsa/pipeline/provider"
	"github.com/irsa-anywhere/irsa/pipeline/roles"
	"github.com/irsa-anywhere/irsa/pipeline/runner"
	"github.com/irsa-anywhere/irsa/pipeline/stage"
)

// testHookApp lets tests see the clients a command used (to count its AWS calls).
var testHookApp func(*app)

// app is everything a command needs once the configuration is valid.
type app struct {
	cfg     *config.Config
	aws     *awsclient.Clients
	rootCAs *x509.CertPool
	cluster *clusterClients // nil when no cluster is configured
	log     *slog.Logger
}

// newApp validates the configuration and builds the AWS clients (and the cluster clients when a kubeconfig is found).
// Nothing is written before it returns.
func (g *globalOptions) newApp(ctx context.Context) (*app, error) {
	cfg, err := g.loadConfig()
	if err != nil {
		return nil, err
	}
	a := &app{cfg: cfg, log: g.logger()}
	if cfg.SigningKey == "generate" && cfg.KeyDir == "" {
		cfg.KeyDir = defaultKeyDir(cfg.ClusterName)
	}
	path := firstNonEmpty(g.caBundle, os.Getenv("AWS_CA_BUNDLE"))
	bundle, pool, err := loadCABundle(path)
	if err != nil {
		return nil, err
	}
	a.rootCAs = pool
	if a.aws, err = awsclient.New(ctx, awsclient.Options{Region: cfg.Region, EndpointURL: cfg.AWSEndpointURL, CABundle: bundle}); err != nil {
		return nil, err
	}
	if err := a.aws.CheckCredentials(ctx); err != nil {
		return nil, err
	}
	if a.cluster, err = loadCluster(ctx, cfg); err != nil {
		return nil, err
	}
	if testHookApp != nil {
		testHookApp(a)
	}
	return a, nil
}

func (a *app) providerARN(ctx context.Context) (string, error) {
	account, err := a.aws.AccountID(ctx)
	if err != nil {
		return "", err
	}
	return provider.ARN(awsclient.Partition(a.cfg.Region), account, a.cfg.IssuerURL), nil
}

func (a *app) roleManager() *roles.Manager {
	return &roles.Manager{
		IAM: a.aws.IAM, ClusterName: a.cfg.ClusterName, IssuerURL: a.cfg.IssuerURL, Audience: a.cfg.Audience,
		ProviderARN: a.providerARN, AccountID: a.aws.AccountID, Partition: awsclient.Partition(a.cfg.Region),
	}
}

func (a *app) keySource() keys.Source {
	src := keys.Source{Files: a.cfg.PublicKeyFiles, Dir: a.cfg.KeyDir}
	if a.cluster != nil {
		src.Cluster = a.cluster.servedKeys
	}
	return src
}

func (a *app) bindingsStage() *roles.Stage {
	s := &roles.Stage{Roles: a.roleManager(), Bindings: a.cfg.Bindings}
	if a.cluster != nil {
		s.ServiceAccounts = a.cluster.serviceAccounts(a.cfg.ClusterName)
	}
	return s
}

// runner builds the ordered stages. Cluster stages are skipped, with the reason, when no cluster is configured.
func (a *app) runner() *runner.Runner {
	cfg := a.cfg
	stages := []stage.Stage{
		&keys.Stage{Dir: cfg.KeyDir},
		&issuer.Stage{
			S3: a.aws.S3, Bucket: cfg.Bucket, Region: cfg.Region, ClusterName: cfg.ClusterName, IssuerURL: cfg.IssuerURL,
			Keys: a.keySource().Load, LegacyEmptyKID: cfg.LegacyEmptyKID,
		},
		&provider.Stage{
			IAM: a.aws.IAM, Region: cfg.Region, ClusterName: cfg.ClusterName, IssuerURL: cfg.IssuerURL, Audience: cfg.Audience,
			Thumbprints: cfg.Thumbprints, AccountID: a.aws.AccountID, RootCAs: a.rootCAs,
		},
	}
	skip := map[string]string{}
	if a.cluster != nil {
		stages = append(stages, a.cluster.stages(a)...)
	} else {
		for _, n := range []string{stage.APIServer, stage.Webhook, stage.Verify} { // bindings then does the AWS half
			stages = append(stages, skipped(n))
			skip[n] = "no cluster: give --kubeconfig (or set KUBECONFIG)"
		}
	}
	stages = append(stages[:3:3], orderRest(stages[3:], a.bindingsStage())...)
	return &runner.Runner{Stages: stages, Skip: skip}
}

// orderRest puts the bindings stage between webhook and verify.
func orderRest(cluster []stage.Stage, bindings stage.Stage) []stage.Stage {
	var out []stage.Stage
	for _, s := range cluster {
		if s.Name() == stage.Verify {
			out = append(out, bindings)
		}
		out = append(out, s)
	}
	if len(out) == len(cluster) {
		out = append(out, bindings)
	}
	return out
}

// skipped stands for a stage that cannot run here; the runner reports the reason instead of running it.
type skipped string

func (s skipped) Name() string                                   { return string(s) }
func (s skipped) Plan(context.Context) ([]stage.Change, error)   { return nil, nil }
func (s skipped) Apply(context.Context) ([]stage.Change, error)  { return nil, nil }
func (s skipped) Delete(context.Context) ([]stage.Change, error) { return nil, nil }
