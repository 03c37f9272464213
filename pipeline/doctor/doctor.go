// Package doctor checks a live IRSA setup link by link — apiserver, published issuer, IAM provider, webhook,
// ServiceAccount, role and a real token — and says for each failed link what to do, in one sentence.
package doctor

import (
	"context"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/arn"
	"github.com/aws/aws-sdk-go-v2/service/iam"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/irsa-anywhere/irsa/pipeline/apiserver"
	"github.com/irsa-anywhere/irsa/pipeline/awsclient"
	"github.com/irsa-anywhere/irsa/pipeline/config"
	"github.com/irsa-anywhere/irsa/pipeline/documents"
	"github.com/irsa-anywhere/irsa/pipeline/issuer"
	"github.com/irsa-anywhere/irsa/pipeline/issuer/cloudfront"
	"github.com/irsa-anywhere/irsa/pipeline/issuer/s3public"
	"github.com/irsa-anywhere/irsa/pipeline/stsgate"
	"github.com/irsa-anywhere/irsa/pipeline/trust"
)

// Check is one line of the checklist.
type Check struct {
	Name string `json:"name"`
	OK   bool   `json:"ok"`
	// Info marks a line that is reported but never fails the checklist.
	Info    bool   `json:"info,omitempty"`
	Message string `json:"message"`
	Fix     string `json:"fix,omitempty"`
}

// Report is the checklist.
type Report struct {
	Checks []Check `json:"checks"`
	OK     bool    `json:"ok"`
}

// Inputs are what the doctor looks at.
type Inputs struct {
	IssuerURL, Audience, Bucket, Region string
	ProviderARN                         string
	S3                                  *s3.Client
	IAM                                 *iam.Client
	// Verifier fetches the published documents anonymously, as STS does.
	Verifier *trust.Verifier
	// Cluster is nil when no cluster is configured; the cluster checks then fail with that reason.
	Cluster kubernetes.Interface
	// Namespace and ServiceAccount select the ServiceAccount to check; empty skips those checks.
	Namespace, ServiceAccount string
	// AssumeRole, when set (--live), calls AssumeRoleWithWebIdentity for real.
	AssumeRole                    func(ctx context.Context, roleARN, token string) error
	WebhookNamespace, WebhookName string
	Now                           func() time.Time
	// Pods also checks the running pods of every ServiceAccount irsa bound (doctor --pods).
	Pods bool
	// Ownership, when set, makes the ownership checks apply, plan and teardown make (bucket and provider tags; for
	// roleARN, when not empty, the role's tag, IAM path and the ServiceAccount it serves) and returns one error per
	// object apply would refuse to manage.
	Ownership func(ctx context.Context, roleARN string) []error
	// KMSDefault, when set, returns the issuer bucket's default encryption when it is a KMS key.
	KMSDefault func(ctx context.Context) (string, error)
	// CloudFront is the host of cloudfront hosting (nil for s3-public): its lines replace the bucket's
	// (cloudfront.go). HTTPClient fetches the documents for them; nil means http.DefaultClient.
	CloudFront *cloudfront.Host
	HTTPClient *http.Client
}

type doctor struct {
	in  Inputs
	rep *Report
	// gathered along the way
	issuer      *trust.Issuer
	provider    *trust.Provider
	roleARN     string
	trustPolicy string
}

func (d *doctor) add(c Check) { d.rep.Checks = append(d.rep.Checks, c) }

func (d *doctor) pass(name, msg string) { d.add(Check{Name: name, OK: true, Message: msg}) }

func (d *doctor) fail(name, msg, fix string) { d.add(Check{Name: name, Message: msg, Fix: fix}) }

