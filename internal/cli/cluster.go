package cli

import (
	"context"
	"crypto"
	"crypto/rsa"
	"fmt"
	"os"
	"path/filepath"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/irsa-anywhere/irsa/pipeline/apiserver"
	"github.com/irsa-anywhere/irsa/pipeline/bindings"
	"github.com/irsa-anywhere/irsa/pipeline/config"
	"github.com/irsa-anywhere/irsa/pipeline/keys"
	"github.com/irsa-anywhere/irsa/pipeline/stage"
	"github.com/irsa-anywhere/irsa/pipeline/verify"
	"github.com/irsa-anywhere/irsa/pipeline/webhook"
)

// clusterClients reach the target cluster.
type clusterClients struct {
	rest   *rest.Config
	client kubernetes.Interface
}

// loadCluster returns nil, without error, when no kubeconfig is given and none exists at the default places: irsa
// then does the AWS side only. An explicit kubeconfig that cannot be read is an error.
func loadCluster(_ context.Context, cfg *config.Config) (*clusterClients, error) {
	rules := clientcmd.NewDefaultClientConfigLoadingRules()
	if cfg.Kubeconfig != "" {
		if _, err := os.Stat(cfg.Kubeconfig); err != nil {
			return nil, fmt.Errorf("kubeconfig %q: %w", cfg.Kubeconfig, err)
		}
		rules.ExplicitPath = cfg.Kubeconfig
	} else {
		found := false
		for _, p := range rules.Precedence {
			if _, err := os.Stat(p); err == nil {
				found = true
			}
		}
		if !found {
			return nil, nil
		}
	}
	rc, err := clientcmd.NewNonInteractiveDeferredLoadingClientConfig(rules, &clientcmd.ConfigOverrides{CurrentContext: cfg.Context}).ClientConfig()
	if err != nil {
		return nil, fmt.Errorf("load kubeconfig: %w", err)
	}
	rc.UserAgent = "irsa"
	client, err := kubernetes.NewForConfig(rc)
	if err != nil {
		return nil, fmt.Errorf("build Kubernetes client for %s: %w", rc.Host, err)
	}
	return &clusterClients{rest: rc, client: client}, nil
}

// servedKeys reads the keys the apiserver serves at /openid/v1/jwks.
func (c *clusterClients) servedKeys(ctx context.Context) ([]crypto.PublicKey, error) {
	set, err := apiserver.ServedKeys(ctx, c.client)
	if err != nil {
		return nil, err
	}
	var out []crypto.PublicKey
	for _, k := range set.Keys {
		if rk, ok := k.Key.(*rsa.PublicKey); ok {
			out = append(out, rk)
		}
	}
	return out, nil
}

func (c *clusterClients) stages(a *app) []stage.Stage {
	cfg := a.cfg
	wh, whErr := webhook.New(c.client, webhook.Options{
		ClusterName: cfg.ClusterName, Image: cfg.Webhook.Image, Audience: cfg.Audience, Region: cfg.Region,
		Replicas: cfg.Webhook.Replicas, Wait: true, ImagePullSecrets: cfg.Images.PullSecrets,
	}, a.log)
	var whStage stage.Stage = wh
	if whErr != nil {
		whStage = failing{stage.Webhook, whErr}
	}
	vs, err := c.verifyStage(a, false)
	var verifyStage stage.Stage = vs
	if err != nil {
		verifyStage = failing{stage.Verify, err}
	}
	return []stage.Stage{&apiserverStage{c: c, cfg: cfg, a: a}, whStage, verifyStage}
}

