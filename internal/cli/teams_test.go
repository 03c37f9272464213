package cli

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/iam"
	iamtypes "github.com/aws/aws-sdk-go-v2/service/iam/types"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/irsa-anywhere/irsa/internal/kubeapiserver"
	"github.com/irsa-anywhere/irsa/pipeline/awsclient"
	"github.com/irsa-anywhere/irsa/pipeline/config"
	"github.com/irsa-anywhere/irsa/pipeline/documents"
	"github.com/irsa-anywhere/irsa/pipeline/roles"
)

const (
	readOnly  = "arn:aws:iam::aws:policy/AmazonS3ReadOnlyAccess"
	boundary  = "arn:aws:iam::aws:policy/PowerUserAccess"
	boundary2 = "arn:aws:iam::aws:policy/ReadOnlyAccess"
)

func writeIrsaYAML(t *testing.T, content string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "irsa.yaml")
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func roleTags(t *testing.T, c *awsclient.Clients, role string) map[string]string {
	t.Helper()
	out, err := c.IAM.ListRoleTags(context.Background(), &iam.ListRoleTagsInput{RoleName: &role})
	if err != nil {
		t.Fatal(err)
	}
	tags := map[string]string{}
	for _, tg := range out.Tags {
		tags[aws.ToString(tg.Key)] = aws.ToString(tg.Value)
	}
	return tags
}

// A binding's permissions boundary and tags are set on the role it makes, and each kind of drift in them is shown by
// plan and repaired by apply with exactly one call; irsa's ownership tags stay.
func TestBindingBoundaryAndTags(t *testing.T) {
	e := newEnv(t)
	c := clients(t)
	ctx := context.Background()
	cfg := writeIrsaYAML(t, "bindings:\n- namespace: default\n  serviceAccount: app\n  policyARNs: ["+readOnly+"]\n  permissionsBoundary: "+boundary+"\n  tags: {team: payments, cost-center: \"42\"}\n")
	e.mustRun("apply", "-f", cfg)
	role := "irsa-" + e.cluster + "-default-app"
	got, err := c.IAM.GetRole(ctx, &iam.GetRoleInput{RoleName: &role})
	if err != nil {
		t.Fatal(err)
	}
	if pb := got.Role.PermissionsBoundary; pb == nil || aws.ToString(pb.PermissionsBoundaryArn) != boundary {
		t.Errorf("permissions boundary %+v, want %s", pb, boundary)
	}
	tags := roleTags(t, c, role)
	if tags["team"] != "payments" || tags["cost-center"] != "42" || tags[config.OwnerTagKey] != e.cluster || len(tags) != 5 {
		t.Errorf("role tags %v: want team, cost-center and irsa's three", tags)
	}
	if code, out, errOut := e.run("plan", "-f", cfg); code != 0 {
		t.Fatalf("plan after apply: exit %d\n%s%s", code, out, errOut)
	}

	cases := []struct {
		name  string
		drift func() error
		plan  string
		calls []string
	}{
		{"another boundary", func() error {
			_, err := c.IAM.PutRolePermissionsBoundary(ctx, &iam.PutRolePermissionsBoundaryInput{RoleName: &role, PermissionsBoundary: aws.String(boundary2)})
			return err
		}, "~ iam-role-permissions-boundary " + role + " (" + boundary2 + " -> " + boundary + ")", []string{"IAM:PutRolePermissionsBoundary x1"}},
		{"boundary removed", func() error {
			_, err := c.IAM.DeleteRolePermissionsBoundary(ctx, &iam.DeleteRolePermissionsBoundaryInput{RoleName: &role})
			return err
		}, "+ iam-role-permissions-boundary " + role, []string{"IAM:PutRolePermissionsBoundary x1"}},
		{"tag changed", func() error {
			_, err := c.IAM.TagRole(ctx, &iam.TagRoleInput{RoleName: &role, Tags: []iamtypes.Tag{{Key: aws.String("team"), Value: aws.String("fraud")}}})
			return err
		}, "~ iam-role-tags " + role + " (set team=payments)", []string{"IAM:TagRole x1"}},
		{"tag removed", func() error {
			_, err := c.IAM.UntagRole(ctx, &iam.UntagRoleInput{RoleName: &role, TagKeys: []string{"cost-center"}})
			return err
		}, "~ iam-role-tags " + role + " (set cost-center=42)", []string{"IAM:TagRole x1"}},
		{"tag added", func() error {
			_, err := c.IAM.TagRole(ctx, &iam.TagRoleInput{RoleName: &role, Tags: []iamtypes.Tag{{Key: aws.String("extra"), Value: aws.String("x")}}})
			return err
		}, "- iam-role-tags " + role + " (extra)", []string{"IAM:UntagRole x1"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			must(t, tc.drift)
			code, out, errOut := e.run("plan", "-f", cfg)
			if code != 2 || !strings.Contains(out, tc.plan) {
				t.Errorf("plan after drift: exit %d, want 2 with %q\n%s%s", code, tc.plan, out, errOut)
			}
			e.mustRun("apply", "-f", cfg)
			if got := e.last.AWS.Calls.Mutating(); !slices.Equal(got, tc.calls) {
				t.Errorf("apply repaired with %v, want %v", got, tc.calls)
			}
			if code, out, errOut := e.run("plan", "-f", cfg); code != 0 {
				t.Errorf("plan after repair: exit %d\n%s%s", code, out, errOut)
			}
		})
	}
	if tags := roleTags(t, c, role); tags[config.OwnerTagKey] != e.cluster || tags[roles.ServiceAccountTagKey] != "default/app" {
		t.Errorf("ownership tags lost: %v", tags)
	}

	// The same options on the command line.
	e.mustRun("bind", "team-b/app", "--policy-arn", readOnly, "--permissions-boundary", boundary, "--tag", "team=b", "--tag", "empty=")
	role = "irsa-" + e.cluster + "-team-b-app"
	got, err = c.IAM.GetRole(ctx, &iam.GetRoleInput{RoleName: &role})
	if err != nil || got.Role.PermissionsBoundary == nil || aws.ToString(got.Role.PermissionsBoundary.PermissionsBoundaryArn) != boundary {
		t.Errorf("bind --permissions-boundary: %+v %v", got, err)
	}
	if tags := roleTags(t, c, role); tags["team"] != "b" || tags["empty"] != "" || len(tags) != 5 {
		t.Errorf("bind --tag: role tags %v", tags)
	}
}

