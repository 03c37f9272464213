// IAM Roles for Service Accounts (IRSA) for self-managed Kubernetes clusters, as a Dagger module.
//
// Build and package the irsa binary, then run its commands (plan, setup, status, verify, doctor,
// bind, unbind, teardown) in a container against your cluster and AWS account. What every command
// shares (the cluster, the AWS account and its credentials, the images) is given once, to the
// constructor or to the With* functions, which return a changed copy. Credentials are Dagger
// secrets: the kubeconfig and AWS config files are mounted as secret files and AWS keys are secret
// variables, so they never land in an image layer, an argument or the cache.
//
// Example: dagger call --cluster-name=dev --region=us-east-1 --bucket=dev-irsa-issuer
// --kubeconfig=file:$HOME/.kube/config --aws-access-key-id=env:AWS_ACCESS_KEY_ID
// --aws-secret-access-key=env:AWS_SECRET_ACCESS_KEY setup
package main

import (
	"context"
	"strings"
	"time"

	"dagger/irsa/internal/dagger"
)

const (
	// goImage builds and tests irsa. The digest pins golang:1.26.8-bookworm as public projects pin
	// it (it could not be checked against the registry from the machines this module is built on).
	goImage = "golang:1.26.8-bookworm@sha256:a688600ca24f8a4d3ca77f95b0dd40704a9fc787c826660eb7ba0b641b8b175d"
	// runtimeImage is the base of the irsa image: no shell, no package manager, user 65532.
	runtimeImage = "gcr.io/distroless/static-debian12:nonroot@sha256:d093aa3e30dbadd3efe1310db061a14da60299baff8450a17fe0ccc514a16639"
	// nonroot is the user of runtimeImage; secret files are mounted readable by it only.
	nonroot = "65532:65532"
	// binPath is where the irsa binary lives in the image; it is the image's entrypoint.
	binPath = "/usr/local/bin/irsa"
	// secretDir holds the secret files mounted for one run.
	secretDir = "/run/secrets/irsa"
	// inputDir holds the non-secret files given to one run (irsa.yaml, CA bundle, inline policies).
	inputDir = "/etc/irsa"
	// kubeAPIAlias is the host name under which a tunnelled Kubernetes API server is reachable.
	kubeAPIAlias = "kube-api"
	// motoVersion is the AWS emulator the Go tests start (internal/motoserver).
	motoVersion = "5.2.1"
	// runIDVariable changes on every run of a command with side effects, so that Dagger never
	// answers it from the cache of an earlier identical run.
	runIDVariable = "IRSA_DAGGER_RUN_ID"
)

// Irsa builds, tests and runs the irsa command-line tool. It holds what every irsa command
// shares; the With* functions return a copy with one group of it replaced.
type Irsa struct {
	// The irsa repository.
	Source *dagger.Directory

	Config         *dagger.File    // +private
	ClusterName    string          // +private
	ClusterType    string          // +private
	Region         string          // +private
	Bucket         string          // +private
	IssuerURL      string          // +private
	AWSEndpointURL string          // +private
	CABundle       *dagger.File    // +private
	Kubeconfig     *dagger.Secret  // +private
	KubeContext    string          // +private
	KubeAPI        *dagger.Service // +private

	AWSAccessKeyID     *dagger.Secret // +private
	AWSSecretAccessKey *dagger.Secret // +private
	AWSSessionToken    *dagger.Secret // +private
	AWSConfig          *dagger.Secret // +private
	AWSCredentials     *dagger.Secret // +private
	AWSProfile         string         // +private

	Image        string // +private
	WebhookImage string // +private
	VerifyImage  string // +private
	Format       string // +private
}

