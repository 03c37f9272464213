//go:build docker

// These tests run the container plumbing for real against a Docker daemon: `make test-docker` starts a private
// one (hack/docker/start.sh) and sets DOCKER_HOST, TESTCONTAINERS_RYUK_DISABLED and TESTCONTAINERS_HOST_OVERRIDE.
// No image can be pulled on the build machines, so the emulator is a stand-in built here FROM scratch
// (testdata/standin); it goes through exactly the code path of StartLocalStack and StartMoto except the image.
package localstack

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/hex"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/containerd/errdefs"
	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/api/types/network"
	"github.com/moby/moby/client"
	"github.com/testcontainers/testcontainers-go"
	tcnetwork "github.com/testcontainers/testcontainers-go/network"
	"github.com/testcontainers/testcontainers-go/wait"
)

const standinImage = "irsa-e2e-standin:test"

var standin = emulator{
	name:   "standin",
	port:   "8080/tcp",
	health: "/health",
	env: func(Options) map[string]string {
		return map[string]string{"STANDIN_GREETING": "hello from the container"}
	},
	run: moto.run, // the generic testcontainers.Run path
}

// buildStandin compiles the stand-in server statically and builds its image through the Docker API.
func buildStandin(t *testing.T, ctx context.Context) {
	t.Helper()
	if os.Getenv("DOCKER_HOST") == "" {
		t.Fatal("DOCKER_HOST is not set: run `make test-docker`, or `eval \"$(hack/docker/start.sh)\"` first (it installs and starts a private dockerd)")
	}
	dir := t.TempDir()
	build := exec.CommandContext(ctx, "go", "build", "-trimpath", "-o", filepath.Join(dir, "standin"), "./testdata/standin")
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build stand-in: %v\n%s", err, out)
	}
	df, err := os.ReadFile("testdata/standin/Dockerfile")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "Dockerfile"), df, 0o644); err != nil {
		t.Fatal(err)
	}
	p, err := testcontainers.NewDockerProvider()
	if err != nil {
		t.Fatalf("docker provider (is the daemon at %s running?): %v", os.Getenv("DOCKER_HOST"), err)
	}
	defer p.Close()
	repo, tag, _ := strings.Cut(standinImage, ":")
	if _, err := p.BuildImage(ctx, &testcontainers.ContainerRequest{FromDockerfile: testcontainers.FromDockerfile{
		Context: dir, Repo: repo, Tag: tag, KeepImage: true,
	}}); err != nil {
		t.Fatalf("build image %s: %v", standinImage, err)
	}
}

func randomName(t *testing.T, prefix string) string {
	b := make([]byte, 4)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return prefix + hex.EncodeToString(b)
}