// createProvider makes an IAM OIDC provider in moto, as another cluster's irsa apply would, and returns its ARN.
func createProvider(t *testing.T, c *awsclient.Clients, issuerURL string) string {
	t.Helper()
	out, err := c.IAM.CreateOpenIDConnectProvider(context.Background(), &iam.CreateOpenIDConnectProviderInput{
		Url: aws.String(issuerURL), ClientIDList: []string{config.DefaultAudience}, ThumbprintList: []string{strings.Repeat("a", 40)},
	})
	if err != nil {
		t.Fatal(err)
	}
	return aws.ToString(out.OpenIDConnectProviderArn)
}

// quotaProxy is moto with Service Quotas answering for IAM. moto's Service Quotas knows only VPC quotas (it answers
// NoSuchResourceException for service iam, as AWS does for an account without an increase), so an account whose
// "Role trust policy length" was raised cannot be made in moto: this proxy answers GetServiceQuota iam/L-C07B4B0D
// with value and forwards every other request to moto.
func quotaProxy(t *testing.T, value int) string {
	t.Helper()
	return quotaProxyAnswering(t, func(w http.ResponseWriter) {
		w.Header().Set("Content-Type", "application/x-amz-json-1.1")
		fmt.Fprintf(w, `{"Quota":{"ServiceCode":"iam","QuotaCode":%q,"QuotaName":"Role trust policy length","Value":%d,"Adjustable":true}}`, roles.TrustPolicyLengthQuotaCode, value)
	})
}

// quotaProxyAnswering is quotaProxy with GetServiceQuota answered by answer.
func quotaProxyAnswering(t *testing.T, answer func(http.ResponseWriter)) string {
	t.Helper()
	target, _ := url.Parse(moto.URL)
	rp := httputil.NewSingleHostReverseProxy(target)
	rp.Transport = &http.Transport{TLSClientConfig: &tls.Config{RootCAs: moto.CAPool}}
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasSuffix(r.Header.Get("X-Amz-Target"), ".GetServiceQuota") {
			body, _ := io.ReadAll(r.Body)
			if !bytes.Contains(body, []byte(roles.TrustPolicyLengthQuotaCode)) {
				http.Error(w, "unexpected quota", http.StatusBadRequest)
				return
			}
			answer(w)
			return
		}
		rp.ServeHTTP(w, r)
	}))
	cert, err := tls.LoadX509KeyPair(moto.CertFile, moto.KeyFile)
	if err != nil {
		t.Fatal(err)
	}
	srv.TLS = &tls.Config{Certificates: []tls.Certificate{cert}}
	srv.StartTLS()
	t.Cleanup(srv.Close)
	return srv.URL
}

