package cli

import (
	"bytes"
	"context"
	"net/url"
	"strings"
	"testing"

	"github.com/irsa-anywhere/irsa/internal/connectproxy"
	"github.com/irsa-anywhere/irsa/internal/motoserver"
)

// Behind an HTTPS proxy every connection irsa opens to AWS and to the issuer goes through it: the SDK's calls and the
// thumbprint's TLS dial. moto is named www.localhost, which its certificate covers (*.localhost) and only the proxy
// resolves (to 127.0.0.1), so a connection that bypassed the proxy would fail and the count proves the rest. This moto
// of its own is told not to read the Host's first label as a bucket (S3_IGNORE_SUBDOMAIN_BUCKETNAME).
func TestApplyThroughHTTPSProxy(t *testing.T) {
	m, err := motoserver.StartWithOptions(t.TempDir(), motoserver.Options{Env: []string{"S3_IGNORE_SUBDOMAIN_BUCKETNAME=true"}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(m.Stop)
	t.Setenv("AWS_CA_BUNDLE", m.CAFile)
	p := connectproxy.Start(t)
	t.Setenv("HTTPS_PROXY", p.URL)
	t.Setenv("NO_PROXY", "")
	u, _ := url.Parse(m.URL)
	endpoint := "https://www.localhost:" + u.Port()
	e := newEnv(t)
	e.endpoint = endpoint
	e.issuer = endpoint + "/" + e.bucket
	out := e.mustRun("apply")
	if !strings.Contains(out, "+ iam-oidc-provider") {
		t.Errorf("apply through the proxy:\n%s", out)
	}
	target := "www.localhost:" + u.Port()
	afterApply := p.Tunnels()[target]
	if afterApply == 0 {
		t.Fatalf("no tunnel to %s through the proxy: %v", target, p.Tunnels())
	}

	// The thumbprint is fetched through the proxy too: a plan with the provider's thumbprint unset by flag dials the
	// issuer once more (and the SDK reuses its connections).
	var stdout, stderr bytes.Buffer
	code := Main(context.Background(), append([]string{"plan"}, e.flags()...), &stdout, &stderr)
	if code != 0 {
		t.Fatalf("plan through the proxy: exit %d\n%s%s", code, stdout.String(), stderr.String())
	}
	if p.Tunnels()[target] <= afterApply {
		t.Errorf("plan opened no tunnel through the proxy (thumbprint dial): %v", p.Tunnels())
	}

	// A proxy that refuses stops irsa with an error naming it.
	p.Refuse = 403
	code, _, errOut := e.run("plan")
	if code != 1 || !strings.Contains(errOut, "Forbidden") { // net/http reports the CONNECT status by its text
		t.Errorf("plan through a refusing proxy: exit %d\n%s", code, errOut)
	}
}