// Run runs every check it can and returns the checklist; it never stops at the first failure.
func Run(ctx context.Context, in Inputs) *Report {
	if in.Now == nil {
		in.Now = time.Now
	}
	if in.WebhookNamespace == "" {
		in.WebhookNamespace = config.WebhookNamespace
	}
	if in.WebhookName == "" {
		in.WebhookName = config.WebhookName
	}
	d := &doctor{in: in, rep: &Report{}}
	d.servedIssuer(ctx)
	d.kubeadmConfig(ctx)
	d.published(ctx)
	d.servedKeysPublished(ctx)
	if in.CloudFront != nil {
		d.cloudFrontChecks(ctx)
	} else {
		d.bucketPrivate(ctx)
	}
	d.providerChecks(ctx)
	if in.CloudFront != nil {
		d.providerURL()
	}
	d.webhookChecks(ctx)
	if in.Namespace != "" {
		d.serviceAccountChecks(ctx)
	}
	if in.Pods {
		d.podChecks(ctx)
	}
	d.ownership(ctx)
	d.bucketEncryption(ctx)
	d.rep.OK = true
	for _, c := range d.rep.Checks {
		if !c.OK && !c.Info {
			d.rep.OK = false
		}
	}
	return d.rep
}

func (d *doctor) servedIssuer(ctx context.Context) {
	const name = "apiserver issuer"
	if d.in.Cluster == nil {
		d.fail(name, "no cluster configured", "give --kubeconfig so the apiserver can be checked")
		return
	}
	served, err := apiserver.ServedIssuer(ctx, d.in.Cluster)
	if err != nil {
		d.fail(name, err.Error(), "check that the cluster is reachable and that you may GET /.well-known/openid-configuration")
		return
	}
	if served != d.in.IssuerURL {
		d.fail(name, fmt.Sprintf("the apiserver issues tokens for %q, the published issuer is %q", served, d.in.IssuerURL),
			"run `irsa apply --only apiserver` so the apiserver's first --service-account-issuer is the published issuer")
		return
	}
	d.pass(name, "the apiserver issues tokens for "+served)
}

func (d *doctor) published(ctx context.Context) {
	const name = "published documents"
	iss, res := d.in.Verifier.Discover(ctx, d.in.IssuerURL)
	if res != nil && !res.OK() {
		step := res.Failed()
		msg, fix := res.Message, "run `irsa apply --only issuer` to publish the discovery document and the JWKS"
		if step != nil {
			msg = step.Message
			if step.Fix != "" {
				fix = step.Fix
			}
		}
		d.fail(name, msg, fix)
		return
	}
	d.issuer = iss
	d.pass(name, fmt.Sprintf("discovery document and JWKS (%d keys) are readable anonymously; issuer field %q", len(iss.Keys), iss.DiscoveryIssuer))
}

func (d *doctor) servedKeysPublished(ctx context.Context) {
	const name = "signing keys published"
	if d.in.Cluster == nil || d.issuer == nil {
		d.fail(name, "cannot compare: no cluster or no published JWKS", "fix the lines above first")
		return
	}
	served, err := apiserver.ServedKeys(ctx, d.in.Cluster)
	if err != nil {
		d.fail(name, err.Error(), "check that you may GET /openid/v1/jwks on the apiserver")
		return
	}
	published := map[string]bool{}
	for _, k := range d.issuer.Keys {
		published[k.KeyID] = true
	}
	var missing []string
	for _, k := range served.Keys {
		if !published[k.KeyID] {
			missing = append(missing, k.KeyID)
		}
	}
	if len(missing) > 0 {
		d.fail(name, fmt.Sprintf("the apiserver signs with key(s) %s that the published JWKS lacks", strings.Join(missing, ", ")),
			"run `irsa apply --only issuer` to publish the keys the apiserver serves")
		return
	}
	d.pass(name, fmt.Sprintf("all %d key(s) the apiserver serves are published with the same kid", len(served.Keys)))
}

func (d *doctor) bucketPrivate(ctx context.Context) {
	const name = "bucket not listable"
	if d.in.S3 == nil || d.in.Bucket == "" {
		return
	}
	out, err := d.in.S3.GetBucketPolicy(ctx, &s3.GetBucketPolicyInput{Bucket: &d.in.Bucket})
	if err != nil {
		d.fail(name, fmt.Sprintf("read policy of bucket %q: %v", d.in.Bucket, err), "run `irsa apply --only issuer`")
		return
	}
	disc, jwks := issuer.ObjectKeys(d.in.IssuerURL, d.in.Bucket)
	want := s3public.BucketPolicy(awsclient.Partition(d.in.Region), d.in.Bucket, disc, jwks)
	if !documents.SameJSON(aws.ToString(out.Policy), want) {
		d.fail(name, fmt.Sprintf("the policy of bucket %q is not irsa's: it may grant more than GetObject on the two documents", d.in.Bucket),
			"run `irsa apply --only issuer` to put back the policy that exposes only the two documents")
		return
	}
	d.pass(name, "anonymous access is limited to GetObject on the two documents: the bucket cannot be listed")
}

