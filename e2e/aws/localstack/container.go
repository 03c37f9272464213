package localstack

import (
	"context"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"time"

	"github.com/containerd/errdefs"
	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/api/types/network"
	"github.com/moby/moby/client"
	"github.com/testcontainers/testcontainers-go"
	tcnetwork "github.com/testcontainers/testcontainers-go/network"
	"github.com/testcontainers/testcontainers-go/wait"

	"github.com/irsa-anywhere/irsa/pipeline/config"
)

// startupTimeout bounds the wait for the emulator's health endpoint; LocalStack takes 10-30 s on a cold runner.
const startupTimeout = 3 * time.Minute

// containerOptions are the testcontainers-go options for emulator e: module defaults come first in the module's
// own Run, these after them, so they win.
func containerOptions(e emulator, o Options) []testcontainers.ContainerCustomizer {
	opts := []testcontainers.ContainerCustomizer{
		testcontainers.WithExposedPorts(e.port),
		testcontainers.WithEnv(e.env(o)),
		testcontainers.WithLabels(map[string]string{config.ManagedByTagKey: config.ManagedByValue}),
		// Readiness by polling the health endpoint through the published port.
		testcontainers.WithWaitStrategy(wait.ForHTTP(e.health).WithPort(e.port).
			WithStartupTimeout(startupTimeout).WithPollInterval(200 * time.Millisecond).
			// The port is published on 127.0.0.1 only; "localhost" may resolve to ::1 first.
			WithForcedIPv4LocalHost()),
		testcontainers.WithHostConfigModifier(loopbackOnly(e.port)),
	}
	if o.Network != "" {
		opts = append(opts, tcnetwork.WithNetworkName([]string{o.Alias}, o.Network))
	}
	return opts
}

// loopbackOnly publishes port on 127.0.0.1 only (Docker's default is every address), and drops the Docker socket
// that the LocalStack module mounts: S3, IAM and STS do not need it, and it is root on the host.
func loopbackOnly(port string) func(*container.HostConfig) {
	return func(hc *container.HostConfig) {
		p, err := network.ParsePort(port)
		if err != nil {
			// containerOptions only passes the emulators' fixed ports; testcontainers reports a bad one itself.
			return
		}
		if hc.PortBindings == nil {
			hc.PortBindings = network.PortMap{}
		}
		hc.PortBindings[p] = []network.PortBinding{{HostIP: netip.MustParseAddr(loopback), HostPort: ""}}
		hc.Binds = slices.DeleteFunc(hc.Binds, func(b string) bool { return strings.Contains(b, "docker.sock") })
	}
}

// dockerNetwork is the network the container joined, and whether this package created it.
type dockerNetwork struct {
	name    string
	gateway string
	created bool
	client  *testcontainers.DockerClient
}

// ensureNetwork finds the named network or creates it as a plain bridge. kind uses an existing network called
// "kind" as it is, so the backend may start before the cluster.
func ensureNetwork(ctx context.Context, name string) (*dockerNetwork, error) {
	cli, err := testcontainers.NewDockerClientWithOpts(ctx)
	if err != nil {
		return nil, fmt.Errorf("docker client: %w", err)
	}
	n := &dockerNetwork{name: name, client: cli}
	res, err := cli.NetworkInspect(ctx, name, client.NetworkInspectOptions{})
	if errdefs.IsNotFound(err) {
		if _, err := cli.NetworkCreate(ctx, name, client.NetworkCreateOptions{
			Driver: "bridge",
			Labels: map[string]string{config.ManagedByTagKey: config.ManagedByValue},
		}); err != nil {
			_ = cli.Close()
			return nil, fmt.Errorf("create docker network %q: %w", name, err)
		}
		n.created = true
		res, err = cli.NetworkInspect(ctx, name, client.NetworkInspectOptions{})
	}
	if err != nil {
		_ = n.close(ctx)
		return nil, fmt.Errorf("inspect docker network %q: %w", name, err)
	}
	for _, c := range res.Network.IPAM.Config {
		if c.Gateway.Is4() {
			n.gateway = c.Gateway.String()
			break
		}
	}
	if n.gateway == "" {
		_ = n.close(ctx)
		return nil, fmt.Errorf("docker network %q has no IPv4 gateway: pods could not reach the backend", name)
	}
	return n, nil
}

func (n *dockerNetwork) close(ctx context.Context) error {
	defer n.client.Close()
	if !n.created {
		return nil
	}
	// A kept kind cluster (KEEP=1) still has its nodes on the network: it stays for them.
	if res, err := n.client.NetworkInspect(ctx, n.name, client.NetworkInspectOptions{}); err == nil && len(res.Network.Containers) > 0 {
		return nil
	}
	if _, err := n.client.NetworkRemove(ctx, n.name, client.NetworkRemoveOptions{}); err != nil && !errdefs.IsNotFound(err) {
		return fmt.Errorf("remove docker network %q: %w", n.name, err)
	}
	return nil
}