// New returns the module for an irsa repository, with what every irsa command shares. Everything
// is optional: irsa says what is missing, and flags override irsa.yaml.
func New(
	// The irsa repository; defaults to the repository this module belongs to.
	// +defaultPath="/"
	// +ignore=[".git", "bin", "_output", "artifacts"]
	source *dagger.Directory,
	// irsa.yaml configuration file (--config).
	// +optional
	config *dagger.File,
	// Cluster name, used in AWS resource names and tags (--cluster-name).
	// +optional
	clusterName string,
	// Cluster type: kubeadm, kind, eks-anywhere or external (--cluster-type); detected when empty.
	// +optional
	clusterType string,
	// AWS region (--region).
	// +optional
	region string,
	// S3 bucket that serves the issuer's discovery document and keys (--bucket).
	// +optional
	bucket string,
	// Issuer URL, when it is not the bucket's own URL (--issuer-url).
	// +optional
	issuerURL string,
	// AWS endpoint URL, for an emulator such as moto or LocalStack (--aws-endpoint-url).
	// +optional
	awsEndpointURL string,
	// PEM file of the CAs to trust for AWS and the issuer (--ca-bundle).
	// +optional
	caBundle *dagger.File,
	// Kubeconfig of the cluster (--kubeconfig); a secret because it carries credentials.
	// +optional
	kubeconfig *dagger.Secret,
	// Kubeconfig context to use (--context).
	// +optional
	kubeContext string,
	// Tunnel to the cluster's API server, such as tcp://localhost:6443 for a kind cluster; it is
	// reachable as kube-api:<port>, so the kubeconfig must name that server.
	// +optional
	kubeAPI *dagger.Service,
	// AWS access key ID (AWS_ACCESS_KEY_ID).
	// +optional
	awsAccessKeyID *dagger.Secret,
	// AWS secret access key (AWS_SECRET_ACCESS_KEY).
	// +optional
	awsSecretAccessKey *dagger.Secret,
	// AWS session token, for temporary credentials (AWS_SESSION_TOKEN).
	// +optional
	awsSessionToken *dagger.Secret,
	// AWS config file (AWS_CONFIG_FILE).
	// +optional
	awsConfig *dagger.Secret,
	// AWS shared credentials file (AWS_SHARED_CREDENTIALS_FILE).
	// +optional
	awsCredentials *dagger.Secret,
	// AWS profile to use from the config or credentials file (AWS_PROFILE).
	// +optional
	awsProfile string,
	// irsa image the apiserver stage runs on control-plane nodes (--image); irsa's default when empty.
	// +optional
	image string,
	// Pod identity webhook image (--webhook-image); irsa's default when empty.
	// +optional
	webhookImage string,
	// Image of the verify Job (--verify-image); irsa's default when empty.
	// +optional
	verifyImage string,
	// Output format of the reports: text or json (--output); text when empty.
	// +optional
	format string,
) *Irsa {
	return &Irsa{
		Source: source, Config: config,
		ClusterName: clusterName, ClusterType: clusterType, Region: region, Bucket: bucket, IssuerURL: issuerURL,
		AWSEndpointURL: awsEndpointURL, CABundle: caBundle,
		Kubeconfig: kubeconfig, KubeContext: kubeContext, KubeAPI: kubeAPI,
		AWSAccessKeyID: awsAccessKeyID, AWSSecretAccessKey: awsSecretAccessKey, AWSSessionToken: awsSessionToken,
		AWSConfig: awsConfig, AWSCredentials: awsCredentials, AWSProfile: awsProfile,
		Image: image, WebhookImage: webhookImage, VerifyImage: verifyImage, Format: format,
	}
}

// A With* function replaces one group of settings as a whole (an argument left out clears its
// setting) in a copy: the object it is called on never changes, so one base object can be shared.

// WithConfig returns a copy that reads this irsa.yaml (--config).
func (m *Irsa) WithConfig(
	// irsa.yaml configuration file.
	config *dagger.File,
) *Irsa {
	c := *m
	c.Config = config
	return &c
}

// WithKubeconfig returns a copy that reaches the cluster with this kubeconfig and context.
func (m *Irsa) WithKubeconfig(
	// Kubeconfig of the cluster (--kubeconfig); a secret because it carries credentials.
	kubeconfig *dagger.Secret,
	// Kubeconfig context to use (--context); the kubeconfig's current context when empty.
	// +optional
	kubeContext string,
) *Irsa {
	c := *m
	c.Kubeconfig, c.KubeContext = kubeconfig, kubeContext
	return &c
}

// WithKubeAPI returns a copy that tunnels to the cluster's API server, reachable as kube-api:<port>.
func (m *Irsa) WithKubeAPI(
	// Tunnel to the cluster's API server, such as tcp://localhost:6443 for a kind cluster.
	kubeAPI *dagger.Service,
) *Irsa {
	c := *m
	c.KubeAPI = kubeAPI
	return &c
}