// One role, several clusters: the trust policy gets one statement per provider; IAM's length quota is checked before
// any write on the policy as IAM counts it (no white space): 2,048 characters pass, 2,049 are refused with the limit
// and the way out, an account with a raised quota (read from Service Quotas) takes more, and nothing above 4,096 is
// ever accepted.
func TestTrustPolicyLengthLimit(t *testing.T) {
	e := newEnv(t)
	c := clients(t)
	ctx := context.Background()
	e.mustRun("apply")
	account, _ := c.AccountID(ctx)
	own := roles.Provider{ARN: fmt.Sprintf("arn:aws:iam::%s:oidc-provider/%s", account, documents.HostPath(e.issuer)), HostPath: documents.HostPath(e.issuer)}
	// Three other clusters, with issuer paths long enough that four statements come near 2,048 characters. Each
	// character of the third cluster's issuer path is in the policy 3 times (provider ARN, :sub and :aud keys), each
	// of the ServiceAccount's name 4 times (once per statement): the third path's length and the name's set the size
	// to the character.
	issuer := func(i, n int) string {
		return fmt.Sprintf("https://oidc-%s-%d.example.com/clusters/%s", e.cluster, i, strings.Repeat("x", n))
	}
	provider := func(iss string) roles.Provider {
		return roles.Provider{ARN: fmt.Sprintf("arn:aws:iam::%s:oidc-provider/%s", account, documents.HostPath(iss)), HostPath: documents.HostPath(iss)}
	}
	fixed := []string{issuer(0, 65), issuer(1, 65)}
	size := func(third string, sa string) int {
		return roles.PolicySize(roles.TrustPolicyFor([]roles.Provider{own, provider(fixed[0]), provider(fixed[1]), provider(third)}, "team", sa, config.DefaultAudience))
	}
	n := 60
	for (2048-size(issuer(2, n), "s"))%4 != 0 {
		n++
	}
	k := (2048 - size(issuer(2, n), "s")) / 4
	if k < 10 || k > 200 {
		t.Fatalf("test setup: the ServiceAccount name needs %d more characters", k)
	}
	refs := []string{createProvider(t, c, fixed[0]), fixed[1]} // one by ARN, one by issuer URL
	createProvider(t, c, fixed[1])
	createProvider(t, c, issuer(2, n))
	createProvider(t, c, issuer(2, n-1))
	bindArgs := func(sa, third string) []string {
		// The issuer given, not derived: behind the quota proxy the default issuer would be on the proxy's endpoint.
		args := []string{"bind", "team/" + sa, "--policy-arn", readOnly, "--issuer-url", e.issuer}
		for _, r := range append(refs, third) {
			args = append(args, "--trust-provider", r)
		}
		return args
	}
	// 2,048 characters: the name with k more characters; 2,049: one more character in the name (+4) and one fewer in
	// the third path (-3).
	under, over := "s"+strings.Repeat("a", k), "s"+strings.Repeat("a", k+1)
	if size(issuer(2, n), under) != 2048 || size(issuer(2, n-1), over) != 2049 {
		t.Fatalf("test setup: sizes %d and %d", size(issuer(2, n), under), size(issuer(2, n-1), over))
	}
	out := e.mustRun(bindArgs(under, issuer(2, n))...)
	role, err := c.IAM.GetRole(ctx, &iam.GetRoleInput{RoleName: aws.String(config.RoleNameFor(e.cluster, "team", under))})
	if err != nil {
		t.Fatalf("bind at 2048 characters: %v\n%s", err, out)
	}
	doc, _ := url.QueryUnescape(aws.ToString(role.Role.AssumeRolePolicyDocument))
	var compact bytes.Buffer
	if err := json.Compact(&compact, []byte(doc)); err != nil {
		t.Fatal(err)
	}
	if n := len([]rune(compact.String())); n != 2048 {
		t.Errorf("stored trust policy is %d characters without white space, want 2048", n)
	}
	if n := strings.Count(doc, "sts:AssumeRoleWithWebIdentity"); n != 4 {
		t.Errorf("trust policy has %d statements, want 4 (one per cluster)", n)
	}
	if code, out, errOut := e.run(bindArgs(under, issuer(2, n))...); code != 0 || len(e.last.AWS.Calls.Mutating()) != 0 {
		t.Errorf("second bind: exit %d, mutating %v\n%s%s", code, e.last.AWS.Calls.Mutating(), out, errOut)
	}

	code, stdout, errOut := e.run(bindArgs(over, issuer(2, n-1))...)
	for _, want := range []string{"is 2049 characters", "over this account's limit of 2048", `"Role trust policy length"`, roles.TrustPolicyLengthQuotaCode, "IAM's default", "request an increase", "trust fewer clusters"} {
		if code != 1 || !strings.Contains(errOut, want) {
			t.Errorf("bind at 2049 characters: exit %d, stderr lacks %q:\n%s%s", code, want, stdout, errOut)
		}
	}
	if m := e.last.AWS.Calls.Mutating(); len(m) != 0 {
		t.Errorf("refused bind made mutating calls %v", m)
	}
	if n := e.last.AWS.Calls.Snapshot()["Service Quotas:GetServiceQuota"]; n != 1 {
		t.Errorf("Service Quotas asked %d times, want once", n)
	}
	if _, err := c.IAM.GetRole(ctx, &iam.GetRoleInput{RoleName: aws.String(config.RoleNameFor(e.cluster, "team", over))}); !awsclient.IsNotFound(err) {
		t.Errorf("refused bind created the role (err %v)", err)
	}

	// Credentials without servicequotas:GetServiceQuota: IAM's default, and the error says it was assumed.
	e.endpoint = quotaProxyAnswering(t, func(w http.ResponseWriter) {
		w.Header().Set("Content-Type", "application/x-amz-json-1.1")
		w.WriteHeader(http.StatusBadRequest)
		fmt.Fprint(w, `{"__type":"AccessDeniedException","message":"not authorized to perform servicequotas:GetServiceQuota"}`)
	})
	if code, _, errOut := e.run(bindArgs(over, issuer(2, n-1))...); code != 1 || !strings.Contains(errOut, "over this account's limit of 2048") ||
		!strings.Contains(errOut, "IAM's default, assumed because Service Quotas did not answer") || !strings.Contains(errOut, "AccessDeniedException") {
		t.Errorf("bind at 2049 characters without Service Quotas: exit %d\n%s", code, errOut)
	}
	// An account whose quota was raised to 3,072 takes the 2,049-character policy, not one of 7 clusters (~3,500).
	var more []string
	for i := 3; i < 10; i++ {
		more = append(more, createProvider(t, c, issuer(i, 65)))
	}
	e.endpoint = quotaProxy(t, 3072)
	e.mustRun(bindArgs(over, issuer(2, n-1))...)
	if code, _, errOut := e.run(append(bindArgs("seven", issuer(2, n)), "--trust-provider", more[0], "--trust-provider", more[1], "--trust-provider", more[2])...); code != 1 ||
		!strings.Contains(errOut, "over this account's limit of 3072") || !strings.Contains(errOut, "this account's value, read from Service Quotas") {
		t.Errorf("bind of 7 clusters with a 3072 quota: exit %d\n%s", code, errOut)
	}
	// Above IAM's maximum, no quota helps; Service Quotas is not even asked.
	e.endpoint = quotaProxy(t, 4096)
	args := bindArgs("ten", issuer(2, n))
	for _, r := range more {
		args = append(args, "--trust-provider", r)
	}
	if code, _, errOut := e.run(args...); code != 1 || !strings.Contains(errOut, "over the 4096 that IAM allows even with a raised quota") || !strings.Contains(errOut, "11 trusted providers") {
		t.Errorf("bind above 4096 characters: exit %d\n%s", code, errOut)
	}
	if n := e.last.AWS.Calls.Snapshot()["Service Quotas:GetServiceQuota"]; n != 0 {
		t.Errorf("Service Quotas asked %d times for a policy above IAM's maximum", n)
	}
}