// verifyStage builds the verify stage. With irsa's own image as the verify image, the Job runs `irsa probe`, which
// prints what the aws-cli commands print.
func (c *clusterClients) verifyStage(a *app, keep bool) (*verify.Stage, error) {
	cfg := a.cfg
	opts := verify.Options{
		ClusterName: cfg.ClusterName, Bucket: cfg.Bucket, Image: cfg.Verify.Image, Command: cfg.Verify.Command,
		Audience: cfg.Audience, STSEndpoint: firstNonEmpty(cfg.Verify.PodSTSEndpointURL, cfg.Verify.PodEndpointURL),
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
	return verify.New(c.client, a.roleManager(), opts, a.log)
}

// apiserverStage builds the apiserver stage when it runs, because with --signing-key generate the key it installs is
// made by the keys stage just before.
type apiserverStage struct {
	c   *clusterClients
	cfg *config.Config
	a   *app
}

func (s *apiserverStage) Name() string { return stage.APIServer }

func (s *apiserverStage) build() (*apiserver.Stage, error) {
	opts := apiserver.Options{
		IssuerURL: s.cfg.IssuerURL, Audience: s.cfg.Audience, ClusterType: s.cfg.ClusterType, Image: s.cfg.Image,
		ClusterName: s.cfg.ClusterName, Logger: s.a.log, ImagePullSecrets: s.cfg.Images.PullSecrets,
	}
	switch s.cfg.SigningKey {
	case "cluster":
	case "generate":
		data, err := os.ReadFile(keys.PairIn(s.cfg.KeyDir).PrivateKeyPath)
		if err != nil {
			return nil, fmt.Errorf("signing key: %w (the keys stage makes it: run without --only, or with --only keys first)", err)
		}
		opts.SigningKey = data
	default:
		data, err := os.ReadFile(s.cfg.SigningKey)
		if err != nil {
			return nil, fmt.Errorf("signing key: %w", err)
		}
		opts.SigningKey = data
	}
	return apiserver.New(s.c.client, s.c.rest, opts)
}

func (s *apiserverStage) Plan(ctx context.Context) ([]stage.Change, error) {
	st, err := s.build()
	if err != nil {
		if s.cfg.SigningKey == "generate" {
			// The key does not exist yet: the plan is the stage's own with the cluster's key.
			c := *s
			cfg := *s.cfg
			cfg.SigningKey = "cluster"
			c.cfg = &cfg
			if st, err = c.build(); err != nil {
				return nil, err
			}
			return st.Plan(ctx)
		}
		return nil, err
	}
	return st.Plan(ctx)
}

func (s *apiserverStage) Apply(ctx context.Context) ([]stage.Change, error) {
	st, err := s.build()
	if err != nil {
		return nil, err
	}
	return st.Apply(ctx)
}

func (s *apiserverStage) Delete(ctx context.Context) ([]stage.Change, error) {
	cfg := *s.cfg
	cfg.SigningKey = "cluster" // restoring needs no key
	st, err := (&apiserverStage{c: s.c, cfg: &cfg, a: s.a}).build()
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

// serviceAccounts is the cluster half of bindings.
type serviceAccounts struct {
	client  kubernetes.Interface
	cluster string
}

func (c *clusterClients) serviceAccounts(cluster string) *serviceAccounts {
	return &serviceAccounts{client: c.client, cluster: cluster}
}

func (s *serviceAccounts) binding(b config.Binding, roleARN string) bindings.Binding {
	out := bindings.Binding{Namespace: b.Namespace, ServiceAccount: b.ServiceAccount, RoleARN: roleARN, ClusterName: s.cluster,
		Audience: b.Audience, STSRegionalEndpoints: b.STSRegionalEndpoints}
	if b.TokenExpiration != "" {
		out.TokenExpiration, _ = time.ParseDuration(b.TokenExpiration) // validated with the configuration
	}
	return out
}

func (s *serviceAccounts) Plan(ctx context.Context, b config.Binding, roleARN string) ([]stage.Change, error) {
	return bindings.PlanBindServiceAccount(ctx, s.client, s.binding(b, roleARN))
}

// Bind annotates the ServiceAccount and, when irsa's webhook is installed, returns only once new pods of it get the
// web identity: the webhook fails open, so a pod started before it sees the annotation runs without credentials.
func (s *serviceAccounts) Bind(ctx context.Context, b config.Binding, roleARN string) ([]stage.Change, error) {
	changes, err := bindings.BindServiceAccount(ctx, s.client, s.binding(b, roleARN))
	if err != nil {
		return changes, err
	}
	_, err = s.client.AdmissionregistrationV1().MutatingWebhookConfigurations().Get(ctx, "irsa-"+config.WebhookName, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return changes, nil
	}
	if err != nil {
		return changes, fmt.Errorf("read mutating webhook configuration irsa-%s: %w", config.WebhookName, err)
	}
	return changes, bindings.WaitInjected(ctx, s.client, b.Namespace, b.ServiceAccount, roleARN, 2*time.Minute)
}

func (s *serviceAccounts) Unbind(ctx context.Context, b config.Binding) ([]stage.Change, error) {
	return bindings.UnbindServiceAccount(ctx, s.client, s.binding(b, ""))
}

// defaultKeyDir is where --signing-key generate keeps the keypair when --key-dir is not given.
func defaultKeyDir(cluster string) string {
	dir, err := os.UserConfigDir()
	if err != nil {
		dir = os.TempDir()
	}
	return filepath.Join(dir, "irsa", cluster, "keys")
}