func TestContainerBackendOnDocker(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	buildStandin(t, ctx)

	netName := randomName(t, "irsa-e2e-test-")
	b, err := start(ctx, standin, Options{
		Image:   standinImage,
		Network: netName,
		Gate:    STSGate(nil),
	}.withDefaults(standinImage))
	if b != nil {
		t.Cleanup(func() {
			if err := b.Close(context.Background()); err != nil {
				t.Errorf("close: %v", err)
			}
		})
	}
	if err != nil {
		t.Fatalf("start: %v", err)
	}

	c := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: b.CAPool()}}}
	t.Run("front serves https on loopback and the gate forwards other requests", func(t *testing.T) {
		if !strings.HasPrefix(b.Endpoint(), "https://127.0.0.1:") {
			t.Fatalf("Endpoint() = %q, want https://127.0.0.1:PORT", b.Endpoint())
		}
		resp, err := c.Get(b.IssuerURL("issuer-bucket") + "/.well-known/openid-configuration")
		if err != nil {
			t.Fatalf("GET through the front: %v", err)
		}
		defer resp.Body.Close()
		var got map[string]string
		if err := json.NewDecoder(resp.Body).Decode(&got); err != nil {
			t.Fatalf("decode: %v", err)
		}
		if got["path"] != "/issuer-bucket/.well-known/openid-configuration" || got["greeting"] != "hello from the container" {
			t.Errorf("container answered %v", got)
		}
		if got["host"] != strings.TrimPrefix(b.Endpoint(), "https://") {
			t.Errorf("Host seen by the emulator = %q, want the client's %q (SigV4 signs it)", got["host"], strings.TrimPrefix(b.Endpoint(), "https://"))
		}
		env := strings.Join(b.Env(), "\n")
		for _, want := range []string{"AWS_CA_BUNDLE=" + b.CAFile(), "AWS_ENDPOINT_URL_STS=" + b.Endpoint(), "AWS_REGION=" + DefaultRegion} {
			if !strings.Contains(env, want) {
				t.Errorf("Env() lacks %q", want)
			}
		}
	})

	t.Run("the STS gate refuses a bad web identity token itself", func(t *testing.T) {
		form := url.Values{
			"Action": {"AssumeRoleWithWebIdentity"}, "Version": {"2011-06-15"},
			"RoleArn": {"arn:aws:iam::123456789012:role/s3-echoer"}, "RoleSessionName": {"e2e"},
			"WebIdentityToken": {"not-a-jwt"},
		}
		resp, err := c.PostForm(b.Endpoint()+"/", form)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		// The stand-in would have answered 200 with JSON: this answer is the gate's, as STS would give it.
		if resp.StatusCode != http.StatusBadRequest || !strings.Contains(string(body), "<Code>InvalidIdentityToken</Code>") {
			t.Fatalf("AssumeRoleWithWebIdentity with a garbage token: %s %s; want 400 InvalidIdentityToken", resp.Status, body)
		}
	})

	t.Run("container port is published on 127.0.0.1 only", func(t *testing.T) {
		info, err := b.Container().Inspect(ctx)
		if err != nil {
			t.Fatal(err)
		}
		bindings := info.NetworkSettings.Ports[network.MustParsePort(standin.port)]
		if len(bindings) == 0 {
			t.Fatalf("port %s not published: %v", standin.port, info.NetworkSettings.Ports)
		}
		for _, pb := range bindings {
			if pb.HostIP.String() != "127.0.0.1" {
				t.Errorf("port %s published on %s, want 127.0.0.1 only", standin.port, pb.HostIP)
			}
		}
	})

	// What a pod on kind's network does: reach the emulator by its alias, and the front by PodEndpoint.
	caPEM, err := os.ReadFile(b.CAFile())
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ name, url, want string }{
		{"a container on the network reaches the emulator by alias", "http://" + DefaultAlias + ":8080/health", "ok"},
		{"a container on the network reaches the front at PodEndpoint", b.PodEndpoint() + "/bucket/key", `"path":"/bucket/key"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if b.PodEndpoint() == "" {
				t.Fatal("PodEndpoint() is empty with a network")
			}
			c, err := testcontainers.Run(ctx, standinImage,
				testcontainers.WithCmd("-get", tc.url),
				testcontainers.WithEnv(map[string]string{"STANDIN_CA": string(caPEM)}),
				tcnetwork.WithNetworkName(nil, netName),
				testcontainers.WithWaitStrategy(wait.ForExit().WithExitTimeout(time.Minute)),
			)
			if c != nil {
				t.Cleanup(func() { _ = testcontainers.TerminateContainer(c) })
			}
			if err != nil {
				t.Fatalf("run client container: %v", err)
			}
			st, err := c.State(ctx)
			if err != nil {
				t.Fatal(err)
			}
			logs, err := c.Logs(ctx)
			if err != nil {
				t.Fatal(err)
			}
			out, _ := io.ReadAll(logs)
			if st.ExitCode != 0 || !strings.Contains(string(out), tc.want) {
				t.Fatalf("GET %s from the network: exit %d, output %q; want exit 0 and %q", tc.url, st.ExitCode, out, tc.want)
			}
		})
	}

	// kind's nodes are privileged containers; on machines without CAP_SYS_RESOURCE in the bounding set this only
	// works through hack/docker/start.sh's runc wrapper.
	t.Run("a privileged container starts", func(t *testing.T) {
		c, err := testcontainers.Run(ctx, standinImage,
			testcontainers.WithCmd("-get", "http://"+DefaultAlias+":8080/health"),
			testcontainers.WithHostConfigModifier(func(hc *container.HostConfig) { hc.Privileged = true }),
			tcnetwork.WithNetworkName(nil, netName),
			testcontainers.WithWaitStrategy(wait.ForExit().WithExitTimeout(time.Minute)),
		)
		if c != nil {
			t.Cleanup(func() { _ = testcontainers.TerminateContainer(c) })
		}
		if err != nil {
			t.Fatalf("run privileged container: %v", err)
		}
		st, err := c.State(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if st.ExitCode != 0 {
			t.Fatalf("privileged container exited %d", st.ExitCode)
		}
	})

	t.Run("close removes the container and the network it created", func(t *testing.T) {
		id := b.Container().GetContainerID()
		if err := b.Close(ctx); err != nil {
			t.Fatalf("close: %v", err)
		}
		cli, err := testcontainers.NewDockerClientWithOpts(ctx)
		if err != nil {
			t.Fatal(err)
		}
		defer cli.Close()
		if _, err := cli.ContainerInspect(ctx, id, client.ContainerInspectOptions{}); !errdefs.IsNotFound(err) {
			t.Errorf("container %s after Close: err = %v, want not found", id, err)
		}
		if _, err := cli.NetworkInspect(ctx, netName, client.NetworkInspectOptions{}); !errdefs.IsNotFound(err) {
			t.Errorf("network %s after Close: err = %v, want not found", netName, err)
		}
	})
}