// bind --role-arn binds a role irsa does not own: irsa adds only its own trust statement (named by its Sid) and the
// ServiceAccount annotation, a second bind changes nothing, and unbind removes exactly those, never the role, its
// other statements, its policies or its tags.
func TestBindExistingRole(t *testing.T) {
	e := newEnv(t)
	c := clients(t)
	ctx := context.Background()
	kube := kubeapiserver.Start(t, kubeapiserver.Options{Issuer: e.issuer})
	cluster := []string{"--kubeconfig", kube.Kubeconfig, "--cluster-type", "external"}
	e.mustRun(append([]string{"apply", "--only", "issuer,provider"}, cluster...)...)
	theirs := `{"Version":"2012-10-17","Statement":[{"Sid":"Ec2","Effect":"Allow","Principal":{"Service":"ec2.amazonaws.com"},"Action":"sts:AssumeRole"}]}`
	name := "shared-" + e.cluster
	out, err := c.IAM.CreateRole(ctx, &iam.CreateRoleInput{RoleName: &name, Path: aws.String("/platform/"), AssumeRolePolicyDocument: &theirs,
		Tags: []iamtypes.Tag{{Key: aws.String("owner"), Value: aws.String("platform")}}})
	if err != nil {
		t.Fatal(err)
	}
	roleARN := aws.ToString(out.Role.Arn)
	if _, err := c.IAM.AttachRolePolicy(ctx, &iam.AttachRolePolicyInput{RoleName: &name, PolicyArn: aws.String(readOnly)}); err != nil {
		t.Fatal(err)
	}
	stdout := e.mustRun(append([]string{"bind", "team-a/app", "--role-arn", roleARN, "--create-service-account"}, cluster...)...)
	if !strings.Contains(stdout, "team-a/app is bound to "+roleARN) {
		t.Errorf("bind --role-arn output:\n%s", stdout)
	}
	sa, err := kube.Client.CoreV1().ServiceAccounts("team-a").Get(ctx, "app", metav1.GetOptions{})
	if err != nil || sa.Annotations[config.RoleARNAnnotation] != roleARN {
		t.Fatalf("ServiceAccount annotation: %v %v", sa, err)
	}
	trustDoc := func() string {
		r, err := c.IAM.GetRole(ctx, &iam.GetRoleInput{RoleName: &name})
		if err != nil {
			t.Fatalf("the role is gone: %v", err)
		}
		d, _ := url.QueryUnescape(aws.ToString(r.Role.AssumeRolePolicyDocument))
		return d
	}
	doc := trustDoc()
	sid := roles.BindingSid(e.cluster, "team-a", "app") + "P0"
	if !strings.Contains(doc, `"Ec2"`) || !strings.Contains(doc, sid) || !strings.Contains(doc, "system:serviceaccount:team-a:app") {
		t.Errorf("trust policy after bind --role-arn:\n%s", doc)
	}
	e.mustRun(append([]string{"bind", "team-a/app", "--role-arn", roleARN, "--create-service-account"}, cluster...)...)
	if m := e.last.AWS.Calls.Mutating(); len(m) != 0 {
		t.Errorf("second bind --role-arn made mutating calls %v", m)
	}
	if m := e.last.Cluster.Requests.Writes(); len(m) != 0 {
		t.Errorf("second bind --role-arn made cluster writes %v", m)
	}

	// irsa bindings finds it on the ServiceAccount, with the role's own policies.
	var listed []struct {
		ServiceAccount string
		Sources        []string
		Role           struct {
			ARN         string
			OwnedByIrsa bool
			Policies    []string
		}
		TrustedProviders []string
		Checks           struct{ ServiceAccount, Role, Trust string }
		Agree            bool
	}
	if err := json.Unmarshal([]byte(e.mustRun(append([]string{"bindings", "-o", "json"}, cluster...)...)), &listed); err != nil {
		t.Fatal(err)
	}
	if len(listed) != 1 || listed[0].ServiceAccount != "team-a/app" || !slices.Equal(listed[0].Sources, []string{"cluster"}) || listed[0].Role.ARN != roleARN ||
		listed[0].Role.OwnedByIrsa || !slices.Equal(listed[0].Role.Policies, []string{readOnly}) || !listed[0].Agree || len(listed[0].TrustedProviders) != 1 {
		t.Errorf("irsa bindings: %+v", listed)
	}

	e.mustRun(append([]string{"unbind", "team-a/app", "--role-arn", roleARN, "--yes"}, cluster...)...)
	if d := trustDoc(); !documents.SameJSON(d, theirs) {
		t.Errorf("after unbind the trust policy is\n%s\nwant the role's own\n%s", d, theirs)
	}
	// teardown finds a role bound with --role-arn by the ServiceAccount's annotation, and leaves the role. (Another
	// namespace: unbind deleted team-a, which irsa made, and without a controller-manager it stays terminating.)
	e.mustRun(append([]string{"bind", "team-c/app", "--role-arn", roleARN, "--create-service-account"}, cluster...)...)
	if d := trustDoc(); !strings.Contains(d, "system:serviceaccount:team-c:app") {
		t.Errorf("bind team-c/app: trust policy\n%s", d)
	}
	e.mustRun(append([]string{"teardown", "--only", "bindings", "--yes"}, cluster...)...)
	if d := trustDoc(); !documents.SameJSON(d, theirs) {
		t.Errorf("after teardown the trust policy is\n%s\nwant the role's own\n%s", d, theirs)
	}
	att, _ := c.IAM.ListAttachedRolePolicies(ctx, &iam.ListAttachedRolePoliciesInput{RoleName: &name})
	if len(att.AttachedPolicies) != 1 || roleTags(t, c, name)["owner"] != "platform" {
		t.Errorf("unbind touched the role's policies or tags: %+v %v", att.AttachedPolicies, roleTags(t, c, name))
	}
	if _, err := kube.Client.CoreV1().ServiceAccounts("team-a").Get(ctx, "app", metav1.GetOptions{}); err == nil {
		t.Errorf("unbind left the ServiceAccount irsa created")
	}
}

