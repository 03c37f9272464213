package target_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/credentials"

	"github.com/irsa-anywhere/irsa/internal/motoserver"
	"github.com/irsa-anywhere/irsa/pipeline/awsclient"
	"github.com/irsa-anywhere/irsa/pipeline/config"
	"github.com/irsa-anywhere/irsa/pipeline/keys"
	"github.com/irsa-anywhere/irsa/pipeline/target"
)

// reader answers Resolve's read-only questions from a real moto_server.
func reader(t *testing.T, region string) target.IAMReader {
	t.Helper()
	moto := motoserver.Start(t)
	ca, err := os.ReadFile(moto.CAFile)
	if err != nil {
		t.Fatal(err)
	}
	c, err := awsclient.New(context.Background(), awsclient.Options{Region: region, EndpointURL: moto.URL, CABundle: ca,
		Credentials: credentials.NewStaticCredentialsProvider("testing", "testing", "")})
	if err != nil {
		t.Fatal(err)
	}
	return target.IAMReader{Clients: c}
}

// Every fact the stages share is derived once, here, from the configuration and the account.
func TestResolveDerivesEveryFactOnce(t *testing.T) {
	r := reader(t, "eu-west-1")
	keyDir := t.TempDir()
	if _, _, err := keys.Generate(keyDir, false); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name                     string
		cfg                      config.Config
		issuer, hostPath         string
		disc, jwks, provider     string
		role, subject, signingBy string
	}{
		{
			name: "virtual-hosted bucket",
			cfg: config.Config{ClusterName: "prod", Region: "eu-west-1", Bucket: "prod-oidc",
				Bindings: []config.Binding{{Namespace: "default", ServiceAccount: "app", PolicyARNs: []string{"arn:aws:iam::aws:policy/ReadOnlyAccess"}}}},
			issuer: "https://prod-oidc.s3.eu-west-1.amazonaws.com", hostPath: "prod-oidc.s3.eu-west-1.amazonaws.com",
			disc: ".well-known/openid-configuration", jwks: "keys.json",
			provider: "arn:aws:iam::123456789012:oidc-provider/prod-oidc.s3.eu-west-1.amazonaws.com",
			role:     "arn:aws:iam::123456789012:role/irsa/prod/irsa-prod-default-app", subject: "system:serviceaccount:default:app",
			signingBy: target.SigningKeyCluster,
		},
		{
			name: "custom issuer with a path, generated key",
			cfg: config.Config{ClusterName: "blue", Region: "eu-west-1", Bucket: "shared-oidc", IssuerURL: "https://oidc.example.com/clusters/blue",
				SigningKey: "generate", KeyDir: keyDir,
				Bindings: []config.Binding{{Namespace: "team-a", ServiceAccount: "reader", RoleName: "reader", InlinePolicy: `{"Statement":{"Effect":"Allow","Action":"s3:GetObject","Resource":"*"}}`}}},
			issuer: "https://oidc.example.com/clusters/blue", hostPath: "oidc.example.com/clusters/blue",
			disc: "clusters/blue/.well-known/openid-configuration", jwks: "clusters/blue/keys.json",
			provider: "arn:aws:iam::123456789012:oidc-provider/oidc.example.com/clusters/blue",
			role:     "arn:aws:iam::123456789012:role/irsa/blue/reader", subject: "system:serviceaccount:team-a:reader",
			signingBy: target.SigningKeyGenerate,
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			cfg := tc.cfg
			cfg.Defaults()
			got, err := target.Resolve(context.Background(), &cfg, r)
			if err != nil {
				t.Fatal(err)
			}
			checks := map[string][2]string{
				"issuer URL":    {got.Issuer.URL, tc.issuer},
				"host path":     {got.Issuer.HostPath, tc.hostPath},
				"discovery key": {got.Issuer.DiscoveryKey, tc.disc},
				"JWKS key":      {got.Issuer.JWKSKey, tc.jwks},
				"provider ARN":  {got.ProviderARN, tc.provider},
				"role ARN":      {got.Bindings[0].RoleARN, tc.role},
				"subject":       {got.Bindings[0].Subject, tc.subject},
				"signing key":   {got.SigningKey.Mode, tc.signingBy},
				"JWKS URL":      {got.Issuer.JWKSURL, tc.issuer + "/keys.json"},
			}
			for what, v := range checks {
				if v[0] != v[1] {
					t.Errorf("%s = %q, want %q", what, v[0], v[1])
				}
			}
		})
	}
}

// Resolve reports every problem it finds in one error, so a user fixes them in one go.
func TestResolveJoinsErrors(t *testing.T) {
	r := reader(t, "eu-west-1")
	weak := filepath.Join(t.TempDir(), "missing.key")
	cfg := config.Config{ClusterName: "prod", Region: "eu-west-1", Bucket: "prod-oidc", SigningKey: weak,
		PublicKeyFiles: []string{"/nonexistent/a.pem"},
		Bindings: []config.Binding{
			{Namespace: "team-a", ServiceAccount: "reader", PolicyARNs: []string{"arn:aws:iam::aws:policy/ReadOnlyAccess"}},
			{Namespace: "team", ServiceAccount: "a-reader", PolicyARNs: []string{"arn:aws:iam::aws:policy/ReadOnlyAccess"}},
		}}
	cfg.Defaults()
	_, err := target.Resolve(context.Background(), &cfg, r)
	if err == nil {
		t.Fatal("Resolve accepted a missing signing key, a missing public key and two bindings sharing a role")
	}
	for _, want := range []string{`signing key "` + weak + `"`, `read public key "/nonexistent/a.pem"`, `both map to IAM role "irsa-prod-team-a-reader"`} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error lacks %q:\n%v", want, err)
		}
	}
}