// WithAWSCredentials returns a copy that signs AWS calls with these keys. A session token belongs
// to its key pair, so one left out is cleared.
func (m *Irsa) WithAWSCredentials(
	// AWS access key ID (AWS_ACCESS_KEY_ID).
	awsAccessKeyID *dagger.Secret,
	// AWS secret access key (AWS_SECRET_ACCESS_KEY).
	awsSecretAccessKey *dagger.Secret,
	// AWS session token, for temporary credentials (AWS_SESSION_TOKEN).
	// +optional
	awsSessionToken *dagger.Secret,
) *Irsa {
	c := *m
	c.AWSAccessKeyID, c.AWSSecretAccessKey, c.AWSSessionToken = awsAccessKeyID, awsSecretAccessKey, awsSessionToken
	return &c
}

// WithAWSConfig returns a copy that reads AWS settings and credentials from these files and profile.
func (m *Irsa) WithAWSConfig(
	// AWS config file (AWS_CONFIG_FILE).
	// +optional
	awsConfig *dagger.Secret,
	// AWS shared credentials file (AWS_SHARED_CREDENTIALS_FILE).
	// +optional
	awsCredentials *dagger.Secret,
	// AWS profile to use from these files (AWS_PROFILE); "default" when empty.
	// +optional
	awsProfile string,
) *Irsa {
	c := *m
	c.AWSConfig, c.AWSCredentials, c.AWSProfile = awsConfig, awsCredentials, awsProfile
	return &c
}

// WithAWSEndpoint returns a copy that sends AWS calls to this endpoint, such as an emulator, and
// trusts this CA bundle for it and for the issuer.
func (m *Irsa) WithAWSEndpoint(
	// AWS endpoint URL (--aws-endpoint-url).
	awsEndpointURL string,
	// PEM file of the CAs to trust for the endpoint and the issuer (--ca-bundle); the system roots when left out.
	// +optional
	caBundle *dagger.File,
) *Irsa {
	c := *m
	c.AWSEndpointURL, c.CABundle = awsEndpointURL, caBundle
	return &c
}

// WithImages returns a copy that runs these images in the cluster instead of irsa's defaults,
// for a mirror or a build of your own.
func (m *Irsa) WithImages(
	// irsa image the apiserver stage runs on control-plane nodes (--image).
	// +optional
	image string,
	// Pod identity webhook image (--webhook-image).
	// +optional
	webhookImage string,
	// Image of the verify Job (--verify-image).
	// +optional
	verifyImage string,
) *Irsa {
	c := *m
	c.Image, c.WebhookImage, c.VerifyImage = image, webhookImage, verifyImage
	return &c
}

// goToolchain is the Go image with Go's module and build caches on named cache volumes shared by
// every call.
func goToolchain() *dagger.Container {
	return dag.Container().
		From(goImage).
		WithMountedCache("/go/pkg/mod", dag.CacheVolume("irsa-go-mod")).
		WithMountedCache("/root/.cache/go-build", dag.CacheVolume("irsa-go-build")).
		WithEnvVariable("GOFLAGS", "-buildvcs=false")
}

// withSource adds the repository at /src, the working directory. It comes after the steps that do
// not need the source, so that editing the source does not invalidate them.
func (m *Irsa) withSource(c *dagger.Container) *dagger.Container {
	return c.WithDirectory("/src", m.Source).WithWorkdir("/src")
}

// Build compiles the irsa binary: static (CGO_ENABLED=0), for the engine's platform.
func (m *Irsa) Build() *dagger.File {
	return m.withSource(goToolchain()).
		WithEnvVariable("CGO_ENABLED", "0").
		WithExec([]string{"go", "build", "-trimpath", "-ldflags=-s -w", "-o", "/out/irsa", "./cmd/irsa"}).
		File("/out/irsa")
}

// Container returns the irsa image: the static binary on a distroless base, running as nonroot,
// with irsa as its entrypoint.
func (m *Irsa) Container() *dagger.Container {
	return dag.Container().
		From(runtimeImage).
		WithFile(binPath, m.Build(), dagger.ContainerWithFileOpts{Permissions: 0o755}).
		WithUser(nonroot).
		WithEntrypoint([]string{binPath})
}

