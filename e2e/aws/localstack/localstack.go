// Package localstack runs the e2e AWS backends that live in containers, through testcontainers-go: LocalStack
// (S3, IAM, STS) and, as an alternative, moto's own server image. Both sit behind an HTTPS front on this machine,
// because an IAM OIDC issuer must be https: the front serves a certificate from a throwaway CA and forwards to the
// emulator, optionally through the strict STS gate, which checks AssumeRoleWithWebIdentity the way AWS does.
//
// The container's port is published on 127.0.0.1 only. With Options.Network (kind's Docker network, "kind"), the
// container joins that network and the front also listens on the network's gateway address, which is how pods in
// a kind cluster reach the backend (PodEndpoint).
//
// testcontainers-go reads its settings from the environment: DOCKER_HOST, TESTCONTAINERS_RYUK_DISABLED=true where
// Ryuk's image cannot be pulled, TESTCONTAINERS_HOST_OVERRIDE=127.0.0.1 where the daemon's gateway guess is wrong.
// hack/docker/start.sh prints all three for its private daemon.
package localstack

import (
	"context"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"

	"github.com/testcontainers/testcontainers-go"
	tclocalstack "github.com/testcontainers/testcontainers-go/modules/localstack"

	"github.com/irsa-anywhere/irsa/e2e/framework"
	"github.com/irsa-anywhere/irsa/internal/testpki"
)

const (
	// DefaultLocalStackImage is the last LocalStack community build that starts without an auth token (newer
	// images need LOCALSTACK_AUTH_TOKEN).
	DefaultLocalStackImage = "localstack/localstack:community-archive"
	// DefaultMotoImage is moto's server image, pinned by digest.
	DefaultMotoImage = "motoserver/moto:5.2.2@sha256:d8ae5edc2bf080e7e4c13f9bd4b29b53ac3b4427e92956318db3dbe23ec43eb7"
	// DefaultRegion is the region the emulators sign and answer for.
	DefaultRegion = "us-east-1"
	// DefaultAlias is the container's name on Options.Network.
	DefaultAlias = "aws"
	// AccessKeyID and SecretAccessKey are the static credentials the emulators accept.
	AccessKeyID     = "test"
	SecretAccessKey = "test"
	// AuthTokenEnv is passed through to LocalStack images that need an auth token.
	AuthTokenEnv = "LOCALSTACK_AUTH_TOKEN"
)

// GateFunc builds the handler that serves the front: given the emulator's plain-HTTP endpoint on loopback, it
// returns the strict STS gate (pipeline/stsgate) forwarding to it. IssuerCA trusts the front's certificate, which
// also serves the issuer documents the gate fetches.
type GateFunc func(ctx context.Context, t GateTarget) (http.Handler, error)

// GateTarget is what a GateFunc needs to put a gate in front of the emulator.
type GateTarget struct {
	// Backend is the emulator's endpoint, such as http://127.0.0.1:32768.
	Backend string
	// Region is the region the backend answers for.
	Region string
	// IssuerCA trusts the front's certificate (issuer URLs point at the front).
	IssuerCA *x509.CertPool
}

// Options configure a container backend. The zero value runs the default image on loopback only.
type Options struct {
	// Image overrides the pinned default image.
	Image string
	// Region defaults to DefaultRegion.
	Region string
	// Network is a Docker network to join (created when missing, removed on Close only if created here); pods of a
	// kind cluster on the same network reach the backend through PodEndpoint. Empty: loopback only.
	Network string
	// Alias is the container's DNS name on Network; empty means DefaultAlias.
	Alias string
	// AuthToken is LocalStack's auth token; empty means $LOCALSTACK_AUTH_TOKEN (if set).
	AuthToken string
	// Gate, when set, serves the front instead of a plain reverse proxy.
	Gate GateFunc
	// Dir receives the CA file; empty means a new temporary directory, removed on Close.
	Dir string
}

func (o Options) withDefaults(image string) Options {
	if o.Image == "" {
		o.Image = image
	}
	if o.Region == "" {
		o.Region = DefaultRegion
	}
	if o.Alias == "" {
		o.Alias = DefaultAlias
	}
	if o.AuthToken == "" {
		o.AuthToken = os.Getenv(AuthTokenEnv)
	}
	return o
}

