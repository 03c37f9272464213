// Package moto is the e2e harness's emulated AWS: a real moto_server over HTTPS with a test CA, placed where both
// the test machine (irsa CLI, tests) and the cluster's pods reach it. With the host cluster it runs inside the
// node's network namespace bound to the node IP, so no traffic ever leaves the sandbox.
package moto

import (
	"context"
	"fmt"
	"net"
	"os"
	"strconv"

	"github.com/irsa-anywhere/irsa/e2e/framework"
	"github.com/irsa-anywhere/irsa/internal/motoserver"
)

// DefaultPort is moto's port when it runs in a network namespace of its own (any port is free there).
const DefaultPort = 4566

// Options says where moto runs.
type Options struct {
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
	// PodSTSEndpoint, when set, is the STS URL pods use instead of moto (the strict STS gate in front of moto's
	// STS). Its certificate must be signed by a CA in CAFile, or the caller ships its own bundle.
	PodSTSEndpoint string
}

// Backend is a running moto. It implements framework.AWS.
type Backend struct {
	opts   Options
	server *motoserver.Server
	tmpDir string
}

var _ framework.AWS = (*Backend)(nil)

// Start runs moto_server and waits until it answers over HTTPS.
func Start(ctx context.Context, opts Options) (*Backend, error) {
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

// Endpoint implements framework.AWS: moto's https URL, such as https://10.250.250.2:4566.
func (b *Backend) Endpoint() string { return b.server.URL }

// PodEndpoint implements framework.AWS: the same URL (moto listens on an address pods reach).
func (b *Backend) PodEndpoint() string { return b.server.URL }

// PodSTSEndpoint is the STS URL for pods (AWS_ENDPOINT_URL_STS): Options.PodSTSEndpoint or moto itself.
func (b *Backend) PodSTSEndpoint() string {
	if b.opts.PodSTSEndpoint != "" {
		return b.opts.PodSTSEndpoint
	}
	return b.server.URL
}

// IssuerURL implements framework.AWS: the bucket's path-style URL on moto.
func (b *Backend) IssuerURL(bucket string) string { return b.server.URL + "/" + bucket }

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
		"AWS_ENDPOINT_URL=" + b.server.URL, "AWS_ENDPOINT_URL_STS=" + b.server.URL,
		"AWS_EC2_METADATA_DISABLED=true",
	}
}

// Reset wipes moto's state.
func (b *Backend) Reset(ctx context.Context) error { return b.server.Reset(ctx) }

// PID is moto_server's process ID.
func (b *Backend) PID() int { return b.server.PID() }

// Close implements framework.AWS: it stops moto_server and removes the temporary cert dir.
func (b *Backend) Close(ctx context.Context) error {
	if b.server != nil {
		b.server.Stop()
	}
	return b.removeDir()
}

func (b *Backend) removeDir() error {
	if b.tmpDir == "" {
		return nil
	}
	err := os.RemoveAll(b.tmpDir)
	b.tmpDir = ""
	return err
}