// Test runs the Go tests of the repository in a Go container. The tests use real dependencies:
// moto_server (installed here) and the Kubernetes binaries built by hack/build-kubernetes.sh (on
// a cache volume, so only the first run pays for the build).
func (m *Irsa) Test(
	ctx context.Context,
	// Packages to test.
	// +default=["./..."]
	packages []string,
	// Only run tests matching this regular expression (go test -run).
	// +optional
	run string,
) (string, error) {
	args := []string{"go", "test", "-count=1"}
	if run != "" {
		args = append(args, "-run", run)
	}
	args = append(args, packages...)
	withMoto := goToolchain().
		WithExec([]string{"apt-get", "update"}).
		WithExec([]string{"apt-get", "install", "-y", "--no-install-recommends", "python3-venv"}).
		WithExec([]string{"python3", "-m", "venv", "/opt/moto"}).
		WithExec([]string{"/opt/moto/bin/pip", "install", "moto[server]==" + motoVersion}).
		WithEnvVariable("MOTO_SERVER", "/opt/moto/bin/moto_server").
		WithMountedCache("/root/.cache/irsa", dag.CacheVolume("irsa-kubernetes-bin")).
		WithEnvVariable("IRSA_CACHE", "/root/.cache/irsa")
	return m.withSource(withMoto).
		WithExec([]string{"hack/build-kubernetes.sh"}).
		WithExec(args).
		Stdout(ctx)
}

// Lint fails when a Go file is not gofmt-formatted or go vet reports a problem.
func (m *Irsa) Lint(ctx context.Context) (string, error) {
	return m.withSource(goToolchain()).
		WithExec([]string{"sh", "-c", `files=$(gofmt -l .); if [ -n "$files" ]; then echo "not gofmt-formatted:"; echo "$files"; exit 1; fi`}).
		WithExec([]string{"go", "vet", "./..."}).
		Stdout(ctx)
}

// Plan prints what setup would change, without changing anything (irsa plan).
// +cache="never"
func (m *Irsa) Plan(
	ctx context.Context,
	// Only these stages: keys, issuer, provider, apiserver, webhook, bindings, verify (--only).
	// +optional
	only []string,
) (string, error) {
	return m.run(ctx, command{name: "plan", flags: onlyFlag(only)})
}

// Setup applies every stage, or the --only ones, and prints the irsa report (irsa apply).
// +cache="never"
func (m *Irsa) Setup(
	ctx context.Context,
	// Only these stages: keys, issuer, provider, apiserver, webhook, bindings, verify (--only).
	// +optional
	only []string,
	// Run the verify stage even when nothing changed (--verify), so that every run proves IRSA works.
	// +default=true
	verify bool,
) (string, error) {
	flags := onlyFlag(only)
	if verify {
		flags = append(flags, "--verify")
	}
	return m.run(ctx, command{name: "apply", flags: flags})
}

// Status prints the state of every stage, or the --only ones (irsa status). Like Plan with changes to make, it fails
// when the setup has drifted (irsa exits 2), so a pipeline gates on it; the error carries the report.
// +cache="never"
func (m *Irsa) Status(
	ctx context.Context,
	// Only these stages: keys, issuer, provider, apiserver, webhook, bindings, verify (--only).
	// +optional
	only []string,
) (string, error) {
	return m.run(ctx, command{name: "status", flags: onlyFlag(only)})
}

// Verify proves IRSA works end to end: a Job assumes a role with its projected token (irsa verify).
// +cache="never"
func (m *Irsa) Verify(
	ctx context.Context,
	// Keep the verification Job, role and ServiceAccount for inspection (--keep).
	// +optional
	keep bool,
) (string, error) {
	var flags []string
	if keep {
		flags = append(flags, "--keep")
	}
	return m.run(ctx, command{name: "verify", flags: flags})
}

