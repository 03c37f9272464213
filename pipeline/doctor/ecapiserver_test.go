package doctor_test

import (
	"context"
	"crypto"
	"crypto/tls"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/iam"
	"github.com/aws/aws-sdk-go-v2/service/sts"
	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/irsa-anywhere/irsa/internal/kubeapiserver"
	"github.com/irsa-anywhere/irsa/internal/motoserver"
	"github.com/irsa-anywhere/irsa/pipeline/apiserver"
	"github.com/irsa-anywhere/irsa/pipeline/documents"
	"github.com/irsa-anywhere/irsa/pipeline/keys"
	"github.com/irsa-anywhere/irsa/pipeline/stsgate"
	"github.com/irsa-anywhere/irsa/pipeline/trust"
	"github.com/irsa-anywhere/irsa/pipeline/trust/trusttest"
)

// TestECKeyApiserverEndToEnd starts a real kube-apiserver signing with an ECDSA key irsa generated (P-256, then
// P-384) and checks the chain STS walks: the apiserver serves the key under the kid irsa computes
// (base64url(SHA-256(PKIX DER))) with alg ES256/ES384, irsa's JWKS entry for it is the apiserver's own, and a token
// the apiserver mints passes the gate into moto.
func TestECKeyApiserverEndToEnd(t *testing.T) {
	e := newGateEnv(t)
	ctx := context.Background()
	for _, alg := range []keys.Algorithm{keys.ES256, keys.ES384} {
		t.Run(string(alg), func(t *testing.T) {
			dir := t.TempDir()
			pair, created, err := keys.GenerateWith(dir, alg, false)
			if err != nil || !created {
				t.Fatalf("generate %s key: %v", alg, err)
			}
			priv, err := keys.LoadPrivateKey(pair.PrivateKeyPath)
			if err != nil {
				t.Fatal(err)
			}
			pub := priv.Public()
			kid, err := keys.KeyID(pub)
			if err != nil {
				t.Fatal(err)
			}
			issuer := e.issuers.IssuerURL("apiserver-" + strings.ToLower(string(alg)))
			// The later --service-account-signing-key-file wins; --service-account-key-file adds the EC key to the
			// apiserver's RSA one.
			api := kubeapiserver.Start(t, kubeapiserver.Options{Issuer: issuer, ExtraArgs: []string{
				"--service-account-key-file=" + pair.PublicKeyPath, "--service-account-signing-key-file=" + pair.PrivateKeyPath}})

			served, err := apiserver.ServedKeys(ctx, api.Client)
			if err != nil {
				t.Fatal(err)
			}
			ours, err := documents.KeySet([]crypto.PublicKey{pub}, documents.JWKSOptions{})
			if err != nil {
				t.Fatal(err)
			}
			found := false
			for _, k := range served.Keys {
				if k.KeyID != kid {
					continue
				}
				found = true
				theirs, _ := json.Marshal(k)
				mine, _ := json.Marshal(ours.Keys[0])
				if string(theirs) != string(mine) || k.Algorithm != string(alg) {
					t.Fatalf("the apiserver serves\n%s\nirsa publishes\n%s", theirs, mine)
				}
			}
			if !found {
				t.Fatalf("the apiserver serves no key with irsa's kid %s: %+v", kid, served.Keys)
			}

			e.issuers.Publish(t, trusttest.Issuer{Name: "apiserver-" + strings.ToLower(string(alg)), Keys: []crypto.PublicKey{pub}})
			roleARN := e.addRole(t, "irsa-ec-"+strings.ToLower(string(alg)), e.addProvider(t, issuer), issuer, "system:serviceaccount:default:app")
			if _, err := api.Client.CoreV1().ServiceAccounts("default").Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: "app"}}, metav1.CreateOptions{}); err != nil {
				t.Fatal(err)
			}
			tr, err := api.Client.CoreV1().ServiceAccounts("default").CreateToken(ctx, "app", &authenticationv1.TokenRequest{
				Spec: authenticationv1.TokenRequestSpec{Audiences: []string{audience}}}, metav1.CreateOptions{})
			if err != nil {
				t.Fatal(err)
			}
			claims, err := trust.PeekClaims(tr.Status.Token)
			if err != nil || claims.Algorithm != string(alg) || claims.KeyID != kid {
				t.Fatalf("token header alg %q kid %q (%v), want %s and %s", claims.Algorithm, claims.KeyID, err, alg, kid)
			}
			out, err := e.sts.AssumeRoleWithWebIdentity(ctx, &sts.AssumeRoleWithWebIdentityInput{RoleArn: aws.String(roleARN),
				RoleSessionName: aws.String("ec"), WebIdentityToken: aws.String(tr.Status.Token)})
			if err != nil || aws.ToString(out.Credentials.AccessKeyId) == "" {
				t.Fatalf("the gate refused the apiserver's %s token: %v", alg, err)
			}
		})
	}
}

// gateEnv is moto behind the STS gate, with issuers served over HTTPS by a test server.
type gateEnv struct {
	issuers *trusttest.Server
	iam     *iam.Client
	sts     *sts.Client
}

func newGateEnv(t *testing.T) *gateEnv {
	t.Helper()
	moto := motoserver.Start(t)
	e := &gateEnv{issuers: trusttest.NewServer(t)}
	gate, err := stsgate.New(stsgate.Options{Backend: moto.URL, BackendCA: moto.CAPool, IssuerClient: e.issuers.Client()})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(gate)
	t.Cleanup(srv.Close)
	httpClient := awshttp.NewBuildableClient().WithTransportOptions(func(tr *http.Transport) {
		tr.TLSClientConfig = &tls.Config{RootCAs: moto.CAPool}
	})
	e.iam = iam.New(iam.Options{Region: "us-east-1", HTTPClient: httpClient, BaseEndpoint: aws.String(moto.URL),
		Credentials: credentials.NewStaticCredentialsProvider("test", "test", "")})
	e.sts = sts.New(sts.Options{Region: "us-east-1", HTTPClient: httpClient, BaseEndpoint: aws.String(srv.URL), RetryMaxAttempts: 1})
	return e
}

// addProvider creates the IAM OIDC provider of issuer, with the test server's thumbprint, and returns its ARN.
func (e *gateEnv) addProvider(t *testing.T, issuer string) string {
	t.Helper()
	out, err := e.iam.CreateOpenIDConnectProvider(context.Background(), &iam.CreateOpenIDConnectProviderInput{
		Url: aws.String(issuer), ClientIDList: []string{audience}, ThumbprintList: []string{trust.Thumbprint(e.issuers.Certificate())}})
	if err != nil {
		t.Fatal(err)
	}
	return aws.ToString(out.OpenIDConnectProviderArn)
}

// addRole creates a role that providerARN's tokens with sub may assume and returns its ARN.
func (e *gateEnv) addRole(t *testing.T, name, providerARN, issuer, sub string) string {
	t.Helper()
	prefix := trust.ConditionKeyPrefix(issuer)
	doc, _ := json.Marshal(map[string]any{"Version": "2012-10-17", "Statement": []any{map[string]any{
		"Effect": "Allow", "Principal": map[string]any{"Federated": providerARN}, "Action": trust.ActionAssumeRoleWithWebIdentity,
		"Condition": map[string]any{"StringEquals": map[string]any{prefix + ":sub": sub, prefix + ":aud": audience}},
	}}})
	out, err := e.iam.CreateRole(context.Background(), &iam.CreateRoleInput{RoleName: aws.String(name), AssumeRolePolicyDocument: aws.String(string(doc))})
	if err != nil {
		t.Fatal(err)
	}
	return aws.ToString(out.Role.Arn)
}
