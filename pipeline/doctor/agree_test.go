package doctor_test

import (
	"context"
	"crypto"
	"crypto/tls"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/iam"
	"github.com/aws/aws-sdk-go-v2/service/sts"
	"github.com/aws/smithy-go"
	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/irsa-anywhere/irsa/internal/kubeapiserver"
	"github.com/irsa-anywhere/irsa/internal/motoserver"
	"github.com/irsa-anywhere/irsa/pipeline/config"
	"github.com/irsa-anywhere/irsa/pipeline/doctor"
	"github.com/irsa-anywhere/irsa/pipeline/keys"
	"github.com/irsa-anywhere/irsa/pipeline/stsgate"
	"github.com/irsa-anywhere/irsa/pipeline/trust"
	"github.com/irsa-anywhere/irsa/pipeline/trust/trusttest"
)

const (
	audience = config.DefaultAudience
	account  = "123456789012"
)

// world is a real kube-apiserver whose issuer documents a test HTTPS server publishes, moto as IAM, and the STS gate
// in front of moto: the pieces doctor and the gate both look at.
type world struct {
	api         *kubeapiserver.Server
	issuers     *trusttest.Server
	issuerURL   string
	saKey       crypto.PublicKey
	iam         *iam.Client
	sts         *sts.Client
	providerARN string
}

func newWorld(t *testing.T) *world {
	t.Helper()
	w := &world{issuers: trusttest.NewServer(t)}
	w.issuerURL = w.issuers.IssuerURL("cluster")
	w.api = kubeapiserver.Start(t, kubeapiserver.Options{Issuer: w.issuerURL})
	data, err := os.ReadFile(w.api.ServiceAccountKeyFile)
	if err != nil {
		t.Fatal(err)
	}
	if w.saKey, err = keys.ParsePublicKey(data); err != nil {
		t.Fatal(err)
	}
	w.publish(t, trusttest.Issuer{})

	moto := motoserver.Start(t)
	httpClient := awshttp.NewBuildableClient().WithTransportOptions(func(tr *http.Transport) {
		tr.TLSClientConfig = &tls.Config{RootCAs: moto.CAPool}
	})
	w.iam = iam.New(iam.Options{Region: "us-east-1", HTTPClient: httpClient, BaseEndpoint: aws.String(moto.URL),
		Credentials: credentials.NewStaticCredentialsProvider("test", "test", "")})
	gate, err := stsgate.New(stsgate.Options{Backend: moto.URL, BackendCA: moto.CAPool, IssuerClient: w.issuers.Client(),
		DocumentCacheTTL: -1, IAMCacheTTL: -1})
	if err != nil {
		t.Fatal(err)
	}
	gateSrv := httptest.NewServer(gate)
	t.Cleanup(gateSrv.Close)
	w.sts = sts.New(sts.Options{Region: "us-east-1", HTTPClient: httpClient, BaseEndpoint: aws.String(gateSrv.URL), RetryMaxAttempts: 1})
	w.providerARN = w.setProvider(t, []string{audience}, []string{trust.Thumbprint(w.issuers.Certificate())})
	return w
}

// publish serves the cluster issuer's documents: the apiserver's key unless is.Keys says otherwise.
func (w *world) publish(t *testing.T, is trusttest.Issuer) {
	t.Helper()
	is.Name = "cluster"
	if is.Keys == nil {
		is.Keys = []crypto.PublicKey{w.saKey}
	}
	w.issuers.Publish(t, is)
}

