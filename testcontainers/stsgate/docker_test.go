//go:build docker

// This test runs the module for real against a Docker daemon: `make test-docker` (hack/docker/test.sh) starts a
// private one and sets DOCKER_HOST, TESTCONTAINERS_RYUK_DISABLED and TESTCONTAINERS_HOST_OVERRIDE. No image can be
// pulled on the build machines, so the gate's image is built here, without a daemon, exactly as `make gate-image`
// builds it, and loaded into the daemon. moto and the test issuer run on this machine, listening on the gateway of
// a Docker network the test creates, which is how the gate container reaches them.
package stsgate_test

import (
	"context"
	"crypto"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/iam"
	"github.com/aws/aws-sdk-go-v2/service/sts"
	"github.com/aws/smithy-go"
	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/api/types/network"
	"github.com/moby/moby/client"
	"github.com/testcontainers/testcontainers-go"
	tcnetwork "github.com/testcontainers/testcontainers-go/network"

	"github.com/irsa-anywhere/irsa/internal/motoserver"
	"github.com/irsa-anywhere/irsa/internal/ociimage"
	"github.com/irsa-anywhere/irsa/internal/testpki"
	gate "github.com/irsa-anywhere/irsa/pipeline/stsgate"
	"github.com/irsa-anywhere/irsa/pipeline/trust"
	"github.com/irsa-anywhere/irsa/pipeline/trust/trusttest"
	"github.com/irsa-anywhere/irsa/testcontainers/stsgate"
)

const testImage = "irsa.local/test/sts-gate:test"

// buildImage builds irsa statically and writes the gate image the way `make gate-image` does, then loads it.
func buildImage(t *testing.T, ctx context.Context) {
	t.Helper()
	if os.Getenv("DOCKER_HOST") == "" {
		t.Fatal("DOCKER_HOST is not set: run `make test-docker`, or `eval \"$(hack/docker/start.sh)\"` first (it installs and starts a private dockerd)")
	}
	dir := t.TempDir()
	bin := filepath.Join(dir, "irsa")
	build := exec.CommandContext(ctx, "go", "build", "-trimpath", "-ldflags", "-s -w", "-o", bin, "github.com/irsa-anywhere/irsa/cmd/irsa")
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build irsa: %v\n%s", err, out)
	}
	tarball := filepath.Join(dir, "image.tar")
	spec := ociimage.Spec{Ref: testImage, User: stsgate.ImageUser, Entrypoint: stsgate.ImageEntrypoint,
		Files: []ociimage.File{{Path: stsgate.ImageBinaryPath, Source: bin, Mode: 0o755}}}
	if err := ociimage.WriteTarball(tarball, spec); err != nil {
		t.Fatalf("write image: %v", err)
	}
	cli, err := testcontainers.NewDockerClientWithOpts(ctx)
	if err != nil {
		t.Fatalf("docker client: %v", err)
	}
	defer cli.Close()
	f, err := os.Open(tarball)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	res, err := cli.ImageLoad(ctx, f, client.ImageLoadWithQuiet(true))
	if err != nil {
		t.Fatalf("load %s into the daemon: %v", testImage, err)
	}
	_, _ = io.Copy(io.Discard, res)
	_ = res.Close()
	t.Cleanup(func() {
		_, _ = cli.ImageRemove(context.Background(), testImage, client.ImageRemoveOptions{Force: true})
	})
}