// ownership fails when apply would refuse to manage the bucket, the provider or the ServiceAccount's role: the same
// check, so doctor never calls healthy what apply cannot repair.
func (d *doctor) ownership(ctx context.Context) {
	const name = "owned by irsa"
	if d.in.Ownership == nil {
		return
	}
	errs := d.in.Ownership(ctx, d.roleARN)
	if len(errs) == 0 {
		what := "the issuer bucket and the IAM provider are"
		if d.roleARN != "" {
			what = "the issuer bucket, the IAM provider and the role are"
		}
		d.pass(name, what+" this cluster's (or missing, for apply to make)")
		return
	}
	var msgs []string
	for _, err := range errs {
		msgs = append(msgs, err.Error())
	}
	d.fail(name, strings.Join(msgs, "; "), "apply refuses to change these: tag them for this cluster if they are its, or configure other names")
}

// bucketEncryption reports a KMS default encryption on the issuer bucket: irsa writes its documents with SSE-S3,
// which overrides it, but a document written there by anything else is encrypted with the KMS key, and S3 answers
// anonymous GETs of it (STS's) with 403.
func (d *doctor) bucketEncryption(ctx context.Context) {
	const name = "bucket encryption"
	if d.in.KMSDefault == nil {
		return
	}
	alg, err := d.in.KMSDefault(ctx)
	switch {
	case err != nil:
		d.add(Check{Name: name, Info: true, Message: err.Error()})
	case alg != "":
		d.add(Check{Name: name, Info: true, OK: true, Message: fmt.Sprintf("bucket %q encrypts new objects with %s by default; irsa writes its documents with SSE-S3, because STS reads them anonymously and S3 refuses anonymous reads of KMS-encrypted objects", d.in.Bucket, alg),
			Fix: "if the published documents fail above, run `irsa apply --only issuer` to rewrite them with SSE-S3"})
	}
}

func (d *doctor) providerChecks(ctx context.Context) {
	const name = "IAM provider"
	out, err := d.in.IAM.GetOpenIDConnectProvider(ctx, &iam.GetOpenIDConnectProviderInput{OpenIDConnectProviderArn: &d.in.ProviderARN})
	if err != nil {
		d.fail(name, fmt.Sprintf("read %s: %v", d.in.ProviderARN, err), "run `irsa apply --only provider`")
		return
	}
	d.provider = &trust.Provider{URL: aws.ToString(out.Url), ARN: d.in.ProviderARN, ClientIDs: out.ClientIDList, Thumbprints: out.ThumbprintList}
	if !slices.Contains(out.ClientIDList, d.in.Audience) {
		d.fail(name, fmt.Sprintf("client IDs %v lack the webhook's audience %q", out.ClientIDList, d.in.Audience),
			"run `irsa apply --only provider` to add the audience as a client ID")
	} else {
		d.pass(name, fmt.Sprintf("%s trusts %s with client ID %s", d.in.ProviderARN, d.provider.IssuerURL(), d.in.Audience))
	}
	d.thumbprint(out.ThumbprintList)
}