// setProvider replaces the IAM OIDC provider of the issuer (moto implements neither adding client IDs nor, reliably,
// updating thumbprints); nil clientIDs leaves it deleted.
func (w *world) setProvider(t *testing.T, clientIDs, thumbprints []string) string {
	t.Helper()
	ctx := context.Background()
	arn := "arn:aws:iam::" + account + ":oidc-provider/" + trust.ConditionKeyPrefix(w.issuerURL)
	_, err := w.iam.DeleteOpenIDConnectProvider(ctx, &iam.DeleteOpenIDConnectProviderInput{OpenIDConnectProviderArn: aws.String(arn)})
	var apiErr smithy.APIError
	if err != nil && !(errors.As(err, &apiErr) && apiErr.ErrorCode() == "NoSuchEntity") {
		t.Fatalf("delete provider: %v", err)
	}
	if clientIDs == nil {
		return arn
	}
	out, err := w.iam.CreateOpenIDConnectProvider(ctx, &iam.CreateOpenIDConnectProviderInput{
		Url: aws.String(w.issuerURL), ClientIDList: clientIDs, ThumbprintList: thumbprints})
	if err != nil {
		t.Fatalf("create provider: %v", err)
	}
	return aws.ToString(out.OpenIDConnectProviderArn)
}

// binding creates a role with the given trust policy statements (none: no role) and a ServiceAccount annotated with
// annotation (empty: the role's ARN).
func (w *world) binding(t *testing.T, name, annotation string, statements ...map[string]any) {
	t.Helper()
	ctx := context.Background()
	if len(statements) > 0 {
		doc, _ := json.Marshal(map[string]any{"Version": "2012-10-17", "Statement": statements})
		out, err := w.iam.CreateRole(ctx, &iam.CreateRoleInput{RoleName: aws.String("irsa-" + name), Path: aws.String("/irsa/test/"),
			AssumeRolePolicyDocument: aws.String(string(doc))})
		if err != nil {
			t.Fatalf("create role: %v", err)
		}
		if annotation == "" {
			annotation = aws.ToString(out.Role.Arn)
		}
	}
	sa := &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "default",
		Annotations: map[string]string{config.RoleARNAnnotation: annotation}}}
	if _, err := w.api.Client.CoreV1().ServiceAccounts("default").Create(ctx, sa, metav1.CreateOptions{}); err != nil {
		t.Fatalf("create service account: %v", err)
	}
}

func (w *world) allow(sub string) map[string]any {
	prefix := trust.ConditionKeyPrefix(w.issuerURL)
	return map[string]any{
		"Effect": "Allow", "Principal": map[string]any{"Federated": w.providerARN}, "Action": trust.ActionAssumeRoleWithWebIdentity,
		"Condition": map[string]any{"StringEquals": map[string]any{prefix + ":sub": sub, prefix + ":aud": audience}},
	}
}

// gateCode mints a token of the ServiceAccount as the kubelet would and sends it through the gate with the role the
// ServiceAccount names, as the SDK in a pod does; it returns the AWS error code, or "" for credentials.
func (w *world) gateCode(t *testing.T, name string) (string, error) {
	t.Helper()
	ctx := context.Background()
	sa, err := w.api.Client.CoreV1().ServiceAccounts("default").Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	tr, err := w.api.Client.CoreV1().ServiceAccounts("default").CreateToken(ctx, name, &authenticationv1.TokenRequest{
		Spec: authenticationv1.TokenRequestSpec{Audiences: []string{audience}}}, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("token request: %v", err)
	}
	_, err = w.sts.AssumeRoleWithWebIdentity(ctx, &sts.AssumeRoleWithWebIdentityInput{
		RoleArn: aws.String(sa.Annotations[config.RoleARNAnnotation]), RoleSessionName: aws.String("botocore-session-1"),
		WebIdentityToken: aws.String(tr.Status.Token)})
	var apiErr smithy.APIError
	if errors.As(err, &apiErr) {
		return apiErr.ErrorCode(), err
	}
	if err != nil {
		t.Fatalf("AssumeRoleWithWebIdentity through the gate: %v", err)
	}
	return "", nil
}

// chainLines are doctor's lines about the chain STS walks; the webhook lines need a webhook, which this test does
// not run, and are left out.
var chainLines = []string{"apiserver issuer", "published documents", "signing keys published", "IAM provider", "thumbprint",
	"service account", "role trust policy", "token accepted"}

