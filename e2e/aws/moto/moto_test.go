package moto

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"
)

func TestStartOnLoopback(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	b, err := Start(ctx, Options{})
	if b != nil {
		t.Cleanup(func() { _ = b.Close(ctx) })
	}
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(b.Endpoint(), "https://127.0.0.1:") || b.PodEndpoint() != b.Endpoint() || b.MotoURL() != b.Endpoint() {
		t.Errorf("endpoints = %s, %s, %s; want one https loopback URL", b.Endpoint(), b.PodEndpoint(), b.MotoURL())
	}
	if got, want := b.IssuerURL("issuer-bucket"), b.Endpoint()+"/issuer-bucket"; got != want {
		t.Errorf("IssuerURL = %s, want %s", got, want)
	}
	pem, err := os.ReadFile(b.CAFile())
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(pem)
	client := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	resp, err := client.Get(b.Endpoint() + "/moto-api/")
	if err != nil {
		t.Fatalf("GET moto over HTTPS with CAFile: %v", err)
	}
	resp.Body.Close()
	env := strings.Join(b.Env(), "\n")
	for _, want := range []string{"AWS_CA_BUNDLE=" + b.CAFile(), "AWS_ENDPOINT_URL_STS=" + b.Endpoint(), "AWS_REGION=us-east-1"} {
		if !strings.Contains(env, want) {
			t.Errorf("Env() lacks %s:\n%s", want, env)
		}
	}
	dir := b.opts.Dir
	if err := b.Close(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Errorf("cert dir %s still there after Close: %v", dir, err)
	}
}

func TestStartRejectsBadAddress(t *testing.T) {
	t.Parallel()
	if _, err := Start(context.Background(), Options{Address: "moto.local"}); err == nil {
		t.Error("Start with a host name succeeded, want an error")
	}
}

// assumeWithGarbage sends AssumeRoleWithWebIdentity with a token that is not a JWT.
func assumeWithGarbage(t *testing.T, client *http.Client, endpoint string) int {
	t.Helper()
	form := url.Values{"Action": {"AssumeRoleWithWebIdentity"}, "Version": {"2011-06-15"},
		"RoleArn": {"arn:aws:iam::123456789012:role/nobody"}, "RoleSessionName": {"s"}, "WebIdentityToken": {"garbage"}}
	resp, err := client.PostForm(endpoint+"/", form)
	if err != nil {
		t.Fatalf("AssumeRoleWithWebIdentity at %s: %v", endpoint, err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

func caClient(t *testing.T, caFile string) *http.Client {
	t.Helper()
	pem, err := os.ReadFile(caFile)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(pem)
	return &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
}

func TestSTSGateInFront(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	b, err := Start(ctx, Options{STSGate: true})
	if b != nil {
		t.Cleanup(func() { _ = b.Close(ctx) })
	}
	if err != nil {
		t.Fatal(err)
	}
	if b.Endpoint() == b.MotoURL() || b.PodEndpoint() != b.Endpoint() || !strings.HasPrefix(b.IssuerURL("x"), b.Endpoint()+"/") {
		t.Errorf("Endpoint %s, PodEndpoint %s, IssuerURL %s, moto %s: want the gate in front", b.Endpoint(), b.PodEndpoint(), b.IssuerURL("x"), b.MotoURL())
	}
	client := caClient(t, b.CAFile())
	resp, err := client.Get(b.Endpoint() + "/moto-api/")
	if err != nil {
		t.Fatalf("GET through the gate: %v", err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Errorf("GET /moto-api/ through the gate: %d, want 200 (forwarded)", resp.StatusCode)
	}
	// moto accepts any token; the gate must not.
	if code := assumeWithGarbage(t, client, b.MotoURL()); code != http.StatusOK {
		t.Errorf("moto itself answered %d to a garbage token; the test assumes moto accepts it", code)
	}
	if code := assumeWithGarbage(t, client, b.Endpoint()); code < 400 {
		t.Errorf("the gate answered %d to a garbage token, want a 4xx", code)
	}
}

// TestSandbox runs moto in a network namespace of its own (created by the test, so traffic to it is allowed), and
// checks that a sandbox left by a dead process is removed by the next Start.
func TestSandbox(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Fatal("the moto sandbox needs root (network namespaces): run the tests as root")
	}
	ctx := context.Background()
	dead := exec.Command("true")
	if err := dead.Run(); err != nil {
		t.Fatal(err)
	}
	stale := fmt.Sprintf("%s%d-1", sandboxPrefix, dead.Process.Pid)
	if out, err := exec.Command("ip", "netns", "add", stale).CombinedOutput(); err != nil {
		t.Fatalf("ip netns add %s: %v: %s", stale, err, out)
	}
	t.Cleanup(func() { _ = exec.Command("ip", "netns", "delete", stale).Run() })

	b, err := Start(ctx, Options{Sandbox: true, STSGate: true})
	if b != nil {
		t.Cleanup(func() { _ = b.Close(ctx) })
	}
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat("/run/netns/" + stale); !os.IsNotExist(err) {
		t.Errorf("stale sandbox %s of a dead process still there", stale)
	}
	if !strings.HasPrefix(b.Endpoint(), "https://"+sandboxNet) || !strings.HasSuffix(b.MotoURL(), ":4566") || b.NetNS() == "" {
		t.Errorf("Endpoint %s, moto %s, netns %q: want the sandbox's address, moto on 4566", b.Endpoint(), b.MotoURL(), b.NetNS())
	}
	client := caClient(t, b.CAFile())
	for _, u := range []string{b.MotoURL() + "/moto-api/", b.Endpoint() + "/moto-api/"} {
		resp, err := client.Get(u)
		if err != nil {
			t.Fatalf("GET %s from this machine: %v", u, err)
		}
		resp.Body.Close()
	}
	netns, pid := b.NetNS(), b.PID()
	if err := b.Close(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat("/run/netns/" + netns); !os.IsNotExist(err) {
		t.Errorf("sandbox %s still there after Close", netns)
	}
	if _, err := os.Stat(fmt.Sprintf("/proc/%d/stat", pid)); err == nil {
		if b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid)); !strings.Contains(string(b), ") Z ") {
			t.Errorf("moto_server pid %d still runs after Close", pid)
		}
	}
}
