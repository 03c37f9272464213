package roles_test

import (
	"context"
	"crypto"
	"crypto/tls"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/iam"
	"github.com/aws/aws-sdk-go-v2/service/sts"
	"github.com/aws/smithy-go"

	"github.com/irsa-anywhere/irsa/internal/motoserver"
	"github.com/irsa-anywhere/irsa/pipeline/config"
	"github.com/irsa-anywhere/irsa/pipeline/provider"
	"github.com/irsa-anywhere/irsa/pipeline/roles"
	"github.com/irsa-anywhere/irsa/pipeline/stsgate"
	"github.com/irsa-anywhere/irsa/pipeline/trust"
	"github.com/irsa-anywhere/irsa/pipeline/trust/trusttest"
)

const (
	account  = "123456789012"
	audience = "sts.amazonaws.com"
)

// cluster is one cluster's issuer: its URL (served over HTTPS by trusttest), its signing key and its IAM provider.
type cluster struct {
	issuer, providerARN string
	index               int
}

// gateEnv is moto behind the strict STS gate, with three clusters' issuers and providers.
type gateEnv struct {
	iam      *iam.Client
	sts      *sts.Client
	clusters []cluster
}

func newGateEnv(t *testing.T) *gateEnv {
	t.Helper()
	moto := motoserver.Start(t)
	issuers := trusttest.NewServer(t)
	gate, err := stsgate.New(stsgate.Options{Backend: moto.URL, BackendCA: moto.CAPool, IssuerClient: issuers.Client(), IAMCacheTTL: -1})
	if err != nil {
		t.Fatal(err)
	}
	gateSrv := httptest.NewServer(gate)
	t.Cleanup(gateSrv.Close)
	httpClient := awshttp.NewBuildableClient().WithTransportOptions(func(tr *http.Transport) {
		tr.TLSClientConfig = &tls.Config{RootCAs: moto.CAPool}
	})
	creds := credentials.NewStaticCredentialsProvider("test", "test", "")
	e := &gateEnv{
		iam: iam.New(iam.Options{Region: "us-east-1", Credentials: creds, HTTPClient: httpClient, BaseEndpoint: aws.String(moto.URL)}),
		sts: sts.New(sts.Options{Region: "us-east-1", HTTPClient: httpClient, BaseEndpoint: aws.String(gateSrv.URL), RetryMaxAttempts: 1}),
	}
	for i, name := range []string{"cluster-a", "cluster-b", "cluster-c"} {
		key := trusttest.Key(t, i)
		issuer := issuers.Publish(t, trusttest.Issuer{Name: name, Keys: []crypto.PublicKey{&key.PublicKey}})
		out, err := e.iam.CreateOpenIDConnectProvider(context.Background(), &iam.CreateOpenIDConnectProviderInput{
			Url: aws.String(issuer), ClientIDList: []string{audience}, ThumbprintList: []string{trust.Thumbprint(issuers.Certificate())},
		})
		if err != nil {
			t.Fatal(err)
		}
		e.clusters = append(e.clusters, cluster{issuer: issuer, providerARN: aws.ToString(out.OpenIDConnectProviderArn), index: i})
	}
	return e
}

// token is a ServiceAccount token of c for NAMESPACE/NAME, signed with c's key.
func (e *gateEnv) token(t *testing.T, c cluster, namespace, name string) string {
	key := trusttest.Key(t, c.index)
	claims := trusttest.ServiceAccountClaims(c.issuer, namespace, name, audience, time.Now().Add(-time.Minute))
	return trusttest.Sign(t, key, trusttest.KeyID(t, &key.PublicKey), claims)
}

func (e *gateEnv) assume(roleARN, token string) string {
	_, err := e.sts.AssumeRoleWithWebIdentity(context.Background(), &sts.AssumeRoleWithWebIdentityInput{
		RoleArn: aws.String(roleARN), RoleSessionName: aws.String("multi"), WebIdentityToken: aws.String(token),
	})
	var apiErr smithy.APIError
	if errors.As(err, &apiErr) {
		return apiErr.ErrorCode()
	}
	if err != nil {
		return err.Error()
	}
	return ""
}

// manager is cluster-a's role manager: its own provider is the first cluster's.
func (e *gateEnv) manager() *roles.Manager {
	a := e.clusters[0]
	return &roles.Manager{
		IAM: e.iam, ClusterName: "cluster-a", IssuerURL: a.issuer, Audience: audience, Partition: "aws",
		ProviderARN: func(context.Context) (string, error) { return a.providerARN, nil },
		AccountID:   func(context.Context) (string, error) { return account, nil },
	}
}