// Doctor diagnoses the IRSA setup, or one ServiceAccount's path to its role (irsa doctor).
// +cache="never"
func (m *Irsa) Doctor(
	ctx context.Context,
	// ServiceAccount to diagnose, as NAMESPACE/NAME.
	// +optional
	serviceAccount string,
	// Also assume the role with a freshly minted token (--live).
	// +optional
	live bool,
) (string, error) {
	cmd := command{name: "doctor"}
	if live {
		cmd.flags = append(cmd.flags, "--live")
	}
	if serviceAccount != "" {
		cmd.args = append(cmd.args, serviceAccount)
	}
	return m.run(ctx, cmd)
}

// Bind gives a ServiceAccount an IAM role with the given policies and annotates it (irsa bind).
// +cache="never"
func (m *Irsa) Bind(
	ctx context.Context,
	// ServiceAccount to bind, as NAMESPACE/NAME.
	serviceAccount string,
	// ARNs of managed policies to attach to the role (--policy-arn, repeatable).
	// +optional
	policyARN []string,
	// JSON policy document to put on the role as an inline policy (--inline-policy).
	// +optional
	inlinePolicy *dagger.File,
	// Name of the IAM role; irsa derives one from the cluster and ServiceAccount when empty (--role-name).
	// +optional
	roleName string,
	// Create the ServiceAccount (and its namespace) when it does not exist; otherwise a missing one is an error
	// (--create-service-account).
	// +optional
	createServiceAccount bool,
) (string, error) {
	cmd := command{name: "bind", args: []string{serviceAccount}}
	if createServiceAccount {
		cmd.flags = append(cmd.flags, "--create-service-account")
	}
	for _, arn := range policyARN {
		cmd.flags = append(cmd.flags, "--policy-arn", arn)
	}
	if inlinePolicy != nil {
		path := inputDir + "/inline-policy.json"
		cmd.files = append(cmd.files, input{path, inlinePolicy})
		cmd.flags = append(cmd.flags, "--inline-policy", path)
	}
	cmd.flags = append(cmd.flags, stringFlag("--role-name", roleName)...)
	return m.run(ctx, cmd)
}

// Unbind removes the IAM role irsa made for a ServiceAccount and its annotation (irsa unbind).
// +cache="never"
func (m *Irsa) Unbind(
	ctx context.Context,
	// ServiceAccount to unbind, as NAMESPACE/NAME.
	serviceAccount string,
	// Name of the IAM role, if bind was given one (--role-name).
	// +optional
	roleName string,
) (string, error) {
	// A Dagger call is not interactive: calling Unbind is the confirmation irsa asks for on a terminal.
	return m.run(ctx, command{name: "unbind", flags: append([]string{"--yes"}, stringFlag("--role-name", roleName)...), args: []string{serviceAccount}})
}

// Teardown deletes everything irsa created, found by its ownership tags and labels, for every
// stage or the --only ones (irsa teardown).
// +cache="never"
func (m *Irsa) Teardown(
	ctx context.Context,
	// Only these stages: keys, issuer, provider, apiserver, webhook, bindings, verify (--only).
	// +optional
	only []string,
	// Remove the issuer and the IAM provider although no kubeconfig is given: the cluster is gone (--aws-only).
	// Without it, teardown with no cluster refuses, since a live cluster would go on issuing tokens for them.
	// +optional
	awsOnly bool,
) (string, error) {
	// A Dagger call is not interactive: calling Teardown is the confirmation irsa asks for on a terminal.
	flags := append([]string{"--yes"}, onlyFlag(only)...)
	if awsOnly {
		flags = append(flags, "--aws-only")
	}
	return m.run(ctx, command{name: "teardown", flags: flags})
}

// command is one irsa command line: irsa NAME [shared flags] [flags] [args].
type command struct {
	name  string
	flags []string // the command's own flags, after the shared ones
	args  []string // positional arguments, last
	files []input  // files the flags name, mounted for the run
}

// input is a non-secret file mounted for one run.
type input struct {
	path string
	file *dagger.File
}

// imageFlags is, per irsa command, the image flags it uses. irsa's flags may live on the commands
// that use them, so a command is never given one it does not use. The commands that run stages
// take all three (apiserver: --image, webhook: --webhook-image, verify: --verify-image); verify
// runs the verify Job, which runs `irsa probe` when its image is the irsa image. Doctor, bind and
// unbind run no image.
var imageFlags = map[string][]string{
	"plan":     {"--image", "--webhook-image", "--verify-image"},
	"apply":    {"--image", "--webhook-image", "--verify-image"},
	"status":   {"--image", "--webhook-image", "--verify-image"},
	"teardown": {"--image", "--webhook-image", "--verify-image"},
	"verify":   {"--image", "--verify-image"},
}