// emulator says how to run one kind of emulator image and how to tell it is ready.
type emulator struct {
	name string
	// port is the container port the emulator serves plain HTTP on, such as "4566/tcp".
	port string
	// health is an HTTP path that answers 200 once the emulator serves requests.
	health string
	// env is the container environment for o.
	env func(o Options) map[string]string
	run func(ctx context.Context, image string, opts ...testcontainers.ContainerCustomizer) (testcontainers.Container, error)
}

var localStack = emulator{
	name:   "localstack",
	port:   "4566/tcp",
	health: "/_localstack/health",
	env: func(o Options) map[string]string {
		env := map[string]string{
			"SERVICES":              "s3,iam,sts",
			"EAGER_SERVICE_LOADING": "1",
			"AWS_DEFAULT_REGION":    o.Region,
		}
		if o.AuthToken != "" {
			env[AuthTokenEnv] = o.AuthToken
		}
		return env
	},
	run: func(ctx context.Context, image string, opts ...testcontainers.ContainerCustomizer) (testcontainers.Container, error) {
		c, err := tclocalstack.Run(ctx, image, opts...)
		if c == nil {
			return nil, err
		}
		return c, err
	},
}

var moto = emulator{
	name:   "moto",
	port:   "5000/tcp",
	health: "/moto-api/",
	env: func(o Options) map[string]string {
		// Managed policies (arn:aws:iam::aws:policy/...) are attached by the scenario.
		return map[string]string{"MOTO_IAM_LOAD_MANAGED_POLICIES": "true", "AWS_DEFAULT_REGION": o.Region}
	},
	run: func(ctx context.Context, image string, opts ...testcontainers.ContainerCustomizer) (testcontainers.Container, error) {
		c, err := testcontainers.Run(ctx, image, opts...)
		if c == nil {
			return nil, err
		}
		return c, err
	},
}

// StartLocalStack runs LocalStack (S3, IAM, STS) behind the HTTPS front. The caller must Close the backend.
func StartLocalStack(ctx context.Context, o Options) (*Backend, error) {
	return start(ctx, localStack, o.withDefaults(DefaultLocalStackImage))
}

// StartMoto runs moto's server image behind the HTTPS front. The caller must Close the backend.
func StartMoto(ctx context.Context, o Options) (*Backend, error) {
	return start(ctx, moto, o.withDefaults(DefaultMotoImage))
}

// Backend is a running container backend. It implements framework.AWS.
type Backend struct {
	name        string
	endpoint    string
	podEndpoint string
	emulatorURL string
	caFile      string
	caPool      *x509.CertPool
	region      string
	container   testcontainers.Container
	front       *front
	network     *dockerNetwork
	tempDir     string
}

var _ framework.AWS = (*Backend)(nil)

// Endpoint is the HTTPS front on loopback.
func (b *Backend) Endpoint() string { return b.endpoint }

// PodEndpoint is the HTTPS front on the Docker network's gateway; empty without Options.Network.
func (b *Backend) PodEndpoint() string { return b.podEndpoint }

// IssuerURL is the bucket's path-style URL on the front.
func (b *Backend) IssuerURL(bucket string) string { return b.endpoint + "/" + bucket }

// CAFile is the PEM file of the CA that signed the front's certificate.
func (b *Backend) CAFile() string { return b.caFile }

// CAPool holds the same CA as CAFile.
func (b *Backend) CAPool() *x509.CertPool { return b.caPool }

// Region is the region the emulator answers for.
func (b *Backend) Region() string { return b.region }

// EmulatorURL is the emulator's own plain-HTTP endpoint on loopback, behind the front.
func (b *Backend) EmulatorURL() string { return b.emulatorURL }

// Container is the emulator's container.
func (b *Backend) Container() testcontainers.Container { return b.container }

// Env is the environment for the irsa CLI and AWS SDK clients on this machine.
func (b *Backend) Env() []string {
	return []string{
		"AWS_ACCESS_KEY_ID=" + AccessKeyID,
		"AWS_SECRET_ACCESS_KEY=" + SecretAccessKey,
		"AWS_REGION=" + b.region,
		"AWS_DEFAULT_REGION=" + b.region,
		"AWS_CA_BUNDLE=" + b.caFile,
		"AWS_ENDPOINT_URL=" + b.endpoint,
		// The SDK ignores AWS_ENDPOINT_URL for the web identity STS call; the service-specific names are used.
		"AWS_ENDPOINT_URL_STS=" + b.endpoint,
		"AWS_ENDPOINT_URL_S3=" + b.endpoint,
		"AWS_ENDPOINT_URL_IAM=" + b.endpoint,
	}
}

