// Package scenario is the IRSA end-to-end scenario's environment: it starts the selected cluster and AWS backend
// (E2E_CLUSTER, E2E_AWS; a host kubeadm cluster and moto by default), builds irsa and the images the cluster needs,
// and runs the irsa CLI against them. The e2e test and `make demo` share it.
package scenario

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/irsa-anywhere/irsa/e2e/aws/moto"
	"github.com/irsa-anywhere/irsa/e2e/backends"
	"github.com/irsa-anywhere/irsa/e2e/cluster/host"
	"github.com/irsa-anywhere/irsa/e2e/framework"
	"github.com/irsa-anywhere/irsa/e2e/images"
	"github.com/irsa-anywhere/irsa/pipeline/config"
)

// Names the scenario uses.
const (
	ClusterName = "irsa-e2e"
	BucketName  = "irsa-e2e-issuer"
)

// Phase is one timed step, for the timing report.
type Phase struct {
	Name     string
	Duration time.Duration
}

// Env is a running scenario environment.
type Env struct {
	Selection backends.Selection
	Backends  *backends.Env
	// Irsa is the irsa binary built from this repository.
	Irsa        string
	ClusterName string
	Bucket      string
	IssuerURL   string
	Rest        *rest.Config
	Kube        kubernetes.Interface
	Timings     []Phase
	// ExtraFlags are added to every irsa command line, such as a signing key mode.
	ExtraFlags []string
	// Hosting is the issuer hosting mode (E2E_ISSUER_HOSTING: s3-public, the default, or cloudfront, which needs
	// moto: the strict CloudFront stand-in reads it). With cloudfront, IssuerURL is known once apply has made the
	// distribution.
	Hosting string
	// WebhookImage is the webhook image built for the cluster (images.WebhookRef on the host cluster); empty means
	// the default, pulled from upstream's registry (kind on GitHub).
	WebhookImage string
	log          *slog.Logger
	root         string
}

// Time records how long a step took.
func (e *Env) Time(name string, start time.Time) {
	e.Timings = append(e.Timings, Phase{name, time.Since(start)})
}

// TimingReport renders the timings as aligned lines.
func (e *Env) TimingReport() string {
	var b strings.Builder
	for _, p := range e.Timings {
		fmt.Fprintf(&b, "%-40s %8.1fs\n", p.Name, p.Duration.Seconds())
	}
	return b.String()
}

// Start builds what the selected backends need and starts them. It returns a non-nil Env even on failure, so the
// caller can always Close it.
func Start(ctx context.Context, getenv func(string) string, log *slog.Logger) (*Env, error) {
	e := &Env{ClusterName: ClusterName, Bucket: BucketName, log: log, Hosting: getenv("E2E_ISSUER_HOSTING")}
	sel, err := backends.FromEnv(getenv)
	if err != nil {
		return e, err
	}
	e.Selection = sel
	if e.root, err = images.RepoRoot(); err != nil {
		return e, err
	}

	start := time.Now()
	e.Irsa = filepath.Join(os.TempDir(), "irsa-e2e-bin", "irsa")
	build := exec.CommandContext(ctx, "go", "build", "-o", e.Irsa, "./cmd/irsa")
	build.Dir = e.root
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		return e, fmt.Errorf("build irsa: %w\n%s", err, out)
	}
	e.Time("build irsa", start)

	var clusterImages []string
	if sel.Cluster == "host" {
		start = time.Now()
		out, err := exec.CommandContext(ctx, filepath.Join(e.root, "hack", "build-kubernetes.sh")).CombinedOutput()
		if err != nil {
			return e, fmt.Errorf("hack/build-kubernetes.sh: %w\n%s", err, out)
		}
		what := "cached"
		if bytes.Contains(out, []byte(" built in ")) {
			what = "built"
		}
		e.Time("kubernetes binaries ("+what+")", start)
	}
	start = time.Now()
	names := []string{images.Irsa}
	switch {
	case sel.Cluster == "host":
		names = append(append(names, images.Webhook), images.ClusterNames()...)
		e.WebhookImage = images.WebhookRef
	case sel.NodeImage != "":
		// A kind node image built here means no registry: the webhook's image is loaded like irsa's.
		names = append(names, images.Webhook)
		e.WebhookImage = images.WebhookRef
	}
	imgs, err := images.Build(ctx, images.Options{RepoRoot: e.root}, names...)
	if err != nil {
		return e, err
	}
	var later []string
	cached := 0
	for _, img := range imgs {
		if slices.Contains(images.ClusterNames(), img.Name) {
			clusterImages = append(clusterImages, img.Tarball)
		} else {
			later = append(later, img.Tarball)
		}
		if img.Cached {
			cached++
		}
	}
	e.Time(fmt.Sprintf("image build (%d/%d cached)", cached, len(imgs)), start)

	reg := backends.Docker(backends.DockerParams{ClusterName: ClusterName, Bucket: BucketName, Logger: log}).With(backends.Registry{
		Clusters: map[string]backends.ClusterFunc{"host": func(ctx context.Context, _ backends.Selection, aws framework.AWS) (framework.Cluster, error) {
			opts := host.Options{Name: ClusterName, Images: clusterImages, Logger: log}
			if p, ok := host.PeerOf(aws); ok {
				opts.Peers = []host.Peer{p}
			}
			start := time.Now()
			c, err := host.Up(ctx, opts)
			if c != nil {
				defer func() {
					e.Time("cluster up", start)
					for _, p := range c.Timings() {
						e.Timings = append(e.Timings, Phase{"  " + p.Name, p.Duration})
					}
				}()
			}
			if err != nil && c != nil {
				_ = c.Delete(context.WithoutCancel(ctx))
			}
			if err != nil {
				return nil, err
			}
			return c, nil
		}},
		AWS: map[string]backends.AWSFunc{"moto": func(ctx context.Context, _ backends.Selection) (framework.AWS, error) {
			start := time.Now()
			b, err := moto.Start(ctx, moto.Options{Sandbox: true, STSGate: true, CloudFrontEdge: e.Hosting == config.HostingCloudFront})
			e.Time("moto + strict STS gate up", start)
			if err != nil {
				if b != nil {
					_ = b.Close(context.WithoutCancel(ctx))
				}
				return nil, err
			}
			return b, nil
		}},
	})
	if e.Backends, err = reg.Open(ctx, sel); err != nil {
		return e, err
	}
	if real := backends.RealAWSRunID(e.Backends.AWS); real != "" {
		e.ClusterName = real
	}
	e.Bucket = backends.Bucket(e.Backends.AWS, BucketName)
	e.IssuerURL = backends.IssuerURL(e.Backends.AWS, e.Bucket)
	if e.Hosting == config.HostingCloudFront {
		e.IssuerURL = "" // the distribution's, once apply has made it
	} else if e.IssuerURL == "" {
		e.IssuerURL = config.BucketIssuerURL(e.Bucket, e.Backends.AWS.Region())
	}

	start = time.Now()
	if err := e.Backends.Cluster.LoadImages(ctx, later...); err != nil {
		return e, err
	}
	e.Time("load irsa and webhook images", start)
	if e.Rest, err = clientcmd.BuildConfigFromFlags("", e.Backends.Cluster.Kubeconfig()); err != nil {
		return e, fmt.Errorf("kubeconfig: %w", err)
	}
	if e.Kube, err = kubernetes.NewForConfig(e.Rest); err != nil {
		return e, err
	}
	return e, nil
}