func onlyFlag(only []string) []string {
	return stringFlag("--only", strings.Join(only, ","))
}

// stringFlag returns name and value, or nothing for an empty value (irsa's default).
func stringFlag(name, value string) []string {
	if value == "" {
		return nil
	}
	return []string{name, value}
}

// run executes irsa cmd in the irsa image, every flag after the command name, and returns its
// standard output (the report). Secrets reach the process only as secret mounts and secret
// variables.
func (m *Irsa) run(ctx context.Context, cmd command) (string, error) {
	ctr := m.Container()
	argv := []string{binPath, cmd.name}
	files := cmd.files
	if m.Config != nil {
		files = append([]input{{inputDir + "/irsa.yaml", m.Config}}, files...)
		argv = append(argv, "--config", inputDir+"/irsa.yaml")
	}
	if m.Kubeconfig != nil {
		ctr = ctr.WithMountedSecret(secretDir+"/kubeconfig", m.Kubeconfig, dagger.ContainerWithMountedSecretOpts{Owner: nonroot})
		argv = append(argv, "--kubeconfig", secretDir+"/kubeconfig")
	}
	if m.CABundle != nil {
		files = append(files, input{inputDir + "/ca-bundle.pem", m.CABundle})
	}
	for _, f := range files {
		ctr = ctr.WithMountedFile(f.path, f.file, dagger.ContainerWithMountedFileOpts{Owner: nonroot})
	}
	if m.KubeAPI != nil {
		ctr = ctr.WithServiceBinding(kubeAPIAlias, m.KubeAPI)
	}
	for _, v := range []struct {
		name   string
		secret *dagger.Secret
	}{
		{"AWS_ACCESS_KEY_ID", m.AWSAccessKeyID},
		{"AWS_SECRET_ACCESS_KEY", m.AWSSecretAccessKey},
		{"AWS_SESSION_TOKEN", m.AWSSessionToken},
	} {
		if v.secret != nil {
			ctr = ctr.WithSecretVariable(v.name, v.secret)
		}
	}
	for _, f := range []struct {
		name, variable string
		secret         *dagger.Secret
	}{
		{"aws-config", "AWS_CONFIG_FILE", m.AWSConfig},
		{"aws-credentials", "AWS_SHARED_CREDENTIALS_FILE", m.AWSCredentials},
	} {
		if f.secret != nil {
			ctr = ctr.WithMountedSecret(secretDir+"/"+f.name, f.secret, dagger.ContainerWithMountedSecretOpts{Owner: nonroot}).
				WithEnvVariable(f.variable, secretDir+"/"+f.name)
		}
	}
	if m.AWSProfile != "" {
		ctr = ctr.WithEnvVariable("AWS_PROFILE", m.AWSProfile)
	}

	argv = append(argv, stringFlag("--context", m.KubeContext)...)
	argv = append(argv, stringFlag("--cluster-name", m.ClusterName)...)
	argv = append(argv, stringFlag("--region", m.Region)...)
	argv = append(argv, stringFlag("--bucket", m.Bucket)...)
	argv = append(argv, stringFlag("--issuer-url", m.IssuerURL)...)
	argv = append(argv, stringFlag("--aws-endpoint-url", m.AWSEndpointURL)...)
	if m.CABundle != nil {
		argv = append(argv, "--ca-bundle", inputDir+"/ca-bundle.pem")
	}
	argv = append(argv, stringFlag("--cluster-type", m.ClusterType)...)
	images := map[string]string{"--image": m.Image, "--webhook-image": m.WebhookImage, "--verify-image": m.VerifyImage}
	for _, flag := range imageFlags[cmd.name] {
		argv = append(argv, stringFlag(flag, images[flag])...)
	}
	argv = append(argv, stringFlag("--output", m.Format)...)
	argv = append(append(argv, cmd.flags...), cmd.args...)
	return ctr.
		WithEnvVariable(runIDVariable, time.Now().UTC().Format(time.RFC3339Nano)).
		WithExec(argv).
		Stdout(ctx)
}