// thumbprint fails exactly when STS would refuse the issuer's certificate: it does not chain to a CA IAM trusts and
// the provider's thumbprints lack the top certificate of the chain the JWKS host serves (trust.Issuer.ThumbprintOK).
func (d *doctor) thumbprint(list []string) {
	const name = "thumbprint"
	switch {
	case d.issuer == nil:
		d.fail(name, "cannot check the thumbprints without the published documents", "fix the published documents line first")
	case d.issuer.Thumbprint == "":
		d.pass(name, "the issuer is not served over TLS: no certificate to check")
	case !d.issuer.ThumbprintRequired:
		d.pass(name, fmt.Sprintf("the issuer's certificate chains to a CA IAM trusts: STS does not consult the provider's thumbprints (%s)", strings.Join(list, ", ")))
	case d.issuer.ThumbprintOK(list):
		d.pass(name, fmt.Sprintf("the issuer's certificate chains to a CA IAM does not trust, and the provider's thumbprints include its top certificate's %s", d.issuer.Thumbprint))
	default:
		d.fail(name, fmt.Sprintf("the issuer's certificate chains to a CA IAM does not trust, and the provider's thumbprints [%s] lack its top certificate's %s: STS answers InvalidIdentityToken (%s)",
			strings.Join(list, ", "), d.issuer.Thumbprint, trust.MessageThumbprint),
			"run `irsa apply --only provider` to set the thumbprint, or serve the issuer with a certificate from a CA IAM trusts")
	}
}