// bind with a config file in use does not rewrite the file: it says that a binding the file does not list lives only
// in AWS and the cluster, and prints the entry to add; a binding the file lists as given gets no note.
func TestBindSaysWhereTheBindingLives(t *testing.T) {
	e := newEnv(t)
	cfg := writeIrsaYAML(t, "apiVersion: "+config.APIVersion+"\nkind: Config\nbindings:\n- namespace: default\n  serviceAccount: listed\n  policyARNs: ["+readOnly+"]\n")
	before, _ := os.ReadFile(cfg)
	e.mustRun("apply", "-f", cfg)
	out := e.mustRun("bind", "default/other", "--policy-arn", readOnly, "--tag", "team=a", "-f", cfg)
	for _, want := range []string{"does not list this binding: it lives only in AWS and the cluster", "  - namespace: default", "    serviceAccount: other", "      team: a"} {
		if !strings.Contains(out, want) {
			t.Errorf("bind with -f of an unlisted binding: output lacks %q:\n%s", want, out)
		}
	}
	if out := e.mustRun("bind", "default/listed", "--policy-arn", readOnly, "-f", cfg); strings.Contains(out, "note:") {
		t.Errorf("bind of the file's own binding printed a note:\n%s", out)
	}
	if out := e.mustRun("bind", "default/listed", "--policy-arn", boundary2, "-f", cfg); !strings.Contains(out, "binds this service account differently") {
		t.Errorf("bind of a listed service account with other policies:\n%s", out)
	}
	var res struct {
		ConfigFile   string
		InConfigFile bool
	}
	if err := json.Unmarshal([]byte(e.mustRun("bind", "default/other", "--policy-arn", readOnly, "-f", cfg, "-o", "json")), &res); err != nil || res.ConfigFile != cfg || res.InConfigFile {
		t.Errorf("bind -o json: %+v %v", res, err)
	}
	if after, _ := os.ReadFile(cfg); !bytes.Equal(before, after) {
		t.Errorf("bind rewrote %s", cfg)
	}
}

