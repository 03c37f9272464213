// IAM Roles for Service Accounts (IRSA) for self-managed Kubernetes clusters, as a Dagger module.
//
// Build and package the irsa binary, then run its commands (plan, setup, status, verify, doctor,
// bind, unbind, teardown) in a container against your cluster and AWS account. Credentials are
// Dagger secrets: the kubeconfig and AWS config files are mounted as secret files and AWS keys are
// secret variables, so they never land in an image layer, an argument or the cache.
//
// Example: dagger call setup --kubeconfig=file:$HOME/.kube/config
// --aws-access-key-id=env:AWS_ACCESS_KEY_ID --aws-secret-access-key=env:AWS_SECRET_ACCESS_KEY
// --region=us-east-1 --cluster-name=dev --bucket=dev-irsa-issuer
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
	// inputDir holds the non-secret files given to one run (irsa.yaml, inline policies).
	inputDir = "/etc/irsa"
	// kubeAPIAlias is the host name under which a tunnelled Kubernetes API server is reachable.
	kubeAPIAlias = "kube-api"
	// motoVersion is the AWS emulator the Go tests start (internal/motoserver).
	motoVersion = "5.2.1"
	// runIDVariable changes on every run of a command with side effects, so that Dagger never
	// answers it from the cache of an earlier identical run.
	runIDVariable = "IRSA_DAGGER_RUN_ID"
)

// Irsa builds, tests and runs the irsa command-line tool.
type Irsa struct {
	// The irsa repository.
	Source *dagger.Directory
}