// TestDoctorAgreesWithTheGate runs each way a binding can fail through the STS gate (a real token from a real
// kube-apiserver, sent as a pod's SDK sends it) and through doctor, and expects doctor to have a ✗ on the line that
// explains each refusal, and every chain line ✓ when the gate issues credentials. The cases change shared state (the
// published documents, the provider), so they run one after the other.
func TestDoctorAgreesWithTheGate(t *testing.T) {
	w := newWorld(t)
	goodThumb := []string{trust.Thumbprint(w.issuers.Certificate())}
	const other = "0123456789abcdef0123456789abcdef01234567"

	cases := []struct {
		name string
		// setup makes the binding and breaks what the case breaks; its cleanups restore the shared state.
		setup func(t *testing.T, sa string)
		// wantCode is the gate's answer; wantLine the doctor line that must be ✗ ("" with wantCode "": all ✓).
		wantCode, wantLine string
	}{
		{name: "valid", setup: func(t *testing.T, sa string) {
			w.binding(t, sa, "", w.allow("system:serviceaccount:default:"+sa))
		}},
		{name: "trust policy for another service account", wantCode: trust.CodeAccessDenied, wantLine: "role trust policy", setup: func(t *testing.T, sa string) {
			w.binding(t, sa, "", w.allow("system:serviceaccount:default:someone-else"))
		}},
		{name: "trust policy with an explicit deny", wantCode: trust.CodeAccessDenied, wantLine: "role trust policy", setup: func(t *testing.T, sa string) {
			w.binding(t, sa, "", w.allow("system:serviceaccount:default:"+sa), map[string]any{
				"Effect": "Deny", "Principal": "*", "Action": "sts:*"})
		}},
		{name: "trust policy for another provider", wantCode: trust.CodeAccessDenied, wantLine: "role trust policy", setup: func(t *testing.T, sa string) {
			st := w.allow("system:serviceaccount:default:" + sa)
			st["Principal"] = map[string]any{"Federated": "arn:aws:iam::" + account + ":oidc-provider/other.example.com"}
			w.binding(t, sa, "", st)
		}},
		{name: "trust policy on another audience", wantCode: trust.CodeAccessDenied, wantLine: "role trust policy", setup: func(t *testing.T, sa string) {
			st := w.allow("system:serviceaccount:default:" + sa)
			st["Condition"].(map[string]any)["StringEquals"].(map[string]any)[trust.ConditionKeyPrefix(w.issuerURL)+":aud"] = "other-audience"
			w.binding(t, sa, "", st)
		}},
		{name: "role missing", wantCode: trust.CodeAccessDenied, wantLine: "role trust policy", setup: func(t *testing.T, sa string) {
			w.binding(t, sa, "arn:aws:iam::"+account+":role/irsa/test/irsa-"+sa)
		}},
		{name: "annotation with the wrong role path", wantCode: trust.CodeAccessDenied, wantLine: "role trust policy", setup: func(t *testing.T, sa string) {
			w.binding(t, sa, "arn:aws:iam::"+account+":role/irsa-"+sa, w.allow("system:serviceaccount:default:"+sa))
		}},
		{name: "annotation not an ARN", wantCode: stsgate.CodeValidationError, wantLine: "service account", setup: func(t *testing.T, sa string) {
			w.binding(t, sa, "irsa-"+sa)
		}},
		{name: "provider lacks the audience", wantCode: trust.CodeInvalidIdentityToken, wantLine: "IAM provider", setup: func(t *testing.T, sa string) {
			w.binding(t, sa, "", w.allow("system:serviceaccount:default:"+sa))
			w.setProvider(t, []string{"another-client"}, goodThumb)
			t.Cleanup(func() { w.setProvider(t, []string{audience}, goodThumb) })
		}},
		{name: "provider missing", wantCode: trust.CodeInvalidIdentityToken, wantLine: "IAM provider", setup: func(t *testing.T, sa string) {
			w.binding(t, sa, "", w.allow("system:serviceaccount:default:"+sa))
			w.setProvider(t, nil, nil)
			t.Cleanup(func() { w.setProvider(t, []string{audience}, goodThumb) })
		}},
		{name: "provider thumbprint of another certificate", wantCode: trust.CodeInvalidIdentityToken, wantLine: "thumbprint", setup: func(t *testing.T, sa string) {
			w.binding(t, sa, "", w.allow("system:serviceaccount:default:"+sa))
			w.setProvider(t, []string{audience}, []string{other})
			t.Cleanup(func() { w.setProvider(t, []string{audience}, goodThumb) })
		}},
		{name: "published JWKS lacks the apiserver's key", wantCode: trust.CodeInvalidIdentityToken, wantLine: "signing keys published", setup: func(t *testing.T, sa string) {
			w.binding(t, sa, "", w.allow("system:serviceaccount:default:"+sa))
			w.publish(t, trusttest.Issuer{Keys: []crypto.PublicKey{&trusttest.Key(t, 1).PublicKey}})
			t.Cleanup(func() { w.publish(t, trusttest.Issuer{}) })
		}},
		{name: "discovery document private", wantCode: trust.CodeInvalidIdentityToken, wantLine: "published documents", setup: func(t *testing.T, sa string) {
			w.binding(t, sa, "", w.allow("system:serviceaccount:default:"+sa))
			w.publish(t, trusttest.Issuer{DiscoveryStatus: http.StatusForbidden})
			t.Cleanup(func() { w.publish(t, trusttest.Issuer{}) })
		}},
		{name: "JWKS missing", wantCode: trust.CodeInvalidIdentityToken, wantLine: "published documents", setup: func(t *testing.T, sa string) {
			w.binding(t, sa, "", w.allow("system:serviceaccount:default:"+sa))
			w.publish(t, trusttest.Issuer{JWKSStatus: http.StatusNotFound})
			t.Cleanup(func() { w.publish(t, trusttest.Issuer{}) })
		}},
		{name: "discovery document names another issuer", wantCode: trust.CodeInvalidIdentityToken, wantLine: "published documents", setup: func(t *testing.T, sa string) {
			w.binding(t, sa, "", w.allow("system:serviceaccount:default:"+sa))
			w.publish(t, trusttest.Issuer{DiscoveryIssuer: w.issuerURL + "/"})
			t.Cleanup(func() { w.publish(t, trusttest.Issuer{}) })
		}},
	}
	for i, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			sa := "sa-" + string(rune('a'+i))
			c.setup(t, sa)
			code, gateErr := w.gateCode(t, sa)
			if code != c.wantCode {
				t.Fatalf("gate answered %q (%v), want %q", code, gateErr, c.wantCode)
			}
			rep := doctor.Run(context.Background(), doctor.Inputs{
				IssuerURL: w.issuerURL, Audience: audience, ProviderARN: w.providerARN, IAM: w.iam, Cluster: w.api.Client,
				Verifier:  trust.New(trust.Options{HTTPClient: w.issuers.Client(), CacheTTL: -1}),
				Namespace: "default", ServiceAccount: sa,
			})
			lines := map[string]doctor.Check{}
			for _, l := range rep.Checks {
				lines[l.Name] = l
			}
			report := func() string {
				var b strings.Builder
				for _, l := range rep.Checks {
					mark := "✓"
					if !l.OK {
						mark = "✗"
					}
					b.WriteString("  " + mark + " " + l.Name + ": " + l.Message + "\n")
				}
				return b.String()
			}
			if c.wantCode == "" {
				for _, name := range chainLines {
					if l, ok := lines[name]; !ok || !l.OK {
						t.Errorf("the gate issues credentials but doctor's %q line is not ✓:\n%s", name, report())
					}
				}
				return
			}
			if l, ok := lines[c.wantLine]; !ok || l.OK || l.Fix == "" {
				t.Errorf("the gate refuses with %s (%v) but doctor's %q line is not ✗ with a fix:\n%s", c.wantCode, gateErr, c.wantLine, report())
			}
			// Doctor stops a ServiceAccount's checks at the first broken link; a token line it prints must not be ✓.
			if l, ok := lines["token accepted"]; ok && l.OK {
				t.Errorf("the gate refuses with %s but doctor's token line is ✓:\n%s", c.wantCode, report())
			}
		})
	}
}
