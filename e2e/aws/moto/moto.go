// Package moto is the e2e harness's emulated AWS: a real moto_server over HTTPS with a test CA, placed where both
// the test machine (irsa CLI, tests) and the cluster's pods reach it. For the host cluster it runs in a network
// namespace of its own (Options.Sandbox), started before the cluster, which links its node to it
// (host.PeerOf); or inside an existing namespace such as the node's (Options.NetNSPath). Either way no traffic
// leaves this machine's sandboxes.
package moto

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strconv"
	"time"

	"github.com/irsa-anywhere/irsa/e2e/framework"
	"github.com/irsa-anywhere/irsa/internal/cloudfrontedge"
	"github.com/irsa-anywhere/irsa/internal/motoserver"
	"github.com/irsa-anywhere/irsa/pipeline/stsgate"
)

// DefaultPort is moto's port when it runs in a network namespace of its own (any port is free there).
const DefaultPort = 4566

// Options says where moto runs.
type Options struct {
	// Sandbox runs moto in a network namespace of its own, linked to this machine by a veth pair; Address and
	// Port are chosen (10.250.251.4k+2:4566). A host cluster started with host.PeerOf(backend) reaches it from
	// every pod. Needs root.
	Sandbox bool
	// NetNSPath runs moto_server in that network namespace (nsenter --net=), such as host.Cluster.NetNSPath();
	// empty runs it in this machine's namespace.
	NetNSPath string
	// Address is the IP moto binds, reachable from this machine and from pods, such as host.Cluster.NodeIP();
	// default 127.0.0.1 (then pods can't reach it).
	Address string
	// Port; default DefaultPort in a network namespace, a free port on loopback.
	Port int
	// Dir receives the CA and certificate files; default a new temporary directory removed by Close.
	Dir string
	// Region; default us-east-1.
	Region string
	// STSGate puts the strict STS gate (pipeline/stsgate) in front of moto, on GatePort of the same address and
	// with moto's certificate: Endpoint, PodEndpoint and IssuerURL then point at the gate, which checks
	// AssumeRoleWithWebIdentity the way AWS STS does and forwards everything else to moto unchanged.
	STSGate bool
	// GatePort is the gate's port; default DefaultGatePort in a network namespace, a free port on loopback.
	GatePort int
	// GateLogger receives the gate's decisions; nil discards them.
	GateLogger *slog.Logger
	// CloudFrontEdge serves the strict CloudFront stand-in (internal/cloudfrontedge) on loopback and makes the gate
	// fetch the documents of a distribution's issuer (https://*.cloudfront.net) through it.
	CloudFrontEdge bool
}

// DefaultGatePort is the strict STS gate's port next to moto.
const DefaultGatePort = 4567

// Backend is a running moto. It implements framework.AWS.
type Backend struct {
	opts     Options
	server   *motoserver.Server
	sandbox  *sandbox
	gate     *http.Server
	gateDone chan struct{}
	gateURL  string
	tmpDir   string
	edge     *cloudfrontedge.Server
}

var _ framework.AWS = (*Backend)(nil)

// Start runs moto_server and waits until it answers over HTTPS.
func Start(ctx context.Context, opts Options) (*Backend, error) {
	var sb *sandbox
	if opts.Sandbox {
		if opts.NetNSPath != "" || opts.Address != "" {
			return nil, fmt.Errorf("moto: Sandbox chooses its own namespace and address: leave NetNSPath (%q) and Address (%q) empty", opts.NetNSPath, opts.Address)
		}
		var err error
		if sb, err = newSandbox(ctx); err != nil {
			return nil, err
		}
		opts.NetNSPath, opts.Address = sb.path(), sb.address
	}
	b, err := start(ctx, opts)
	if err != nil {
		if sb != nil {
			err = errors.Join(err, sb.remove(ctx))
		}
		return nil, err
	}
	b.sandbox = sb
	if opts.CloudFrontEdge {
		if err := b.startEdge(ctx); err != nil {
			return nil, errors.Join(err, b.Close(ctx))
		}
	}
	if opts.STSGate {
		if err := b.startGate(); err != nil {
			return nil, errors.Join(err, b.Close(ctx))
		}
	}
	return b, nil
}