// New returns the module for an irsa repository.
func New(
	// The irsa repository; defaults to the repository this module belongs to.
	// +defaultPath="/"
	// +ignore=[".git", "bin", "_output", "artifacts"]
	source *dagger.Directory,
) *Irsa {
	return &Irsa{Source: source}
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

// Plan prints what setup would change, without changing anything.
// +cache="never"
func (m *Irsa) Plan(
	ctx context.Context,
	// Kubeconfig of the cluster; a secret because it carries credentials.
	// +optional
	kubeconfig *dagger.Secret,
	// Kubeconfig context to use (--context).
	// +optional
	kubeContext string,
	// Tunnel to the cluster's API server, such as tcp://localhost:6443 for a kind cluster; it is
	// reachable as kube-api:<port>, so the kubeconfig must name that server.
	// +optional
	kubeAPI *dagger.Service,
	// AWS access key ID.
	// +optional
	awsAccessKeyID *dagger.Secret,
	// AWS secret access key.
	// +optional
	awsSecretAccessKey *dagger.Secret,
	// AWS session token, for temporary credentials.
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
	// AWS region (--region).
	// +optional
	region string,
	// Cluster name, used in AWS resource names and tags (--cluster-name).
	// +optional
	clusterName string,
	// S3 bucket that serves the issuer's discovery document and keys (--bucket).
	// +optional
	bucket string,
	// Issuer URL, when it is not the bucket's own URL (--issuer-url).
	// +optional
	issuerURL string,
	// AWS endpoint URL, for an emulator such as moto or LocalStack (--aws-endpoint-url).
	// +optional
	awsEndpointURL string,
	// Cluster type: kubeadm, kind, eks-anywhere or external (--cluster-type).
	// +optional
	clusterType string,
	// irsa.yaml configuration file (--config).
	// +optional
	config *dagger.File,
	// Output format: text or json (-o).
	// +optional
	format string,
	// Only these stages: keys, issuer, provider, apiserver, webhook, bindings, verify (--only).
	// +optional
	only []string,
) (string, error) {
	return m.run(ctx, runOpts{
		kubeconfig: kubeconfig, kubeContext: kubeContext, kubeAPI: kubeAPI,
		awsAccessKeyID: awsAccessKeyID, awsSecretAccessKey: awsSecretAccessKey, awsSessionToken: awsSessionToken,
		awsConfig: awsConfig, awsCredentials: awsCredentials, awsProfile: awsProfile,
		region: region, clusterName: clusterName, bucket: bucket, issuerURL: issuerURL,
		awsEndpointURL: awsEndpointURL, clusterType: clusterType, config: config, format: format, only: only,
	}, "plan")
}

// Setup applies every stage, or the --only ones, and prints the irsa report.
// +cache="never"
func (m *Irsa) Setup(
	ctx context.Context,
	// Kubeconfig of the cluster; a secret because it carries credentials.
	// +optional
	kubeconfig *dagger.Secret,
	// Kubeconfig context to use (--context).
	// +optional
	kubeContext string,
	// Tunnel to the cluster's API server, such as tcp://localhost:6443 for a kind cluster; it is
	// reachable as kube-api:<port>, so the kubeconfig must name that server.
	// +optional
	kubeAPI *dagger.Service,
	// AWS access key ID.
	// +optional
	awsAccessKeyID *dagger.Secret,
	// AWS secret access key.
	// +optional
	awsSecretAccessKey *dagger.Secret,
	// AWS session token, for temporary credentials.
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
	// AWS region (--region).
	// +optional
	region string,
	// Cluster name, used in AWS resource names and tags (--cluster-name).
	// +optional
	clusterName string,
	// S3 bucket that serves the issuer's discovery document and keys (--bucket).
	// +optional
	bucket string,
	// Issuer URL, when it is not the bucket's own URL (--issuer-url).
	// +optional
	issuerURL string,
	// AWS endpoint URL, for an emulator such as moto or LocalStack (--aws-endpoint-url).
	// +optional
	awsEndpointURL string,
	// Cluster type: kubeadm, kind, eks-anywhere or external (--cluster-type).
	// +optional
	clusterType string,
	// irsa.yaml configuration file (--config).
	// +optional
	config *dagger.File,
	// Output format: text or json (-o).
	// +optional
	format string,
	// Only these stages: keys, issuer, provider, apiserver, webhook, bindings, verify (--only).
	// +optional
	only []string,
) (string, error) {
	return m.run(ctx, runOpts{
		kubeconfig: kubeconfig, kubeContext: kubeContext, kubeAPI: kubeAPI,
		awsAccessKeyID: awsAccessKeyID, awsSecretAccessKey: awsSecretAccessKey, awsSessionToken: awsSessionToken,
		awsConfig: awsConfig, awsCredentials: awsCredentials, awsProfile: awsProfile,
		region: region, clusterName: clusterName, bucket: bucket, issuerURL: issuerURL,
		awsEndpointURL: awsEndpointURL, clusterType: clusterType, config: config, format: format, only: only,
	}, "apply")
}

// Status prints the state of every stage, or the --only ones.
// +cache="never"
func (m *Irsa) Status(
	ctx context.Context,
	// Kubeconfig of the cluster; a secret because it carries credentials.
	// +optional
	kubeconfig *dagger.Secret,
	// Kubeconfig context to use (--context).
	// +optional
	kubeContext string,
	// Tunnel to the cluster's API server, such as tcp://localhost:6443 for a kind cluster; it is
	// reachable as kube-api:<port>, so the kubeconfig must name that server.
	// +optional
	kubeAPI *dagger.Service,
	// AWS access key ID.
	// +optional
	awsAccessKeyID *dagger.Secret,
	// AWS secret access key.
	// +optional
	awsSecretAccessKey *dagger.Secret,
	// AWS session token, for temporary credentials.
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
	// AWS region (--region).
	// +optional
	region string,
	// Cluster name, used in AWS resource names and tags (--cluster-name).
	// +optional
	clusterName string,
	// S3 bucket that serves the issuer's discovery document and keys (--bucket).
	// +optional
	bucket string,
	// Issuer URL, when it is not the bucket's own URL (--issuer-url).
	// +optional
	issuerURL string,
	// AWS endpoint URL, for an emulator such as moto or LocalStack (--aws-endpoint-url).
	// +optional
	awsEndpointURL string,
	// Cluster type: kubeadm, kind, eks-anywhere or external (--cluster-type).
	// +optional
	clusterType string,
	// irsa.yaml configuration file (--config).
	// +optional
	config *dagger.File,
	// Output format: text or json (-o).
	// +optional
	format string,
	// Only these stages: keys, issuer, provider, apiserver, webhook, bindings, verify (--only).
	// +optional
	only []string,
) (string, error) {
	return m.run(ctx, runOpts{
		kubeconfig: kubeconfig, kubeContext: kubeContext, kubeAPI: kubeAPI,
		awsAccessKeyID: awsAccessKeyID, awsSecretAccessKey: awsSecretAccessKey, awsSessionToken: awsSessionToken,
		awsConfig: awsConfig, awsCredentials: awsCredentials, awsProfile: awsProfile,
		region: region, clusterName: clusterName, bucket: bucket, issuerURL: issuerURL,
		awsEndpointURL: awsEndpointURL, clusterType: clusterType, config: config, format: format, only: only,
	}, "status")
}

// Verify proves IRSA works end to end: a Job assumes a role with its projected token.
// +cache="never"
func (m *Irsa) Verify(
	ctx context.Context,
	// Kubeconfig of the cluster; a secret because it carries credentials.
	// +optional
	kubeconfig *dagger.Secret,
	// Kubeconfig context to use (--context).
	// +optional
	kubeContext string,
	// Tunnel to the cluster's API server, such as tcp://localhost:6443 for a kind cluster; it is
	// reachable as kube-api:<port>, so the kubeconfig must name that server.
	// +optional
	kubeAPI *dagger.Service,
	// AWS access key ID.
	// +optional
	awsAccessKeyID *dagger.Secret,
	// AWS secret access key.
	// +optional
	awsSecretAccessKey *dagger.Secret,
	// AWS session token, for temporary credentials.
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
	// AWS region (--region).
	// +optional
	region string,
	// Cluster name, used in AWS resource names and tags (--cluster-name).
	// +optional
	clusterName string,
	// S3 bucket that serves the issuer's discovery document and keys (--bucket).
	// +optional
	bucket string,
	// Issuer URL, when it is not the bucket's own URL (--issuer-url).
	// +optional
	issuerURL string,
	// AWS endpoint URL, for an emulator such as moto or LocalStack (--aws-endpoint-url).
	// +optional
	awsEndpointURL string,
	// Cluster type: kubeadm, kind, eks-anywhere or external (--cluster-type).
	// +optional
	clusterType string,
	// irsa.yaml configuration file (--config).
	// +optional
	config *dagger.File,
	// Output format: text or json (-o).
	// +optional
	format string,
	// Keep the verification Job, role and ServiceAccount for inspection (--keep).
	// +optional
	keep bool,
) (string, error) {
	args := []string{"verify"}
	if keep {
		args = append(args, "--keep")
	}
	return m.run(ctx, runOpts{
		kubeconfig: kubeconfig, kubeContext: kubeContext, kubeAPI: kubeAPI,
		awsAccessKeyID: awsAccessKeyID, awsSecretAccessKey: awsSecretAccessKey, awsSessionToken: awsSessionToken,
		awsConfig: awsConfig, awsCredentials: awsCredentials, awsProfile: awsProfile,
		region: region, clusterName: clusterName, bucket: bucket, issuerURL: issuerURL,
		awsEndpointURL: awsEndpointURL, clusterType: clusterType, config: config, format: format,
	}, args...)
}

// Doctor diagnoses the IRSA setup, or one ServiceAccount's path to its role.
// +cache="never"
func (m *Irsa) Doctor(
	ctx context.Context,
	// Kubeconfig of the cluster; a secret because it carries credentials.
	// +optional
	kubeconfig *dagger.Secret,
	// Kubeconfig context to use (--context).
	// +optional
	kubeContext string,
	// Tunnel to the cluster's API server, such as tcp://localhost:6443 for a kind cluster; it is
	// reachable as kube-api:<port>, so the kubeconfig must name that server.
	// +optional
	kubeAPI *dagger.Service,
	// AWS access key ID.
	// +optional
	awsAccessKeyID *dagger.Secret,
	// AWS secret access key.
	// +optional
	awsSecretAccessKey *dagger.Secret,
	// AWS session token, for temporary credentials.
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
	// AWS region (--region).
	// +optional
	region string,
	// Cluster name, used in AWS resource names and tags (--cluster-name).
	// +optional
	clusterName string,
	// S3 bucket that serves the issuer's discovery document and keys (--bucket).
	// +optional
	bucket string,
	// Issuer URL, when it is not the bucket's own URL (--issuer-url).
	// +optional
	issuerURL string,
	// AWS endpoint URL, for an emulator such as moto or LocalStack (--aws-endpoint-url).
	// +optional
	awsEndpointURL string,
	// Cluster type: kubeadm, kind, eks-anywhere or external (--cluster-type).
	// +optional
	clusterType string,
	// irsa.yaml configuration file (--config).
	// +optional
	config *dagger.File,
	// Output format: text or json (-o).
	// +optional
	format string,
	// ServiceAccount to diagnose, as NAMESPACE/NAME.
	// +optional
	serviceAccount string,
	// Also assume the role with a freshly minted token (--live).
	// +optional
	live bool,
) (string, error) {
	args := []string{"doctor"}
	if serviceAccount != "" {
		args = append(args, serviceAccount)
	}
	if live {
		args = append(args, "--live")
	}
	return m.run(ctx, runOpts{
		kubeconfig: kubeconfig, kubeContext: kubeContext, kubeAPI: kubeAPI,
		awsAccessKeyID: awsAccessKeyID, awsSecretAccessKey: awsSecretAccessKey, awsSessionToken: awsSessionToken,
		awsConfig: awsConfig, awsCredentials: awsCredentials, awsProfile: awsProfile,
		region: region, clusterName: clusterName, bucket: bucket, issuerURL: issuerURL,
		awsEndpointURL: awsEndpointURL, clusterType: clusterType, config: config, format: format,
	}, args...)
}

// Bind gives a ServiceAccount an IAM role with the given policies and annotates it.
// +cache="never"
func (m *Irsa) Bind(
	ctx context.Context,
	// ServiceAccount to bind, as NAMESPACE/NAME.
	serviceAccount string,
	// Kubeconfig of the cluster; a secret because it carries credentials.
	// +optional
	kubeconfig *dagger.Secret,
	// Kubeconfig context to use (--context).
	// +optional
	kubeContext string,
	// Tunnel to the cluster's API server, such as tcp://localhost:6443 for a kind cluster; it is
	// reachable as kube-api:<port>, so the kubeconfig must name that server.
	// +optional
	kubeAPI *dagger.Service,
	// AWS access key ID.
	// +optional
	awsAccessKeyID *dagger.Secret,
	// AWS secret access key.
	// +optional
	awsSecretAccessKey *dagger.Secret,
	// AWS session token, for temporary credentials.
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
	// AWS region (--region).
	// +optional
	region string,
	// Cluster name, used in AWS resource names and tags (--cluster-name).
	// +optional
	clusterName string,
	// S3 bucket that serves the issuer's discovery document and keys (--bucket).
	// +optional
	bucket string,
	// Issuer URL, when it is not the bucket's own URL (--issuer-url).
	// +optional
	issuerURL string,
	// AWS endpoint URL, for an emulator such as moto or LocalStack (--aws-endpoint-url).
	// +optional
	awsEndpointURL string,
	// Cluster type: kubeadm, kind, eks-anywhere or external (--cluster-type).
	// +optional
	clusterType string,
	// irsa.yaml configuration file (--config).
	// +optional
	config *dagger.File,
	// Output format: text or json (-o).
	// +optional
	format string,
	// ARNs of managed policies to attach to the role (--policy-arn, repeatable).
	// +optional
	policyARN []string,
	// JSON policy document to put on the role as an inline policy (--inline-policy).
	// +optional
	inlinePolicy *dagger.File,
	// Name of the IAM role; irsa derives one from the cluster and ServiceAccount when empty (--role-name).
	// +optional
	roleName string,
) (string, error) {
	args := []string{"bind", serviceAccount}
	for _, arn := range policyARN {
		args = append(args, "--policy-arn", arn)
	}
	if inlinePolicy != nil {
		args = append(args, "--inline-policy", inputDir+"/inline-policy.json")
	}
	if roleName != "" {
		args = append(args, "--role-name", roleName)
	}
	return m.run(ctx, runOpts{
		kubeconfig: kubeconfig, kubeContext: kubeContext, kubeAPI: kubeAPI,
		awsAccessKeyID: awsAccessKeyID, awsSecretAccessKey: awsSecretAccessKey, awsSessionToken: awsSessionToken,
		awsConfig: awsConfig, awsCredentials: awsCredentials, awsProfile: awsProfile,
		region: region, clusterName: clusterName, bucket: bucket, issuerURL: issuerURL,
		awsEndpointURL: awsEndpointURL, clusterType: clusterType, config: config, format: format,
		inlinePolicy: inlinePolicy,
	}, args...)
}

// Unbind removes the IAM role irsa made for a ServiceAccount and its annotation.
// +cache="never"
func (m *Irsa) Unbind(
	ctx context.Context,
	// ServiceAccount to unbind, as NAMESPACE/NAME.
	serviceAccount string,
	// Kubeconfig of the cluster; a secret because it carries credentials.
	// +optional
	kubeconfig *dagger.Secret,
	// Kubeconfig context to use (--context).
	// +optional
	kubeContext string,
	// Tunnel to the cluster's API server, such as tcp://localhost:6443 for a kind cluster; it is
	// reachable as kube-api:<port>, so the kubeconfig must name that server.
	// +optional
	kubeAPI *dagger.Service,
	// AWS access key ID.
	// +optional
	awsAccessKeyID *dagger.Secret,
	// AWS secret access key.
	// +optional
	awsSecretAccessKey *dagger.Secret,
	// AWS session token, for temporary credentials.
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
	// AWS region (--region).
	// +optional
	region string,
	// Cluster name, used in AWS resource names and tags (--cluster-name).
	// +optional
	clusterName string,
	// S3 bucket that serves the issuer's discovery document and keys (--bucket).
	// +optional
	bucket string,
	// Issuer URL, when it is not the bucket's own URL (--issuer-url).
	// +optional
	issuerURL string,
	// AWS endpoint URL, for an emulator such as moto or LocalStack (--aws-endpoint-url).
	// +optional
	awsEndpointURL string,
	// Cluster type: kubeadm, kind, eks-anywhere or external (--cluster-type).
	// +optional
	clusterType string,
	// irsa.yaml configuration file (--config).
	// +optional
	config *dagger.File,
	// Output format: text or json (-o).
	// +optional
	format string,
) (string, error) {
	return m.run(ctx, runOpts{
		kubeconfig: kubeconfig, kubeContext: kubeContext, kubeAPI: kubeAPI,
		awsAccessKeyID: awsAccessKeyID, awsSecretAccessKey: awsSecretAccessKey, awsSessionToken: awsSessionToken,
		awsConfig: awsConfig, awsCredentials: awsCredentials, awsProfile: awsProfile,
		region: region, clusterName: clusterName, bucket: bucket, issuerURL: issuerURL,
		awsEndpointURL: awsEndpointURL, clusterType: clusterType, config: config, format: format,
	}, "unbind", serviceAccount)
}

// Teardown deletes everything irsa created, found by its ownership tags and labels, for every
// stage or the --only ones.
// +cache="never"
func (m *Irsa) Teardown(
	ctx context.Context,
	// Kubeconfig of the cluster; a secret because it carries credentials.
	// +optional
	kubeconfig *dagger.Secret,
	// Kubeconfig context to use (--context).
	// +optional
	kubeContext string,
	// Tunnel to the cluster's API server, such as tcp://localhost:6443 for a kind cluster; it is
	// reachable as kube-api:<port>, so the kubeconfig must name that server.
	// +optional
	kubeAPI *dagger.Service,
	// AWS access key ID.
	// +optional
	awsAccessKeyID *dagger.Secret,
	// AWS secret access key.
	// +optional
	awsSecretAccessKey *dagger.Secret,
	// AWS session token, for temporary credentials.
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
	// AWS region (--region).
	// +optional
	region string,
	// Cluster name, used in AWS resource names and tags (--cluster-name).
	// +optional
	clusterName string,
	// S3 bucket that serves the issuer's discovery document and keys (--bucket).
	// +optional
	bucket string,
	// Issuer URL, when it is not the bucket's own URL (--issuer-url).
	// +optional
	issuerURL string,
	// AWS endpoint URL, for an emulator such as moto or LocalStack (--aws-endpoint-url).
	// +optional
	awsEndpointURL string,
	// Cluster type: kubeadm, kind, eks-anywhere or external (--cluster-type).
	// +optional
	clusterType string,
	// irsa.yaml configuration file (--config).
	// +optional
	config *dagger.File,
	// Output format: text or json (-o).
	// +optional
	format string,
	// Only these stages: keys, issuer, provider, apiserver, webhook, bindings, verify (--only).
	// +optional
	only []string,
) (string, error) {
	return m.run(ctx, runOpts{
		kubeconfig: kubeconfig, kubeContext: kubeContext, kubeAPI: kubeAPI,
		awsAccessKeyID: awsAccessKeyID, awsSecretAccessKey: awsSecretAccessKey, awsSessionToken: awsSessionToken,
		awsConfig: awsConfig, awsCredentials: awsCredentials, awsProfile: awsProfile,
		region: region, clusterName: clusterName, bucket: bucket, issuerURL: issuerURL,
		awsEndpointURL: awsEndpointURL, clusterType: clusterType, config: config, format: format, only: only,
	}, "teardown")
}

// runOpts is what every command that talks to a cluster and to AWS is given.
type runOpts struct {
	kubeconfig     *dagger.Secret
	kubeContext    string
	kubeAPI        *dagger.Service
	awsAccessKeyID *dagger.Secret

	awsSecretAccessKey *dagger.Secret
	awsSessionToken    *dagger.Secret
	awsConfig          *dagger.Secret
	awsCredentials     *dagger.Secret
	awsProfile         string

	region         string
	clusterName    string
	bucket         string
	issuerURL      string
	awsEndpointURL string
	clusterType    string
	config         *dagger.File
	format         string
	only           []string
	inlinePolicy   *dagger.File
}

// run executes irsa with the global flags from o followed by command, in the irsa image, and
// returns its standard output (the report). Secrets reach the process only as secret mounts and
// secret variables.
func (m *Irsa) run(ctx context.Context, o runOpts, command ...string) (string, error) {
	ctr := m.Container()
	argv := []string{binPath}
	if o.config != nil {
		ctr = ctr.WithMountedFile(inputDir+"/irsa.yaml", o.config, dagger.ContainerWithMountedFileOpts{Owner: nonroot})
		argv = append(argv, "--config", inputDir+"/irsa.yaml")
	}
	if o.kubeconfig != nil {
		ctr = ctr.WithMountedSecret(secretDir+"/kubeconfig", o.kubeconfig, dagger.ContainerWithMountedSecretOpts{Owner: nonroot})
		argv = append(argv, "--kubeconfig", secretDir+"/kubeconfig")
	}
	if o.kubeContext != "" {
		argv = append(argv, "--context", o.kubeContext)
	}
	if o.kubeAPI != nil {
		ctr = ctr.WithServiceBinding(kubeAPIAlias, o.kubeAPI)
	}
	if o.awsAccessKeyID != nil {
		ctr = ctr.WithSecretVariable("AWS_ACCESS_KEY_ID", o.awsAccessKeyID)
	}
	if o.awsSecretAccessKey != nil {
		ctr = ctr.WithSecretVariable("AWS_SECRET_ACCESS_KEY", o.awsSecretAccessKey)
	}
	if o.awsSessionToken != nil {
		ctr = ctr.WithSecretVariable("AWS_SESSION_TOKEN", o.awsSessionToken)
	}
	if o.awsConfig != nil {
		ctr = ctr.WithMountedSecret(secretDir+"/aws-config", o.awsConfig, dagger.ContainerWithMountedSecretOpts{Owner: nonroot}).
			WithEnvVariable("AWS_CONFIG_FILE", secretDir+"/aws-config")
	}
	if o.awsCredentials != nil {
		ctr = ctr.WithMountedSecret(secretDir+"/aws-credentials", o.awsCredentials, dagger.ContainerWithMountedSecretOpts{Owner: nonroot}).
			WithEnvVariable("AWS_SHARED_CREDENTIALS_FILE", secretDir+"/aws-credentials")
	}
	if o.awsProfile != "" {
		ctr = ctr.WithEnvVariable("AWS_PROFILE", o.awsProfile)
	}
	if o.inlinePolicy != nil {
		ctr = ctr.WithMountedFile(inputDir+"/inline-policy.json", o.inlinePolicy, dagger.ContainerWithMountedFileOpts{Owner: nonroot})
	}
	for _, flag := range []struct{ name, value string }{
		{"--cluster-name", o.clusterName},
		{"--region", o.region},
		{"--bucket", o.bucket},
		{"--issuer-url", o.issuerURL},
		{"--aws-endpoint-url", o.awsEndpointURL},
		{"--cluster-type", o.clusterType},
		{"-o", o.format},
		{"--only", strings.Join(o.only, ",")},
	} {
		if flag.value != "" {
			argv = append(argv, flag.name, flag.value)
		}
	}
	argv = append(argv, command...)
	return ctr.
		WithEnvVariable(runIDVariable, time.Now().UTC().Format(time.RFC3339Nano)).
		WithExec(argv).
		Stdout(ctx)
}