// One role, several clusters: a role irsa makes for cluster-a that also trusts cluster-b's provider (named once by its
// ARN, once by its issuer URL) admits a token of the ServiceAccount from either cluster, through the strict gate, and
// refuses the same ServiceAccount's token from cluster-c, whose provider exists but is not trusted.
func TestMultiClusterTrustThroughGate(t *testing.T) {
	t.Parallel()
	e := newGateEnv(t)
	ctx := context.Background()
	m := e.manager()
	a, b, c := e.clusters[0], e.clusters[1], e.clusters[2]
	if got := provider.ARN("aws", account, b.issuer); got != b.providerARN {
		t.Fatalf("moto named cluster-b's provider %s, irsa derives %s", b.providerARN, got)
	}
	for name, ref := range map[string]string{"by ARN": b.providerARN, "by issuer URL": b.issuer} {
		t.Run(name, func(t *testing.T) {
			bind := config.Binding{Namespace: "team-a", ServiceAccount: "app", RoleName: "multi-" + strings.ReplaceAll(name, " ", "-"), TrustProviders: []string{ref}}
			if _, err := m.Ensure(ctx, bind); err != nil {
				t.Fatal(err)
			}
			role, err := e.iam.GetRole(ctx, &iam.GetRoleInput{RoleName: &bind.RoleName})
			if err != nil {
				t.Fatal(err)
			}
			roleARN := aws.ToString(role.Role.Arn)
			doc, _ := url.QueryUnescape(aws.ToString(role.Role.AssumeRolePolicyDocument))
			if n := strings.Count(doc, "sts:AssumeRoleWithWebIdentity"); n != 2 {
				t.Errorf("trust policy has %d statements, want 2 (one per provider):\n%s", n, doc)
			}
			for _, tc := range []struct {
				name  string
				token string
				want  string
			}{
				{"cluster-a's token", e.token(t, a, "team-a", "app"), ""},
				{"cluster-b's token", e.token(t, b, "team-a", "app"), ""},
				{"cluster-c's token", e.token(t, c, "team-a", "app"), trust.CodeAccessDenied},
				{"cluster-b's token of another ServiceAccount", e.token(t, b, "team-a", "other"), trust.CodeAccessDenied},
			} {
				if got := e.assume(roleARN, tc.token); got != tc.want {
					t.Errorf("%s: AssumeRoleWithWebIdentity answered %q, want %q", tc.name, got, tc.want)
				}
			}
			if changes, err := m.Plan(ctx, bind); err != nil || len(changes) != 0 {
				t.Errorf("plan after ensure: %v, %v; want no changes", changes, err)
			}
		})
	}
}

// A role irsa does not own (--role-arn) gets irsa's statements, named by their Sid, next to its own; the gate then
// admits both clusters' tokens; removing the binding puts the role's trust policy back as it was.
func TestExistingRoleTrustThroughGate(t *testing.T) {
	t.Parallel()
	e := newGateEnv(t)
	ctx := context.Background()
	m := e.manager()
	a, b, c := e.clusters[0], e.clusters[1], e.clusters[2]
	theirs := `{"Version":"2012-10-17","Statement":[{"Sid":"Theirs","Effect":"Allow","Principal":{"Federated":"` + c.providerARN +
		`"},"Action":"sts:AssumeRoleWithWebIdentity","Condition":{"StringEquals":{"` + trust.ConditionKeyPrefix(c.issuer) + `:sub":"system:serviceaccount:ops:tool"}}}]}`
	out, err := e.iam.CreateRole(ctx, &iam.CreateRoleInput{RoleName: aws.String("platform-shared"), Path: aws.String("/platform/"), AssumeRolePolicyDocument: aws.String(theirs)})
	if err != nil {
		t.Fatal(err)
	}
	roleARN := aws.ToString(out.Role.Arn)
	bind := config.Binding{Namespace: "team-a", ServiceAccount: "app", RoleName: "platform-shared", RoleARN: roleARN, TrustProviders: []string{b.issuer}}
	if got, _ := m.RoleARN(ctx, bind); got != roleARN {
		t.Errorf("RoleARN = %s, want the existing role's %s", got, roleARN)
	}
	changes, err := m.Ensure(ctx, bind)
	if err != nil || len(changes) != 1 {
		t.Fatalf("ensure on an existing role: %v, %v; want one trust policy update", changes, err)
	}
	if got := e.assume(roleARN, e.token(t, a, "team-a", "app")); got != "" {
		t.Errorf("cluster-a's token: %q", got)
	}
	if got := e.assume(roleARN, e.token(t, b, "team-a", "app")); got != "" {
		t.Errorf("cluster-b's token: %q", got)
	}
	if got := e.assume(roleARN, e.token(t, c, "team-a", "app")); got != trust.CodeAccessDenied {
		t.Errorf("cluster-c's token of team-a/app: %q, want AccessDenied", got)
	}
	if got := e.assume(roleARN, e.token(t, c, "ops", "tool")); got != "" {
		t.Errorf("the role's own statement stopped working: %q", got)
	}
	if changes, err := m.Plan(ctx, bind); err != nil || len(changes) != 0 {
		t.Errorf("plan after ensure: %v, %v; want no changes", changes, err)
	}
	if _, err := m.Remove(ctx, bind); err != nil {
		t.Fatal(err)
	}
	role, err := e.iam.GetRole(ctx, &iam.GetRoleInput{RoleName: aws.String("platform-shared")})
	if err != nil {
		t.Fatalf("remove deleted a role irsa does not own: %v", err)
	}
	doc, _ := url.QueryUnescape(aws.ToString(role.Role.AssumeRolePolicyDocument))
	if roles.PolicySize(doc) != roles.PolicySize(theirs) || strings.Contains(doc, roles.SidPrefix("cluster-a")) {
		t.Errorf("after remove, trust policy\n%s\nwant the role's own\n%s", doc, theirs)
	}
}