func (d *doctor) webhookChecks(ctx context.Context) {
	const name = "webhook"
	if d.in.Cluster == nil {
		d.fail(name, "no cluster configured", "give --kubeconfig")
		return
	}
	ns, n := d.in.WebhookNamespace, d.in.WebhookName
	dep, err := d.in.Cluster.AppsV1().Deployments(ns).Get(ctx, n, metav1.GetOptions{})
	if err != nil {
		d.fail(name, fmt.Sprintf("deployment %s/%s: %v", ns, n, err), "run `irsa apply --only webhook`")
		return
	}
	want := int32(1)
	if dep.Spec.Replicas != nil {
		want = *dep.Spec.Replicas
	}
	if dep.Status.AvailableReplicas < 1 {
		d.fail(name, fmt.Sprintf("deployment %s/%s has %d/%d replicas available", ns, n, dep.Status.AvailableReplicas, want),
			fmt.Sprintf("look at `kubectl -n %s describe deployment %s` and its pods' events", ns, n))
	} else {
		d.pass(name, fmt.Sprintf("deployment %s/%s has %d/%d replicas available", ns, n, dep.Status.AvailableReplicas, want))
	}

	const certName = "webhook certificate"
	sec, err := d.in.Cluster.CoreV1().Secrets(ns).Get(ctx, n+"-tls", metav1.GetOptions{})
	if err != nil {
		d.fail(certName, fmt.Sprintf("secret %s/%s-tls: %v", ns, n, err), "run `irsa apply --only webhook`")
		return
	}
	cert, err := firstCert(sec.Data[corev1.TLSCertKey])
	if err != nil {
		d.fail(certName, fmt.Sprintf("secret %s/%s-tls: %v", ns, n, err), "run `irsa apply --only webhook` to issue a new one")
		return
	}
	left := cert.NotAfter.Sub(d.in.Now())
	mwc, err := d.in.Cluster.AdmissionregistrationV1().MutatingWebhookConfigurations().Get(ctx, "irsa-"+n, metav1.GetOptions{})
	if err != nil || len(mwc.Webhooks) == 0 {
		d.fail(certName, fmt.Sprintf("mutating webhook configuration irsa-%s: %v", n, err), "run `irsa apply --only webhook`")
		return
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(mwc.Webhooks[0].ClientConfig.CABundle)
	svc := n + "." + ns + ".svc"
	if _, err := cert.Verify(x509.VerifyOptions{Roots: pool, DNSName: svc, CurrentTime: d.in.Now()}); err != nil {
		d.fail(certName, fmt.Sprintf("the serving certificate does not verify against the caBundle for %s: %v", svc, err),
			"run `irsa apply --only webhook` to reissue the certificate and caBundle")
		return
	}
	if left < 30*24*time.Hour {
		d.fail(certName, fmt.Sprintf("the serving certificate expires in %d days", int(left.Hours()/24)), "run `irsa apply --only webhook` to renew it")
		return
	}
	d.pass(certName, fmt.Sprintf("serving certificate valid for %s for %d more days and signed by the caBundle", svc, int(left.Hours()/24)))
}

func (d *doctor) serviceAccountChecks(ctx context.Context) {
	ref := d.in.Namespace + "/" + d.in.ServiceAccount
	if d.in.Cluster == nil {
		d.fail("service account", "no cluster configured", "give --kubeconfig")
		return
	}
	sa, err := d.in.Cluster.CoreV1().ServiceAccounts(d.in.Namespace).Get(ctx, d.in.ServiceAccount, metav1.GetOptions{})
	if err != nil {
		d.fail("service account", fmt.Sprintf("service account %s: %v", ref, err), "run `irsa bind "+ref+" --policy-arn ARN`")
		return
	}
	d.roleARN = sa.Annotations[config.RoleARNAnnotation]
	if d.roleARN == "" {
		d.fail("service account", fmt.Sprintf("service account %s has no %s annotation", ref, config.RoleARNAnnotation), "run `irsa bind "+ref+" --policy-arn ARN`")
		return
	}
	// The webhook passes the annotation to the SDK as RoleArn unchanged; STS refuses anything but an IAM role ARN.
	if parsed, err := arn.Parse(d.roleARN); err != nil || parsed.Service != "iam" || !strings.HasPrefix(parsed.Resource, "role/") {
		d.fail("service account", fmt.Sprintf("service account %s is annotated with %q, which is not an IAM role ARN (arn:PARTITION:iam::ACCOUNT:role/NAME): STS answers ValidationError or AccessDenied", ref, d.roleARN),
			"run `irsa bind "+ref+" --policy-arn ARN` to set the annotation to the role's ARN")
		return
	}
	d.pass("service account", fmt.Sprintf("%s is annotated with %s", ref, d.roleARN))
	d.injection(ctx, ref)
	d.role(ctx, ref)
	d.token(ctx, ref)
}

func (d *doctor) injection(ctx context.Context, ref string) {
	const name = "webhook injection"
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{GenerateName: "irsa-doctor-", Namespace: d.in.Namespace},
		Spec: corev1.PodSpec{ServiceAccountName: d.in.ServiceAccount, RestartPolicy: corev1.RestartPolicyNever,
			Containers: []corev1.Container{{Name: "probe", Image: "irsa-doctor.invalid/dry-run"}}},
	}
	out, err := d.in.Cluster.CoreV1().Pods(d.in.Namespace).Create(ctx, pod, metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}})
	if err != nil {
		d.fail(name, fmt.Sprintf("server-side dry-run of a pod with %s: %v", ref, err), "check that you may create pods in "+d.in.Namespace)
		return
	}
	env := map[string]string{}
	for _, e := range out.Spec.Containers[0].Env {
		env[e.Name] = e.Value
	}
	var problems []string
	if env["AWS_ROLE_ARN"] != d.roleARN {
		problems = append(problems, fmt.Sprintf("AWS_ROLE_ARN=%q", env["AWS_ROLE_ARN"]))
	}
	if env["AWS_WEB_IDENTITY_TOKEN_FILE"] == "" {
		problems = append(problems, "no AWS_WEB_IDENTITY_TOKEN_FILE")
	}
	audience := ""
	for _, v := range out.Spec.Volumes {
		if v.Name == config.TokenVolume && v.Projected != nil {
			for _, s := range v.Projected.Sources {
				if s.ServiceAccountToken != nil {
					audience = s.ServiceAccountToken.Audience
				}
			}
		}
	}
	if audience != d.in.Audience {
		problems = append(problems, fmt.Sprintf("projected token audience %q, want %q", audience, d.in.Audience))
	}
	if len(problems) > 0 {
		d.fail(name, "a dry-run pod with "+ref+" was not mutated as expected: "+strings.Join(problems, "; "),
			"check the webhook (lines above) and that its MutatingWebhookConfiguration selects namespace "+d.in.Namespace)
		return
	}
	d.pass(name, "a dry-run pod with "+ref+" gets AWS_ROLE_ARN, AWS_WEB_IDENTITY_TOKEN_FILE and a token for "+audience)
}

