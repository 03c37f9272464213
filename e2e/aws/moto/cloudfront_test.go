package moto

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	cf "github.com/aws/aws-sdk-go-v2/service/cloudfront"
	jose "github.com/go-jose/go-jose/v4"

	"github.com/irsa-anywhere/irsa/internal/cli"
	"github.com/irsa-anywhere/irsa/pipeline/awsclient"
	"github.com/irsa-anywhere/irsa/pipeline/config"
	"github.com/irsa-anywhere/irsa/pipeline/keys"
	"github.com/irsa-anywhere/irsa/pipeline/roles"
	"github.com/irsa-anywhere/irsa/pipeline/trust/trusttest"
)

// The strict STS gate fetches a cloudfront issuer's documents through the strict CloudFront stand-in: after
// `irsa apply --issuer-hosting cloudfront` and a binding, a token signed with the published key for the
// distribution's issuer URL is accepted, and one for another issuer is not. This is the e2e's chain without a
// cluster (the token is signed here instead of by kube-apiserver).
func TestSTSGateThroughCloudFrontEdge(t *testing.T) {
	ctx := context.Background()
	b, err := Start(ctx, Options{STSGate: true, CloudFrontEdge: true})
	if b != nil {
		t.Cleanup(func() { _ = b.Close(ctx) })
	}
	if err != nil {
		t.Fatal(err)
	}
	for _, kv := range []string{"AWS_ACCESS_KEY_ID=testing", "AWS_SECRET_ACCESS_KEY=testing", "AWS_REGION=us-east-1", "AWS_EC2_METADATA_DISABLED=true", "KUBECONFIG=", "AWS_PROFILE="} {
		k, v, _ := strings.Cut(kv, "=")
		t.Setenv(k, v)
	}
	dir := t.TempDir()
	pair, _, err := keys.Generate(dir, false)
	if err != nil {
		t.Fatal(err)
	}
	policy := filepath.Join(dir, "policy.json")
	os.WriteFile(policy, []byte(`{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"s3:ListAllMyBuckets","Resource":"*"}]}`), 0o644)
	flags := []string{"--cluster-name", "cf1", "--region", "us-east-1", "--bucket", "irsa-cf1", "--aws-endpoint-url", b.Endpoint(),
		"--ca-bundle", b.CAFile(), "--key-dir", dir, "--issuer-hosting", "cloudfront"}
	run := func(args ...string) string {
		t.Helper()
		var out, errOut bytes.Buffer
		if code := cli.Main(ctx, append(args, flags...), &out, &errOut); code != 0 {
			t.Fatalf("irsa %s: exit %d\n%s%s", strings.Join(args, " "), code, out.String(), errOut.String())
		}
		return out.String()
	}
	run("apply")
	run("bind", "default/app", "--inline-policy", policy)

	ca, _ := os.ReadFile(b.CAFile())
	c, err := awsclient.New(ctx, awsclient.Options{Region: "us-east-1", EndpointURL: b.MotoURL(), CABundle: ca,
		Credentials: credentials.NewStaticCredentialsProvider("testing", "testing", "")})
	if err != nil {
		t.Fatal(err)
	}
	list, err := c.CloudFront.ListDistributions(ctx, &cf.ListDistributionsInput{})
	if err != nil || list.DistributionList == nil || len(list.DistributionList.Items) != 1 {
		t.Fatalf("distributions: %v %+v", err, list)
	}
	issuerURL := "https://" + aws.ToString(list.DistributionList.Items[0].DomainName)

	key, err := keys.LoadPrivateKey(pair.PrivateKeyPath)
	if err != nil {
		t.Fatal(err)
	}
	kid, err := keys.KeyID(key.Public())
	if err != nil {
		t.Fatal(err)
	}
	alg, err := keys.AlgorithmOf(key.Public())
	if err != nil {
		t.Fatal(err)
	}
	roleARN := roles.ARN("aws", "123456789012", "cf1", config.RoleNameFor("cf1", "default", "app"))
	assume := func(iss string) (int, string) {
		now := time.Now()
		token := trusttest.SignWith(t, key, jose.SignatureAlgorithm(alg), kid, map[string]any{
			"iss": iss, "sub": "system:serviceaccount:default:app", "aud": []string{config.DefaultAudience},
			"iat": now.Unix(), "nbf": now.Unix(), "exp": now.Add(time.Hour).Unix(),
		})
		form := url.Values{"Action": {"AssumeRoleWithWebIdentity"}, "Version": {"2011-06-15"}, "RoleArn": {roleARN},
			"RoleSessionName": {"irsa-test"}, "WebIdentityToken": {token}}
		resp, err := caClient(t, b.CAFile()).PostForm(b.Endpoint()+"/", form)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(body)
	}
	if code, body := assume(issuerURL); code != http.StatusOK {
		t.Errorf("AssumeRoleWithWebIdentity for %s through the gate and the edge: %d\n%s", issuerURL, code, body)
	}
	if code, body := assume("https://dother.cloudfront.net"); code == http.StatusOK {
		t.Errorf("a token for a distribution nobody trusts was accepted:\n%s", body)
	}
	run("teardown", "--aws-only", "--yes")
}