// Flags are the irsa flags that point it at this environment.
func (e *Env) Flags() []string {
	aws, c := e.Backends.AWS, e.Backends.Cluster
	f := []string{
		"--cluster-name", e.ClusterName, "--region", aws.Region(), "--bucket", e.Bucket,
		"--kubeconfig", c.Kubeconfig(), "--cluster-type", c.Type(),
	}
	if e.Hosting == config.HostingCloudFront {
		f = append(f, "--issuer-hosting", config.HostingCloudFront)
	} else {
		f = append(f, "--issuer-url", e.IssuerURL)
	}
	f = append(f, imageFlags(e.WebhookImage)...)
	if aws.Endpoint() != "" {
		f = append(f, "--aws-endpoint-url", aws.Endpoint(), "--pod-aws-endpoint-url", aws.PodEndpoint())
	}
	if aws.CAFile() != "" {
		f = append(f, "--ca-bundle", aws.CAFile(), "--pod-ca-bundle", aws.CAFile())
	}
	return append(f, e.ExtraFlags...)
}

// imageFlags name the images the scenario built, under e2e-only names, so irsa never deploys a default reference
// that was built here instead of pulled.
func imageFlags(webhookImage string) []string {
	f := []string{"--image", images.IrsaRef, "--verify-image", images.IrsaRef}
	if webhookImage != "" {
		f = append(f, "--webhook-image", webhookImage)
	}
	return f
}

// Result is one irsa run.
type Result struct {
	Args           []string
	Code           int
	Stdout, Stderr string
	Duration       time.Duration
}

func (r Result) String() string {
	return fmt.Sprintf("irsa %s: exit %d after %s\nstdout:\n%s\nstderr:\n%s", strings.Join(r.Args, " "), r.Code, r.Duration.Round(time.Millisecond), r.Stdout, r.Stderr)
}

// Run runs irsa with args and the environment's flags.
func (e *Env) Run(ctx context.Context, args ...string) Result {
	args = append(args, e.Flags()...)
	cmd := exec.CommandContext(ctx, e.Irsa, args...)
	cmd.Env = append(os.Environ(), e.Backends.AWS.Env()...)
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	start := time.Now()
	err := cmd.Run()
	r := Result{Args: args, Stdout: out.String(), Stderr: errOut.String(), Duration: time.Since(start)}
	var ee *exec.ExitError
	switch {
	case errors.As(err, &ee):
		r.Code = ee.ExitCode()
	case err != nil:
		r.Code = -1
		r.Stderr += "\n" + err.Error()
	}
	return r
}

// CollectLogs saves the cluster's logs into dir.
func (e *Env) CollectLogs(ctx context.Context, dir string) error {
	if e.Backends == nil || e.Backends.Cluster == nil {
		return nil
	}
	return e.Backends.Cluster.CollectLogs(ctx, dir)
}

// Close tears the backends down (the cluster stays with KEEP=1).
func (e *Env) Close(ctx context.Context) error {
	if e.Backends == nil {
		return nil
	}
	start := time.Now()
	err := e.Backends.Close(ctx)
	e.Time("backends down", start)
	return err
}
