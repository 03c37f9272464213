package moto

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"net/http"
	"os"
	"strings"
	"testing"
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
	if !strings.HasPrefix(b.Endpoint(), "https://127.0.0.1:") || b.PodEndpoint() != b.Endpoint() || b.PodSTSEndpoint() != b.Endpoint() {
		t.Errorf("endpoints = %s, %s, %s; want one https loopback URL", b.Endpoint(), b.PodEndpoint(), b.PodSTSEndpoint())
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