// irsa bindings lists configured bindings, roles irsa made and ServiceAccounts it annotated, with the role's policies
// and three checks; a wrong annotation or a trust policy that no longer admits the ServiceAccount is a disagreement
// (exit 2); without a cluster the ServiceAccount is not checked.
func TestBindingsCommand(t *testing.T) {
	e := newEnv(t)
	c := clients(t)
	ctx := context.Background()
	kube := kubeapiserver.Start(t, kubeapiserver.Options{Issuer: e.issuer})
	cluster := []string{"--kubeconfig", kube.Kubeconfig, "--cluster-type", "external"}
	cfg := writeIrsaYAML(t, "bindings:\n- namespace: default\n  serviceAccount: app\n  createServiceAccount: true\n  policyARNs: ["+readOnly+"]\n")
	e.mustRun(append([]string{"apply", "-f", cfg, "--only", "issuer,provider,bindings"}, cluster...)...)
	e.mustRun(append([]string{"bind", "team-b/worker", "--policy-arn", boundary2, "--create-service-account"}, cluster...)...)

	type listed struct {
		ServiceAccount string
		Sources        []string
		Role           struct {
			ARN      string
			Policies []string
		}
		Checks struct{ ServiceAccount, Role, Trust string }
		Agree  bool
	}
	list := func(wantCode int, args ...string) map[string]listed {
		t.Helper()
		code, out, errOut := e.run(append([]string{"bindings", "-f", cfg, "-o", "json"}, args...)...)
		if code != wantCode {
			t.Fatalf("irsa bindings: exit %d, want %d\n%s%s", code, wantCode, out, errOut)
		}
		var l []listed
		if err := json.Unmarshal([]byte(out), &l); err != nil {
			t.Fatalf("irsa bindings -o json: %v\n%s", err, out)
		}
		m := map[string]listed{}
		for _, b := range l {
			m[b.ServiceAccount] = b
		}
		return m
	}
	got := list(0, cluster...)
	if app := got["default/app"]; !slices.Equal(app.Sources, []string{"config", "aws", "cluster"}) || !app.Agree || !slices.Equal(app.Role.Policies, []string{readOnly}) {
		t.Errorf("default/app: %+v", app)
	}
	if w := got["team-b/worker"]; !slices.Equal(w.Sources, []string{"aws", "cluster"}) || !w.Agree || !slices.Equal(w.Role.Policies, []string{boundary2}) {
		t.Errorf("team-b/worker: %+v", w)
	}
	if len(got) != 2 {
		t.Errorf("irsa bindings listed %d bindings, want 2: %+v", len(got), got)
	}
	if out := e.mustRun(append([]string{"bindings", "-f", cfg}, cluster...)...); !strings.Contains(out, "2 binding(s), all agree") || !strings.Contains(out, "role:      arn:aws:iam::") {
		t.Errorf("irsa bindings text:\n%s", out)
	}

	// Disagreements: the ServiceAccount names another role; the worker's trust admits another ServiceAccount; the
	// configured role lost its policy.
	sa, err := kube.Client.CoreV1().ServiceAccounts("default").Get(ctx, "app", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	sa.Annotations[config.RoleARNAnnotation] = "arn:aws:iam::123456789012:role/elsewhere"
	if _, err := kube.Client.CoreV1().ServiceAccounts("default").Update(ctx, sa, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	worker := config.RoleNameFor(e.cluster, "team-b", "worker")
	account, _ := c.AccountID(ctx)
	other := roles.TrustPolicy(fmt.Sprintf("arn:aws:iam::%s:oidc-provider/%s", account, documents.HostPath(e.issuer)), e.issuer, "team-b", "someone-else", config.DefaultAudience)
	must(t, func() error {
		_, err := c.IAM.UpdateAssumeRolePolicy(ctx, &iam.UpdateAssumeRolePolicyInput{RoleName: &worker, PolicyDocument: &other})
		return err
	})
	app := config.RoleNameFor(e.cluster, "default", "app")
	must(t, func() error {
		_, err := c.IAM.DetachRolePolicy(ctx, &iam.DetachRolePolicyInput{RoleName: &app, PolicyArn: aws.String(readOnly)})
		return err
	})
	got = list(ExitDisagree, cluster...)
	if a := got["default/app"]; a.Agree || a.Checks.ServiceAccount != "annotated with another role: arn:aws:iam::123456789012:role/elsewhere" ||
		!strings.Contains(a.Checks.Role, "create iam-role-policy-attachment "+readOnly) {
		t.Errorf("default/app after drift: %+v", a)
	}
	if w := got["team-b/worker"]; w.Agree || !strings.HasPrefix(w.Checks.Trust, "does not admit team-b/worker's tokens from this cluster's provider") || w.Checks.ServiceAccount != "ok" {
		t.Errorf("team-b/worker after drift: %+v", w)
	}
	// Without a cluster: configured and AWS bindings, the ServiceAccount not checked.
	got = list(ExitDisagree)
	if a := got["default/app"]; !slices.Equal(a.Sources, []string{"config", "aws"}) || a.Checks.ServiceAccount != "not checked: no cluster" {
		t.Errorf("default/app without a cluster: %+v", a)
	}
	if n := e.last.AWS.Calls.Mutating(); len(n) != 0 {
		t.Errorf("irsa bindings made mutating calls %v", n)
	}
}

// One role, several clusters, as two irsa users run it: cluster A's binding trusts cluster B's provider; cluster B binds
// A's role by its ARN, which irsa only checks (its trust must admit B's tokens of the ServiceAccount) and never
// changes, and annotates B's ServiceAccount. Before A trusts B, B's bind is refused with the way out.
func TestOneRoleTwoClusters(t *testing.T) {
	a, b := newEnv(t), newEnv(t)
	c := clients(t)
	ctx := context.Background()
	a.mustRun("apply")
	b.mustRun("apply")
	kube := kubeapiserver.Start(t, kubeapiserver.Options{Issuer: b.issuer})
	clusterB := []string{"--kubeconfig", kube.Kubeconfig, "--cluster-type", "external"}
	account, _ := c.AccountID(ctx)
	providerB := fmt.Sprintf("arn:aws:iam::%s:oidc-provider/%s", account, documents.HostPath(b.issuer))

	a.mustRun("bind", "team/app", "--policy-arn", readOnly)
	roleA := fmt.Sprintf("arn:aws:iam::%s:role/irsa/%s/%s", account, a.cluster, config.RoleNameFor(a.cluster, "team", "app"))
	code, _, errOut := b.run(append([]string{"bind", "team/app", "--role-arn", roleA, "--create-service-account"}, clusterB...)...)
	if code != 1 || !strings.Contains(errOut, fmt.Sprintf("in cluster %q, add %s to the binding's trustProviders", a.cluster, providerB)) {
		t.Errorf("B binds A's role before A trusts B: exit %d\n%s", code, errOut)
	}
	if m := b.last.AWS.Calls.Mutating(); len(m) != 0 {
		t.Errorf("refused bind made mutating calls %v", m)
	}

	a.mustRun("bind", "team/app", "--policy-arn", readOnly, "--trust-provider", b.issuer)
	b.mustRun(append([]string{"bind", "team/app", "--role-arn", roleA, "--create-service-account"}, clusterB...)...)
	if m := b.last.AWS.Calls.Mutating(); len(m) != 0 {
		t.Errorf("B's bind of A's role changed IAM: %v", m)
	}
	sa, err := kube.Client.CoreV1().ServiceAccounts("team").Get(ctx, "app", metav1.GetOptions{})
	if err != nil || sa.Annotations[config.RoleARNAnnotation] != roleA {
		t.Fatalf("B's ServiceAccount: %v %v", sa, err)
	}
	a.mustRun("bind", "team/app", "--policy-arn", readOnly, "--trust-provider", b.issuer)
	if m := a.last.AWS.Calls.Mutating(); len(m) != 0 {
		t.Errorf("A's role drifted after B's bind: A's bind made %v", m)
	}
	out := b.mustRun(append([]string{"bindings"}, clusterB...)...)
	if !strings.Contains(out, "team/app (cluster)") || !strings.Contains(out, "role:      "+roleA+" (irsa cluster "+a.cluster+"'s: checked, never changed)") || !strings.Contains(out, "1 binding(s), all agree") {
		t.Errorf("B's irsa bindings:\n%s", out)
	}
	b.mustRun(append([]string{"unbind", "team/app", "--role-arn", roleA, "--yes"}, clusterB...)...)
	if m := b.last.AWS.Calls.Mutating(); len(m) != 0 {
		t.Errorf("B's unbind of A's role changed IAM: %v", m)
	}
	if _, err := c.IAM.GetRole(ctx, &iam.GetRoleInput{RoleName: aws.String(config.RoleNameFor(a.cluster, "team", "app"))}); err != nil {
		t.Errorf("B's unbind removed A's role: %v", err)
	}
}