// Close stops the front and the container, and removes the network and directory it created. It is safe on a
// partly started backend and when called again.
func (b *Backend) Close(ctx context.Context) error {
	var errs []error
	defer func() { b.front, b.container, b.network, b.tempDir = nil, nil, nil, "" }()
	if b.front != nil {
		if err := b.front.close(ctx); err != nil {
			errs = append(errs, err)
		}
	}
	if b.container != nil {
		if err := testcontainers.TerminateContainer(b.container, testcontainers.StopContext(ctx)); err != nil {
			errs = append(errs, fmt.Errorf("terminate %s container: %w", b.name, err))
		}
	}
	if b.network != nil {
		if err := b.network.close(ctx); err != nil {
			errs = append(errs, err)
		}
	}
	if b.tempDir != "" {
		if err := os.RemoveAll(b.tempDir); err != nil {
			errs = append(errs, fmt.Errorf("remove %s: %w", b.tempDir, err))
		}
	}
	return errors.Join(errs...)
}

func start(ctx context.Context, e emulator, o Options) (_ *Backend, err error) {
	b := &Backend{name: e.name, region: o.Region}
	// Whatever started is stopped again when a later step fails.
	defer func() {
		if err != nil {
			err = errors.Join(err, b.Close(context.WithoutCancel(ctx)))
		}
	}()

	dir := o.Dir
	if dir == "" {
		if dir, err = os.MkdirTemp("", "irsa-e2e-"+e.name+"-"); err != nil {
			return nil, fmt.Errorf("create directory for %s CA: %w", e.name, err)
		}
		b.tempDir = dir
	}

	var gateway string
	if o.Network != "" {
		if b.network, err = ensureNetwork(ctx, o.Network); err != nil {
			return nil, err
		}
		gateway = b.network.gateway
	}

	if b.container, err = e.run(ctx, o.Image, containerOptions(e, o)...); err != nil {
		return nil, fmt.Errorf("run %s image %q: %w", e.name, o.Image, err)
	}
	port, err := b.container.MappedPort(ctx, e.port)
	if err != nil {
		return nil, fmt.Errorf("%s container port %s: %w", e.name, e.port, err)
	}
	b.emulatorURL = "http://" + loopback + ":" + port.Port()

	hosts := []string{loopback, "localhost"}
	if gateway != "" {
		hosts = append(hosts, gateway)
	}
	ca, err := testpki.NewCA("irsa e2e AWS emulator CA")
	if err != nil {
		return nil, err
	}
	certPEM, keyPEM, err := ca.Issue(pkix.Name{CommonName: "irsa e2e AWS emulator"}, hosts)
	if err != nil {
		return nil, err
	}
	b.caFile = filepath.Join(dir, e.name+"-ca.pem")
	if err := os.WriteFile(b.caFile, ca.PEM, 0o644); err != nil {
		return nil, fmt.Errorf("write %s: %w", b.caFile, err)
	}
	b.caPool = x509.NewCertPool()
	b.caPool.AppendCertsFromPEM(ca.PEM)

	var handler http.Handler
	if o.Gate != nil {
		if handler, err = o.Gate(ctx, GateTarget{Backend: b.emulatorURL, Region: o.Region, IssuerCA: b.caPool}); err != nil {
			return nil, fmt.Errorf("sts gate in front of %s %s: %w", e.name, b.emulatorURL, err)
		}
	} else {
		handler = reverseProxy(b.emulatorURL)
	}
	addrs := []string{loopback + ":0"}
	if gateway != "" {
		addrs = append(addrs, gateway+":0")
	}
	if b.front, err = serveFront(handler, certPEM, keyPEM, addrs); err != nil {
		return nil, err
	}
	b.endpoint = "https://" + b.front.addrs[0]
	if gateway != "" {
		b.podEndpoint = "https://" + b.front.addrs[1]
	}
	return b, nil
}

// loopback is where container ports are published and the front listens for this machine.
const loopback = "127.0.0.1"
