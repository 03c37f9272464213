// Package stsgate is a testcontainers-go module for irsa's strict STS gate: a container that sits in front of an AWS
// emulator (moto, LocalStack, floci) and checks every AssumeRoleWithWebIdentity the way AWS STS does, with AWS's
// error codes, while forwarding every other request to the emulator unchanged. Emulators accept any web identity
// token; a test suite that points STS at the gate fails where real AWS would.
//
//	gate, err := stsgate.Run(ctx, "ghcr.io/irsa-anywhere/sts-gate:v0.1.0",
//		stsgate.WithBackend("http://moto:5000"),           // the emulator, as the gate container reaches it
//		stsgate.WithIssuerCA(caPEM),                       // trusts your test issuer's HTTPS certificate
//		network.WithNetwork([]string{"sts-gate"}, nw),     // the emulator's network
//	)
//	testcontainers.CleanupContainer(t, gate)
//	endpoint, err := gate.URL(ctx)                        // AWS_ENDPOINT_URL_STS for the code under test
//
// The image is built without a daemon (`make gate-image` writes _output/sts-gate-image.tar; `docker load` it). Run
// follows testcontainers-go's own modules: the module's defaults first, the caller's options last (they win), the
// container returned even on error so it can be cleaned up, and readiness by polling the gate's health endpoint.
package stsgate

import (
	"bytes"
	"context"
	"fmt"
	"time"

	"github.com/testcontainers/testcontainers-go"
	"github.com/testcontainers/testcontainers-go/wait"

	gate "github.com/irsa-anywhere/irsa/pipeline/stsgate"
)

const (
	// Port is the port the gate listens on inside the container.
	Port = "4567/tcp"
	// issuerCAPath and backendCAPath are where WithIssuerCA and WithBackendCA put their bundles in the container.
	issuerCAPath  = "/etc/sts-gate/issuer-ca.pem"
	backendCAPath = "/etc/sts-gate/backend-ca.pem"
	// startupTimeout bounds the wait for the health endpoint: the gate itself is ready in milliseconds.
	startupTimeout = time.Minute
)

// Container is a running gate.
type Container struct {
	testcontainers.Container
}

// options are the gate's flags, set by Option values.
type options struct {
	backend, region           string
	issuerCA, backendCA       []byte
	iamCacheTTL, documentsTTL time.Duration
}

// Option sets a flag of the gate. It is a testcontainers.ContainerCustomizer, so it mixes with the generic options
// (networks, env, host config) in Run's arguments; Run reads it before building the request.
type Option func(*options) error

// Customize does nothing: Run applies Options itself, since they shape the command line as a whole.
func (o Option) Customize(*testcontainers.GenericContainerRequest) error { return nil }

// WithBackend is the emulator's endpoint as the gate container reaches it, such as http://moto:5000 on a shared
// network. Required.
func WithBackend(url string) Option {
	return func(o *options) error {
		if url == "" {
			return fmt.Errorf("sts gate: WithBackend: empty URL")
		}
		o.backend = url
		return nil
	}
}

// WithIssuerCA trusts a PEM CA bundle, besides the system roots, for fetching issuer documents: the CA of a test
// issuer. IAM trusts only well-known CAs on its own, so for an issuer behind this CA the gate, like STS, requires the
// top certificate of the issuer's served chain in the IAM OIDC provider's thumbprints.
func WithIssuerCA(pem []byte) Option {
	return func(o *options) error {
		if !bytes.Contains(pem, []byte("-----BEGIN CERTIFICATE-----")) {
			return fmt.Errorf("sts gate: WithIssuerCA: no PEM certificate")
		}
		o.issuerCA = pem
		return nil
	}
}

// WithBackendCA trusts a PEM CA bundle for an HTTPS backend.
func WithBackendCA(pem []byte) Option {
	return func(o *options) error {
		if !bytes.Contains(pem, []byte("-----BEGIN CERTIFICATE-----")) {
			return fmt.Errorf("sts gate: WithBackendCA: no PEM certificate")
		}
		o.backendCA = pem
		return nil
	}
}

// WithRegion is the region the gate signs its IAM reads to the backend with; default us-east-1.
func WithRegion(region string) Option {
	return func(o *options) error { o.region = region; return nil }
}

// Run starts the gate from img (an image built by `make gate-image`, pinned by the caller) and waits until it
// answers on its health endpoint. Module defaults (the exposed port, the command line from the Options, the wait
// strategy) come first and the caller's customizers after them, so the caller's win. The container is returned
// together with any error once it exists, so that testcontainers.CleanupContainer or TerminateContainer can remove
// a half-started one.
func Run(ctx context.Context, img string, opts ...testcontainers.ContainerCustomizer) (*Container, error) {
	o := options{region: "us-east-1"}
	for _, opt := range opts {
		if apply, ok := opt.(Option); ok {
			if err := apply(&o); err != nil {
				return nil, err
			}
		}
	}
	if o.backend == "" {
		return nil, fmt.Errorf("sts gate: no backend: pass stsgate.WithBackend(URL of the emulator as the container reaches it)")
	}
	cmd := []string{"--listen", "0.0.0.0:" + portNumber(), "--backend", o.backend, "--region", o.region}
	defaults := []testcontainers.ContainerCustomizer{
		testcontainers.WithExposedPorts(Port),
		testcontainers.WithWaitStrategy(wait.ForHTTP(gate.HealthPath).WithPort(Port).
			WithStartupTimeout(startupTimeout).WithPollInterval(100 * time.Millisecond)),
	}
	var files []testcontainers.ContainerFile
	if o.issuerCA != nil {
		files = append(files, testcontainers.ContainerFile{Reader: bytes.NewReader(o.issuerCA), ContainerFilePath: issuerCAPath, FileMode: 0o644})
		cmd = append(cmd, "--issuer-ca", issuerCAPath)
	}
	if o.backendCA != nil {
		files = append(files, testcontainers.ContainerFile{Reader: bytes.NewReader(o.backendCA), ContainerFilePath: backendCAPath, FileMode: 0o644})
		cmd = append(cmd, "--backend-ca", backendCAPath)
	}
	if len(files) > 0 {
		defaults = append(defaults, testcontainers.WithFiles(files...))
	}
	defaults = append(defaults, testcontainers.WithCmd(cmd...))

	ctr, err := testcontainers.Run(ctx, img, append(defaults, opts...)...)
	var c *Container
	if ctr != nil {
		c = &Container{Container: ctr}
	}
	if err != nil {
		return c, fmt.Errorf("run sts gate %s: %w", img, err)
	}
	return c, nil
}

// URL is the gate's URL on the host, such as http://127.0.0.1:32770: AWS_ENDPOINT_URL_STS for the code under
// test (everything else may go there too; the gate forwards it).
func (c *Container) URL(ctx context.Context) (string, error) {
	ep, err := c.PortEndpoint(ctx, Port, "http")
	if err != nil {
		return "", fmt.Errorf("sts gate endpoint: %w", err)
	}
	return ep, nil
}

func portNumber() string {
	p, _, _ := bytes.Cut([]byte(Port), []byte("/"))
	return string(p)
}

// The layout of the gate image the module runs, as `make gate-image` builds it: irsa's static binary on an empty
// base, run as the nonroot user, with `irsa sts-gate` as the entrypoint. An image of your own works if it has the
// same entrypoint (the module passes only flags).
const (
	ImageBinaryPath = "/usr/local/bin/irsa"
	ImageUser       = "65532:65532"
)

// ImageEntrypoint is the image's entrypoint.
var ImageEntrypoint = []string{ImageBinaryPath, "sts-gate"}