func (d *doctor) role(ctx context.Context, ref string) {
	const name = "role trust policy"
	roleName := d.roleARN[strings.LastIndex(d.roleARN, "/")+1:]
	out, err := d.in.IAM.GetRole(ctx, &iam.GetRoleInput{RoleName: &roleName})
	if err != nil {
		d.fail(name, fmt.Sprintf("role %s: %v", d.roleARN, err), "run `irsa bind "+ref+" --policy-arn ARN` to create it")
		return
	}
	if got := aws.ToString(out.Role.Arn); got != d.roleARN {
		// STS looks the role up by its full ARN: a wrong path or account in the annotation is AccessDenied.
		d.fail(name, fmt.Sprintf("the annotation names %s, but the role %s is %s: STS answers AccessDenied", d.roleARN, roleName, got),
			"run `irsa bind "+ref+" --policy-arn ARN` to set the annotation to the role's exact ARN")
		return
	}
	d.trustPolicy, _ = url.QueryUnescape(aws.ToString(out.Role.AssumeRolePolicyDocument))
	prefix := trust.ConditionKeyPrefix(d.in.IssuerURL)
	dec, err := trust.EvaluateTrustPolicy(d.trustPolicy, trust.Request{
		Principal: d.in.ProviderARN, Action: trust.ActionAssumeRoleWithWebIdentity,
		Context: map[string][]string{
			prefix + ":sub": {"system:serviceaccount:" + d.in.Namespace + ":" + d.in.ServiceAccount},
			prefix + ":aud": {d.in.Audience},
		},
	})
	if err != nil {
		d.fail(name, fmt.Sprintf("trust policy of %s: %v", roleName, err), "run `irsa bind "+ref+"` to rewrite it")
		return
	}
	if !dec.Allowed {
		d.fail(name, fmt.Sprintf("the trust policy of %s does not admit %s with audience %s through %s: %s", roleName, ref, d.in.Audience, d.in.ProviderARN, dec.Reason),
			"run `irsa bind "+ref+" --policy-arn ARN` to rewrite the trust policy")
		return
	}
	d.pass(name, fmt.Sprintf("the trust policy of %s admits %s", roleName, ref))
}

func (d *doctor) token(ctx context.Context, ref string) {
	const name = "token accepted"
	if d.provider == nil || d.trustPolicy == "" {
		d.fail(name, "cannot verify a token without the provider and the role (lines above)", "fix the lines above first")
		return
	}
	exp := int64(600)
	tr, err := d.in.Cluster.CoreV1().ServiceAccounts(d.in.Namespace).CreateToken(ctx, d.in.ServiceAccount, &authenticationv1.TokenRequest{
		Spec: authenticationv1.TokenRequestSpec{Audiences: []string{d.in.Audience}, ExpirationSeconds: &exp},
	}, metav1.CreateOptions{})
	if err != nil {
		d.fail(name, fmt.Sprintf("TokenRequest for %s: %v", ref, err), "check that you may create serviceaccounts/token in "+d.in.Namespace)
		return
	}
	// The same checker as the STS gate's (pipeline/stsgate), with the request the SDK makes from the webhook's env,
	// so this line and the gate cannot disagree.
	res := stsgate.NewChecker(d.in.IAM, d.in.Verifier, -1).Check(ctx, stsgate.Request{
		RoleARN: d.roleARN, RoleSessionName: "irsa-doctor", WebIdentityToken: tr.Status.Token,
	})
	if !res.OK() {
		msg, fix := res.Code+": "+res.Message, "see the failed step"
		if s := res.Failed(); s != nil {
			msg = fmt.Sprintf("%s: %s failed: %s", res.Code, s.Name, s.Message)
			if s.Fix != "" {
				fix = s.Fix
			}
		}
		d.fail(name, "STS would refuse a fresh token of "+ref+": "+msg, fix)
		return
	}
	d.pass(name, "a fresh token of "+ref+" passes every check STS makes")
	if d.in.AssumeRole != nil {
		if err := d.in.AssumeRole(ctx, d.roleARN, tr.Status.Token); err != nil {
			d.fail("live AssumeRoleWithWebIdentity", err.Error(), "compare with the lines above; the error code names the failing link")
			return
		}
		d.pass("live AssumeRoleWithWebIdentity", "AWS STS issued credentials for "+d.roleARN)
	}
}

func firstCert(data []byte) (*x509.Certificate, error) {
	block, _ := pem.Decode(data)
	if block == nil {
		return nil, fmt.Errorf("no PEM certificate")
	}
	return x509.ParseCertificate(block.Bytes)
}