// gateway creates a Docker network for the test and returns it and its IPv4 gateway, an address of this machine
// that containers on the network reach.
func gateway(t *testing.T, ctx context.Context) (*testcontainers.DockerNetwork, string) {
	t.Helper()
	nw, err := tcnetwork.New(ctx)
	if nw != nil {
		t.Cleanup(func() { _ = nw.Remove(context.Background()) })
	}
	if err != nil {
		t.Fatalf("create network: %v", err)
	}
	cli, err := testcontainers.NewDockerClientWithOpts(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer cli.Close()
	res, err := cli.NetworkInspect(ctx, nw.Name, client.NetworkInspectOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range res.Network.IPAM.Config {
		if c.Gateway.Is4() {
			return nw, c.Gateway.String()
		}
	}
	t.Fatalf("network %s has no IPv4 gateway", nw.Name)
	return nil, ""
}

func freePort(t *testing.T, host string) int {
	t.Helper()
	l, err := net.Listen("tcp", net.JoinHostPort(host, "0"))
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// loopbackOnly publishes the gate's port on 127.0.0.1 only (Docker's default is every address).
func loopbackOnly(hc *container.HostConfig) {
	p := network.MustParsePort(stsgate.Port)
	if hc.PortBindings == nil {
		hc.PortBindings = network.PortMap{}
	}
	hc.PortBindings[p] = []network.PortBinding{{HostIP: netip.MustParseAddr("127.0.0.1")}}
}

func TestRunOnDocker(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	buildImage(t, ctx)
	nw, gw := gateway(t, ctx)

	moto, err := motoserver.StartWithOptions(t.TempDir(), motoserver.Options{Host: gw, Port: freePort(t, gw)})
	if moto != nil {
		t.Cleanup(moto.Stop)
	}
	if err != nil {
		t.Fatalf("start moto on %s: %v", gw, err)
	}
	motoCA, err := os.ReadFile(moto.CAFile)
	if err != nil {
		t.Fatal(err)
	}

	// The issuer: HTTPS on the gateway with a certificate from a private CA, so IAM (and the gate) need its thumbprint.
	ca, err := testpki.NewCA("irsa test issuer CA")
	if err != nil {
		t.Fatal(err)
	}
	certPEM, keyPEM, err := ca.Issue(pkix.Name{CommonName: gw}, []string{gw})
	if err != nil {
		t.Fatal(err)
	}
	cert, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("tcp", net.JoinHostPort(gw, "0"))
	if err != nil {
		t.Fatal(err)
	}
	issuers := trusttest.NewServerOn(t, l, &cert)
	key := trusttest.Key(t, 0)
	issuer := issuers.Publish(t, trusttest.Issuer{Name: "cluster", Keys: []crypto.PublicKey{&key.PublicKey}})
	block, _ := pem.Decode(certPEM)
	leaf, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		t.Fatal(err)
	}

	c, err := stsgate.Run(ctx, testImage,
		stsgate.WithBackend(moto.URL), stsgate.WithBackendCA(motoCA), stsgate.WithIssuerCA(ca.PEM),
		tcnetwork.WithNetwork(nil, nw), testcontainers.WithHostConfigModifier(loopbackOnly))
	testcontainers.CleanupContainer(t, c)
	if err != nil {
		t.Fatalf("run: %v", err)
	}
	endpoint, err := c.URL(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(endpoint, "http://127.0.0.1:") {
		t.Fatalf("endpoint %q, want http://127.0.0.1:PORT", endpoint)
	}

	httpClient := awshttp.NewBuildableClient().WithTransportOptions(func(tr *http.Transport) {
		tr.TLSClientConfig = &tls.Config{RootCAs: moto.CAPool}
	})
	creds := credentials.NewStaticCredentialsProvider("test", "test", "")
	iamClient := iam.New(iam.Options{Region: "us-east-1", Credentials: creds, HTTPClient: httpClient, BaseEndpoint: aws.String(moto.URL)})
	stsClient := sts.New(sts.Options{Region: "us-east-1", HTTPClient: httpClient, BaseEndpoint: aws.String(endpoint), RetryMaxAttempts: 1})

	prov, err := iamClient.CreateOpenIDConnectProvider(ctx, &iam.CreateOpenIDConnectProviderInput{
		Url: aws.String(issuer), ClientIDList: []string{"sts.amazonaws.com"}, ThumbprintList: []string{trust.Thumbprint(leaf)}})
	if err != nil {
		t.Fatal(err)
	}
	prefix := trust.ConditionKeyPrefix(issuer)
	policy := fmt.Sprintf(`{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"Federated":%q},"Action":"sts:AssumeRoleWithWebIdentity","Condition":{"StringEquals":{"%s:sub":"system:serviceaccount:default:app","%s:aud":"sts.amazonaws.com"}}}]}`,
		aws.ToString(prov.OpenIDConnectProviderArn), prefix, prefix)
	role, err := iamClient.CreateRole(ctx, &iam.CreateRoleInput{RoleName: aws.String("app"), AssumeRolePolicyDocument: aws.String(policy)})
	if err != nil {
		t.Fatal(err)
	}
	claims := trusttest.ServiceAccountClaims(issuer, "default", "app", "sts.amazonaws.com", time.Now().Add(-time.Minute))
	kid := trusttest.KeyID(t, &key.PublicKey)

	for _, tc := range []struct {
		name, token, want string
	}{
		{"a valid token gets credentials from moto", trusttest.Sign(t, key, kid, claims), ""},
		{"a garbage token is refused", "not-a-jwt", trust.CodeInvalidIdentityToken},
		{"another ServiceAccount is refused", trusttest.Sign(t, key, kid, trusttest.With(claims, "sub", "system:serviceaccount:default:other")), trust.CodeAccessDenied},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out, err := stsClient.AssumeRoleWithWebIdentity(ctx, &sts.AssumeRoleWithWebIdentityInput{
				RoleArn: role.Role.Arn, RoleSessionName: aws.String("docker-test"), WebIdentityToken: aws.String(tc.token)})
			var apiErr smithy.APIError
			got := ""
			if errors.As(err, &apiErr) {
				got = apiErr.ErrorCode()
			} else if err != nil {
				t.Fatalf("AssumeRoleWithWebIdentity: %v", err)
			}
			if got != tc.want {
				t.Fatalf("code %q (%v), want %q", got, err, tc.want)
			}
			if tc.want == "" && aws.ToString(out.Credentials.AccessKeyId) == "" {
				t.Fatalf("no credentials: %+v", out)
			}
		})
	}

	t.Run("other requests reach moto through the gate", func(t *testing.T) {
		viaGate := iam.New(iam.Options{Region: "us-east-1", Credentials: creds, HTTPClient: httpClient, BaseEndpoint: aws.String(endpoint)})
		out, err := viaGate.GetRole(ctx, &iam.GetRoleInput{RoleName: aws.String("app")})
		if err != nil || aws.ToString(out.Role.Arn) != aws.ToString(role.Role.Arn) {
			t.Fatalf("GetRole through the gate: %+v, %v", out, err)
		}
	})

	t.Run("health endpoint", func(t *testing.T) {
		resp, err := http.Get(endpoint + gate.HealthPath)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("health: %s", resp.Status)
		}
	})
}