// startGate serves the strict STS gate over TLS next to moto.
func (b *Backend) startGate() error {
	port := b.opts.GatePort
	if port == 0 && b.opts.NetNSPath != "" {
		port = DefaultGatePort // a namespace of its own: the port is free
	}
	gopts := stsgate.Options{
		Backend:   b.server.URL,
		BackendCA: b.server.CAPool,
		IssuerClient: &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{
			TLSClientConfig: &tls.Config{RootCAs: b.server.CAPool, MinVersion: tls.VersionTLS12},
		}},
		Region: b.opts.Region,
		Logger: b.opts.GateLogger,
	}
	if b.edge != nil {
		gopts.IssuerClient, gopts.IAMTrustedRoots = b.gateIssuerClient()
	}
	gate, err := stsgate.New(gopts)
	if err != nil {
		return fmt.Errorf("strict STS gate in front of %s: %w", b.server.URL, err)
	}
	pair, err := tls.LoadX509KeyPair(b.server.CertFile, b.server.KeyFile)
	if err != nil {
		return fmt.Errorf("strict STS gate certificate: %w", err)
	}
	l, err := b.Listen(port)
	if err != nil {
		return fmt.Errorf("strict STS gate: %w", err)
	}
	b.gate = &http.Server{
		Handler:           gate,
		TLSConfig:         &tls.Config{Certificates: []tls.Certificate{pair}, MinVersion: tls.VersionTLS12},
		ReadHeaderTimeout: 30 * time.Second,
	}
	b.gateDone = make(chan struct{})
	go func() {
		defer close(b.gateDone)
		_ = b.gate.ServeTLS(l, "", "") // http.ErrServerClosed on Close
	}()
	b.gateURL = "https://" + net.JoinHostPort(b.opts.Address, strconv.Itoa(l.Addr().(*net.TCPAddr).Port))
	return nil
}

func start(ctx context.Context, opts Options) (*Backend, error) {
	if opts.Address == "" {
		opts.Address = "127.0.0.1"
	}
	if net.ParseIP(opts.Address) == nil {
		return nil, fmt.Errorf("moto address %q: not an IP address", opts.Address)
	}
	if opts.Region == "" {
		opts.Region = "us-east-1"
	}
	if opts.Port == 0 && opts.NetNSPath != "" {
		opts.Port = DefaultPort
	}
	if opts.NetNSPath != "" {
		if _, err := os.Stat(opts.NetNSPath); err != nil {
			return nil, fmt.Errorf("moto network namespace %s: %w", opts.NetNSPath, err)
		}
	}
	b := &Backend{opts: opts}
	if opts.Dir == "" {
		d, err := os.MkdirTemp("", "irsa-e2e-moto-")
		if err != nil {
			return nil, fmt.Errorf("moto cert dir: %w", err)
		}
		b.tmpDir, b.opts.Dir = d, d
	}
	if err := os.Chmod(b.opts.Dir, 0o755); err != nil {
		return nil, err
	}
	mo := motoserver.Options{Host: opts.Address, Port: opts.Port, Env: []string{"AWS_DEFAULT_REGION=" + opts.Region}}
	if opts.NetNSPath != "" {
		mo.Wrapper = []string{"nsenter", "--net=" + opts.NetNSPath, "--"}
	}
	s, err := motoserver.StartWithOptions(b.opts.Dir, mo)
	if err != nil {
		b.removeDir()
		return nil, fmt.Errorf("start moto at %s: %w", net.JoinHostPort(opts.Address, strconv.Itoa(opts.Port)), err)
	}
	b.server = s
	return b, nil
}

// Endpoint implements framework.AWS: the gate's https URL with Options.STSGate, else moto's, such as
// https://10.250.251.2:4566.
func (b *Backend) Endpoint() string {
	if b.gateURL != "" {
		return b.gateURL
	}
	return b.server.URL
}

// PodEndpoint implements framework.AWS: the same URL (it listens on an address pods reach).
func (b *Backend) PodEndpoint() string { return b.Endpoint() }

// MotoURL is moto_server's own URL, behind the gate when there is one.
func (b *Backend) MotoURL() string { return b.server.URL }

// IssuerURL implements framework.AWS: the bucket's path-style URL.
func (b *Backend) IssuerURL(bucket string) string { return b.Endpoint() + "/" + bucket }

// CAFile implements framework.AWS: the PEM CA that signed moto's certificate (world-readable).
func (b *Backend) CAFile() string { return b.server.CAFile }

// Region implements framework.AWS.
func (b *Backend) Region() string { return b.opts.Region }

// Env implements framework.AWS: credentials moto accepts, the region, the CA bundle and the endpoints for AWS SDK
// clients on this machine (AWS_ENDPOINT_URL_STS too: the SDK ignores AWS_ENDPOINT_URL for web identity).
func (b *Backend) Env() []string {
	return []string{
		"AWS_ACCESS_KEY_ID=testing", "AWS_SECRET_ACCESS_KEY=testing", "AWS_SESSION_TOKEN=",
		"AWS_REGION=" + b.opts.Region, "AWS_DEFAULT_REGION=" + b.opts.Region,
		"AWS_CA_BUNDLE=" + b.server.CAFile,
		"AWS_ENDPOINT_URL=" + b.Endpoint(), "AWS_ENDPOINT_URL_STS=" + b.Endpoint(),
		"AWS_EC2_METADATA_DISABLED=true",
	}
}

// Reset wipes moto's state.
func (b *Backend) Reset(ctx context.Context) error { return b.server.Reset(ctx) }

// PID is moto_server's process ID.
func (b *Backend) PID() int { return b.server.PID() }

// NetNS is the name (under /run/netns) of moto's own network namespace; empty unless Options.Sandbox.
func (b *Backend) NetNS() string {
	if b.sandbox == nil {
		return ""
	}
	return b.sandbox.name
}

// Address is the IP moto listens on.
func (b *Backend) Address() string { return b.opts.Address }

// CertFile and KeyFile are moto's certificate (for Address, signed by CAFile's CA) and key: a gate in front of
// moto on another port of the same address can serve them.
func (b *Backend) CertFile() string { return b.server.CertFile }

// KeyFile: see CertFile.
func (b *Backend) KeyFile() string { return b.server.KeyFile }

// Listen opens a TCP listener on Address:port in moto's network namespace, for a server of this process that
// pods and this machine must reach next to moto, such as the strict STS gate (then pass its URL as
// Options.PodSTSEndpoint).
func (b *Backend) Listen(port int) (net.Listener, error) {
	addr := net.JoinHostPort(b.opts.Address, strconv.Itoa(port))
	if b.opts.NetNSPath == "" {
		return net.Listen("tcp", addr)
	}
	return listen(b.opts.NetNSPath, addr)
}

// Close implements framework.AWS: it stops moto_server, removes its sandbox and the temporary cert dir.
func (b *Backend) Close(ctx context.Context) error {
	var errs []error
	if b.gate != nil {
		errs = append(errs, b.gate.Shutdown(ctx))
		<-b.gateDone
		b.gate = nil
	}
	if b.edge != nil {
		errs = append(errs, b.edge.Close(ctx))
		b.edge = nil
	}
	if b.server != nil {
		b.server.Stop()
	}
	if b.sandbox != nil {
		errs = append(errs, b.sandbox.remove(ctx))
		b.sandbox = nil
	}
	errs = append(errs, b.removeDir())
	return errors.Join(errs...)
}

func (b *Backend) removeDir() error {
	if b.tmpDir == "" {
		return nil
	}
	err := os.RemoveAll(b.tmpDir)
	b.tmpDir = ""
	return err
}
