package cli

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/iam"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/irsa-anywhere/irsa/pipeline/awsclient"
	"github.com/irsa-anywhere/irsa/pipeline/keys"
	"github.com/irsa-anywhere/irsa/pipeline/roles"
)

// Every bad input, on the command line or in irsa.yaml, exits non-zero with a message that names the value and the
// rule, and makes no mutating AWS call (counted by the SDK middleware of the clients the run built; a run refused
// before it built any makes none by construction). Afterwards moto holds no bucket, provider or role of the cluster.
func TestBadInputsMakeNoWrites(t *testing.T) {
	e := newEnv(t)
	dir := t.TempDir()
	write := func(name, content string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	pemFile := func(name, typ string, der []byte, headers map[string]string) string {
		return write(name, string(pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der, Headers: headers})))
	}
	rsa1024, _ := rsa.GenerateKey(rand.Reader, 1024)
	weakKey := pemFile("weak.key", "RSA PRIVATE KEY", x509.MarshalPKCS1PrivateKey(rsa1024), nil)
	p224, _ := ecdsa.GenerateKey(elliptic.P224(), rand.Reader)
	p224DER, _ := x509.MarshalECPrivateKey(p224)
	p224Key := pemFile("p224.key", "EC PRIVATE KEY", p224DER, nil)
	p224Pub := pemFile("p224.pub", "PUBLIC KEY", mustBytes(x509.MarshalPKIXPublicKey(&p224.PublicKey)), nil)
	encrypted := pemFile("encrypted.key", "RSA PRIVATE KEY", []byte("opaque"), map[string]string{"Proc-Type": "4,ENCRYPTED", "DEK-Info": "AES-256-CBC,00112233445566778899AABBCCDDEEFF"})
	garbage := write("garbage.pem", "not a key")
	pkcs8Encrypted := pemFile("pkcs8enc.key", "ENCRYPTED PRIVATE KEY", []byte("opaque"), nil)
	mismatched := filepath.Join(dir, "mismatched")
	other := filepath.Join(dir, "other")
	if _, _, err := keys.Generate(mismatched, false); err != nil {
		t.Fatal(err)
	}
	if _, _, err := keys.Generate(other, false); err != nil {
		t.Fatal(err)
	}
	otherPub, _ := os.ReadFile(keys.PairIn(other).PublicKeyPath)
	os.WriteFile(keys.PairIn(mismatched).PublicKeyPath, otherPub, 0o644)

	policy := "arn:aws:iam::aws:policy/ReadOnlyAccess"
	bindArgs := func(extra ...string) []string { return append([]string{"bind", "default/app"}, extra...) }
	var many []string
	for i := 0; i < 21; i++ {
		many = append(many, "--policy-arn", policy) // the quota counts attachments; the same ARN 21 times is 21
	}
	manyTags := []string{"--policy-arn", policy}
	for i := 0; i < 48; i++ {
		manyTags = append(manyTags, "--tag", fmt.Sprintf("k%d=v", i))
	}
	inline := func(name, doc string) []string { return bindArgs("--inline-policy", write(name, doc)) }
	bigStatement := `{"Effect":"Allow","Action":"s3:GetObject","Resource":"arn:aws:s3:::` + strings.Repeat("b", 36*1024) + `/*"}`
	config := func(name, yaml string) []string { return []string{"apply", "-f", write(name, yaml)} }
	longHost := "https://" + strings.Repeat("a", 60) + "." + strings.Repeat("b", 60) + "." + strings.Repeat("c", 60) + "." + strings.Repeat("d", 60) + ".example.com"

	cases := []struct {
		name string
		args []string
		want string
	}{
		// Names and places.
		{"bucket uppercase", []string{"apply", "--bucket", "Bad_Bucket"}, `bucket name "Bad_Bucket"`},
		{"bucket too short", []string{"apply", "--bucket", "ab"}, "must be 3-63 characters"},
		{"bucket ip", []string{"apply", "--bucket", "192.168.1.1"}, "IP address"},
		{"bucket dotted", []string{"apply", "--bucket", "a.b.c"}, `bucket name "a.b.c"`},
		{"bucket reserved prefix", []string{"apply", "--bucket", "xn--abc"}, "must not start with xn--"},
		{"bucket empty flag", []string{"apply", "--bucket", ""}, `--bucket "": must not be empty`},
		{"region", []string{"apply", "--region", "europe"}, `region "europe": must be an AWS region code`},
		{"region empty flag", []string{"apply", "--region", ""}, `--region "": must not be empty`},
		{"cluster name", []string{"apply", "--cluster-name", "My_Cluster"}, `cluster name "My_Cluster"`},
		{"cluster name too long", []string{"apply", "--cluster-name", strings.Repeat("c", 64)}, "must be 1-63"},
		{"cluster type", []string{"apply", "--cluster-type", "gke"}, `cluster type "gke": must be one of`},
		{"endpoint scheme", []string{"apply", "--aws-endpoint-url", "ftp://127.0.0.1:1"}, `AWS endpoint URL "ftp://127.0.0.1:1"`},
		{"output", []string{"apply", "-o", "xml"}, `output "xml": must be text, json or yaml`},
		{"image registry", []string{"apply", "--image-registry", "https://mirror.example"}, `image registry "https://mirror.example": give host[:port][/path] without a scheme`},
		{"image pull secret", []string{"apply", "--image-pull-secret", "Mirror_Creds"}, `image pull secret "Mirror_Creds"`},
		{"webhook image", []string{"apply", "--webhook-image", "Public.ecr.aws/x:"}, `webhook image "Public.ecr.aws/x:"`},
		{"only unknown stage", []string{"apply", "--only", "keys,bogus"}, `stage "bogus": unknown`},
		{"kubeconfig missing", []string{"apply", "--kubeconfig", "/nonexistent/kubeconfig"}, `kubeconfig "/nonexistent/kubeconfig"`},
		{"only a cluster stage without a cluster", []string{"apply", "--only", "webhook"}, "stage webhook needs a cluster"},
		{"ca bundle missing", []string{"apply", "--ca-bundle", "/nonexistent/ca.pem"}, `read CA bundle "/nonexistent/ca.pem"`},
		{"ca bundle garbage", []string{"apply", "--ca-bundle", garbage}, "no PEM certificate found"},
		{"lock timeout negative", []string{"apply", "--lock-timeout", "-5s"}, "--lock-timeout -5s: must not be negative"},
		{"lock timeout negative on bind", bindArgs("--policy-arn", policy, "--lock-timeout", "-1m"), "--lock-timeout -1m0s: must not be negative"},
		// Issuer URL: one rule set.
		{"issuer http", []string{"apply", "--issuer-url", "http://example.com/x"}, "must use https"},
		{"issuer hosting unknown", []string{"apply", "--issuer-hosting", "s3-private"}, `issuer.hosting "s3-private": must be one of s3-public, cloudfront`},
		{"issuer domain without cloudfront", []string{"apply", "--issuer-domain", "oidc.example.com"}, "need issuer.hosting cloudfront"},
		{"issuer domain not a name", []string{"apply", "--issuer-hosting", "cloudfront", "--issuer-domain", "oidc_example"}, `issuer.domain "oidc_example": must be a fully qualified`},
		{"cloudfront with another issuer URL", []string{"apply", "--issuer-hosting", "cloudfront", "--issuer-url", "https://example.com/x"}, "the issuer is the distribution's https://DOMAIN.cloudfront.net"},
		{"cloudfront domain and issuer URL disagree", []string{"apply", "--issuer-hosting", "cloudfront", "--issuer-domain", "oidc.example.com", "--issuer-url", "https://example.com"}, "the issuer is https://oidc.example.com"},
		{"issuer trailing slash", []string{"apply", "--issuer-url", "https://example.com/x/"}, "must not end with '/'"},
		{"issuer query", []string{"apply", "--issuer-url", "https://example.com/x?a=b"}, "must not have a query"},
		{"issuer fragment", []string{"apply", "--issuer-url", "https://example.com/x#f"}, "must not have a fragment"},
		{"issuer empty host", []string{"apply", "--issuer-url", "https://:443/x"}, `issuer URL "https://:443/x": must have a host`},
		{"issuer port 0", []string{"apply", "--issuer-url", "https://example.com:0/x"}, `port "0": must be 1-65535`},
		{"issuer port 99999", []string{"apply", "--issuer-url", "https://example.com:99999/x"}, `port "99999": must be 1-65535`},
		{"issuer non-ASCII host", []string{"apply", "--issuer-url", "https://exämple.com/x"}, "xn-- form"},
		{"issuer uppercase host", []string{"apply", "--issuer-url", "https://Example.com/x"}, "host must be lowercase"},
		{"issuer user info", []string{"apply", "--issuer-url", "https://u:p@example.com/x"}, "must not carry user info"},
		{"issuer space", []string{"apply", "--issuer-url", "https://example.com/a b"}, "without spaces"},
		{"issuer percent", []string{"apply", "--issuer-url", "https://example.com/a%20b"}, `path segment "a b"`},
		{"issuer dot segment", []string{"apply", "--issuer-url", "https://example.com/a/../b"}, `path segment ".."`},
		{"issuer empty segment", []string{"apply", "--issuer-url", "https://example.com/a//b"}, "empty segment"},
		{"issuer underscore host", []string{"apply", "--issuer-url", "https://ex_ample.com/x"}, `host "ex_ample.com"`},
		{"issuer too long", []string{"apply", "--issuer-url", longHost}, "IAM allows at most 255"},
		// Provider.
		{"thumbprint", []string{"apply", "--thumbprint", "abc"}, `thumbprint "abc": must be 40 hexadecimal digits`},
		{"six thumbprints", []string{"apply", "--thumbprint", strings.TrimSuffix(strings.Repeat(strings.Repeat("a", 40)+",", 1)+strings.Repeat("b", 40)+","+strings.Repeat("c", 40)+","+strings.Repeat("d", 40)+","+strings.Repeat("e", 40)+","+strings.Repeat("f", 40), ",")}, "6 given, an IAM OIDC provider holds at most 5"},
		{"duplicate thumbprint", []string{"apply", "--thumbprint", strings.Repeat("a", 40) + "," + strings.Repeat("A", 40)}, "listed twice"},
		{"audience empty flag", []string{"apply", "--audience", ""}, `--audience "": must not be empty`},
		{"audience control character", []string{"apply", "--audience", "sts\x01aws"}, `audience "sts\x01aws"`},
		{"audience comma", []string{"apply", "--audience", "a,b"}, `audience "a,b"`},
		{"audience too long", []string{"apply", "--audience", strings.Repeat("a", 256)}, "must be 1-255 printable characters"},
		// Keys.
		{"signing key unreadable", []string{"apply", "--signing-key", "/nonexistent/sa.key"}, `signing key "/nonexistent/sa.key"`},
		{"signing key garbage", []string{"apply", "--signing-key", garbage}, "no PEM private key block"},
		{"signing key RSA-1024", []string{"apply", "--signing-key", weakKey}, "must be RSA of at least 2048 bits"},
		{"signing key EC P-224", []string{"apply", "--signing-key", p224Key}, "ECDSA on P-256, P-384 or P-521"},
		{"signing key encrypted", []string{"apply", "--signing-key", encrypted}, "encrypted private keys are not supported"},
		{"signing key PKCS#8 encrypted", []string{"apply", "--signing-key", pkcs8Encrypted}, "encrypted private keys are not supported"},
		{"key dir mismatched pair", []string{"apply", "--key-dir", mismatched}, "are not a pair"},
		{"public key P-224", []string{"apply", "--public-key", p224Pub}, "key is ECDSA P-224"},
		{"public key unreadable", []string{"apply", "--public-key", "/nonexistent/key.pem"}, `read public key "/nonexistent/key.pem"`},
		{"public key garbage", []string{"apply", "--public-key", garbage}, "no PEM public key (PUBLIC KEY"},
		// Bindings on the command line.
		{"role name too long", bindArgs("--policy-arn", policy, "--role-name", strings.Repeat("r", 65)), "1-64 characters"},
		{"role name charset", bindArgs("--policy-arn", policy, "--role-name", "bad/name"), `role name "bad/name"`},
		{"ns/sa shape", []string{"bind", "default", "--policy-arn", policy}, "must be NAMESPACE/NAME"},
		{"namespace dns", []string{"bind", "Default/app", "--policy-arn", policy}, "DNS-1123 label"},
		{"service account dns", []string{"bind", "default/App_1", "--policy-arn", policy}, "DNS-1123 subdomain"},
		{"no policy", bindArgs(), "give at least one --policy-arn or an --inline-policy"},
		{"http emulator issuer", []string{"plan", "--aws-endpoint-url", "http://127.0.0.1:1"}, "it is the default issuer for S3 endpoint http://127.0.0.1:1 (--aws-endpoint-url, awsEndpointURL, $AWS_ENDPOINT_URL_S3 or $AWS_ENDPOINT_URL); give an https --issuer-url"},
		{"bind before apply", bindArgs("--policy-arn", policy), "does not exist: run `irsa apply` first"},
		{"policy arn shape", bindArgs("--policy-arn", "AmazonS3ReadOnlyAccess"), `policy ARN "AmazonS3ReadOnlyAccess"`},
		{"policy does not exist", bindArgs("--policy-arn", "arn:aws:iam::aws:policy/NoSuchPolicyAnywhere"), `policy "arn:aws:iam::aws:policy/NoSuchPolicyAnywhere" does not exist`},
		{"policy in another partition", bindArgs("--policy-arn", "arn:aws-cn:iam::aws:policy/ReadOnlyAccess"), `is in partition "aws-cn"`},
		{"21 managed policies", bindArgs(many...), "21 managed policies, but this account allows 10 per role"},
		{"inline policy unreadable", bindArgs("--inline-policy", "/nonexistent/policy.json"), `read inline policy "/nonexistent/policy.json"`},
		{"inline policy not JSON", inline("nojson.json", "{"), "inline policy: not valid JSON"},
		{"inline policy null statement", inline("null.json", `{"Statement":null}`), "must have a Statement"},
		{"inline policy empty statement", inline("empty.json", `{"Version":"2012-10-17","Statement":[]}`), "Statement is empty"},
		{"inline policy no effect", inline("noeffect.json", `{"Statement":[{"Action":"s3:*","Resource":"*"}]}`), `Effect must be "Allow" or "Deny"`},
		{"inline policy no resource", inline("nores.json", `{"Statement":{"Effect":"Allow","Action":"s3:*"}}`), "needs Resource or NotResource"},
		{"inline policy principal", inline("principal.json", `{"Statement":{"Effect":"Allow","Principal":"*","Action":"s3:*","Resource":"*"}}`), "cannot have a Principal"},
		{"inline policy version", inline("version.json", `{"Version":"2020-01-01","Statement":{"Effect":"Allow","Action":"s3:*","Resource":"*"}}`), `Version "2020-01-01"`},
		{"inline policy 36 KB", inline("big.json", `{"Version":"2012-10-17","Statement":[`+bigStatement+`]}`), "IAM allows 10240 per role"},
		{"sts regional endpoints", bindArgs("--policy-arn", policy, "--sts-regional-endpoints", "yes"), `--sts-regional-endpoints "yes": must be true or false`},
		{"token expiration short", bindArgs("--policy-arn", policy, "--token-expiration", "5m"), `token expiration "5m"`},
		{"sa audience space", bindArgs("--policy-arn", policy, "--sa-audience", "a b"), `audience "a b"`},
		{"bind without a ServiceAccount", []string{"bind"}, "give NAMESPACE/SERVICEACCOUNT, or --ack SERVICE"},
		{"ack unknown service", []string{"bind", "--ack", "s4"}, `ACK service "s4": unknown; irsa knows dynamodb, ec2`},
		{"ack iam without a policy", []string{"bind", "--ack", "iam"}, "ACK's iam controller has no recommended managed policy"},
		// The role's options: tags, boundary, other clusters' providers, an existing role.
		{"tag without =", bindArgs("--policy-arn", policy, "--tag", "team"), `--tag "team": must be KEY=VALUE`},
		{"tag aws: prefix", bindArgs("--policy-arn", policy, "--tag", "AWS:cost=1"), `tag key "AWS:cost": the aws: prefix is reserved`},
		{"tag key too long", bindArgs("--policy-arn", policy, "--tag", strings.Repeat("k", 129)+"=v"), "must be 1-128 characters"},
		{"tag value too long", bindArgs("--policy-arn", policy, "--tag", "k="+strings.Repeat("v", 257)), "value of 257 characters, IAM allows at most 256"},
		{"tag character", bindArgs("--policy-arn", policy, "--tag", "team=a;b"), `value "a;b" may use only`},
		{"tag irsa key", bindArgs("--policy-arn", policy, "--tag", "irsa.irsa-anywhere.io/cluster=x"), "irsa sets this key itself"},
		{"tag keys differ in case", bindArgs("--policy-arn", policy, "--tag", "Team=a", "--tag", "team=b"), "differ only in case"},
		{"tag key twice", bindArgs("--policy-arn", policy, "--tag", "team=a", "--tag", "team=b"), `key "team" given twice`},
		{"48 tags", bindArgs(manyTags...), "48 tags: IAM allows 50 per role and irsa's ownership tags take 3, so at most 47"},
		{"permissions boundary shape", bindArgs("--policy-arn", policy, "--permissions-boundary", "PowerUserAccess"), `permissions boundary: policy ARN "PowerUserAccess"`},
		{"permissions boundary does not exist", bindArgs("--policy-arn", policy, "--permissions-boundary", "arn:aws:iam::aws:policy/NoSuchBoundary"), `permissions boundary "arn:aws:iam::aws:policy/NoSuchBoundary" does not exist`},
		{"trust provider http", bindArgs("--policy-arn", policy, "--trust-provider", "http://oidc.example.com"), `trust provider "http://oidc.example.com": must be an IAM OIDC provider ARN`},
		{"trust provider not a provider ARN", bindArgs("--policy-arn", policy, "--trust-provider", "arn:aws:iam::123456789012:role/x"), "must be an IAM OIDC provider ARN"},
		{"trust provider issuer rule", bindArgs("--policy-arn", policy, "--trust-provider", "https://oidc.example.com/"), "must not end with '/'"},
		{"trust provider twice", bindArgs("--policy-arn", policy, "--trust-provider", "https://a.example.com", "--trust-provider", "https://a.example.com"), "listed twice"},
		{"trust provider missing", bindArgs("--policy-arn", policy, "--trust-provider", "https://nobody.example.com/oidc"), "does not exist (iam:GetOpenIDConnectProvider answered NoSuchEntity)"},
		{"trust provider in another account", bindArgs("--policy-arn", policy, "--trust-provider", "arn:aws:iam::210987654321:oidc-provider/oidc.example.com"), "a role trusts only OIDC providers of its own account"},
		{"trust provider is the cluster's own", bindArgs("--policy-arn", policy, "--trust-provider", e.issuer), "this cluster's own provider"},
		{"role arn shape", bindArgs("--role-arn", "arn:aws:iam::123456789012:user/x"), `role ARN "arn:aws:iam::123456789012:user/x": must look like`},
		{"role arn of an irsa role", bindArgs("--role-arn", "arn:aws:iam::123456789012:role/irsa/"+e.cluster+"/x"), "is one of the roles irsa makes for this cluster: bind with --role-name"},
		{"role arn with policies", bindArgs("--role-arn", "arn:aws:iam::123456789012:role/x", "--policy-arn", policy), "is a role irsa does not own: irsa changes only its own trust statements on it, so policyARNs cannot be set"},
		{"role arn and role name", bindArgs("--role-arn", "arn:aws:iam::123456789012:role/x", "--role-name", "y"), "give one of them"},
		{"role arn of no role", bindArgs("--role-arn", "arn:aws:iam::123456789012:role/teams/nobody"), "no such role (iam:GetRole answered NoSuchEntity)"},
		{"role arn in another account", bindArgs("--role-arn", "arn:aws:iam::210987654321:role/x"), "is not in account 123456789012"},
		// irsa.yaml.
		{"config tags", config("tags.yaml", "bindings:\n- {namespace: default, serviceAccount: app, policyARNs: ["+policy+"], tags: {\"aws:x\": y}}\n"), "the aws: prefix is reserved"},
		{"config role arn with inline policy", config("rolearn.yaml", "bindings:\n- {namespace: default, serviceAccount: app, roleARN: \"arn:aws:iam::123456789012:role/x\", inlinePolicy: '{\"Statement\":{\"Effect\":\"Allow\",\"Action\":\"s3:*\",\"Resource\":\"*\"}}'}\n"), "so inlinePolicy cannot be set"},
		{"config trust provider", config("tp.yaml", "bindings:\n- {namespace: default, serviceAccount: app, policyARNs: ["+policy+"], trustProviders: [oidc.example.com]}\n"), "must be an IAM OIDC provider ARN"},
		{"config missing", []string{"apply", "-f", "/nonexistent/irsa.yaml"}, `read config "/nonexistent/irsa.yaml"`},
		{"config typo", config("typo.yaml", "bukcet: x\n"), `line 1: unknown field "bukcet"`},
		{"config field case", config("case.yaml", "clusterName: x\nRegion: eu-west-1\n"), `line 2: unknown field "Region" (field names are case-sensitive: did you mean "region"?)`},
		{"config nested typo", config("nested.yaml", "bindings:\n- {namespace: default, serviceAccount: app, policyArns: [x]}\n"), `line 2: unknown field "bindings[0].policyArns"`},
		{"config webhook replicas", config("replicas.yaml", "webhook:\n  replicas: -3\n"), "webhook.replicas -3: must be at least 1"},
		{"config duplicate binding", config("dup.yaml", "bindings:\n- {namespace: default, serviceAccount: app, policyARNs: ["+policy+"]}\n- {namespace: default, serviceAccount: app, policyARNs: ["+policy+"]}\n"), `binding "default/app" is listed twice`},
		{"config role names collide", config("collide.yaml", "bindings:\n- {namespace: team-a, serviceAccount: reader, policyARNs: ["+policy+"]}\n- {namespace: team, serviceAccount: a-reader, policyARNs: ["+policy+"]}\n"), `both map to IAM role "irsa-` + e.cluster + `-team-a-reader"`},
		{"config policy does not exist", config("nopolicy.yaml", "bindings:\n- {namespace: default, serviceAccount: app, policyARNs: [arn:aws:iam::aws:policy/NoSuchPolicyAnywhere]}\n"), "does not exist"},
		{"config inline policy shape", config("inline.yaml", "bindings:\n- {namespace: default, serviceAccount: app, inlinePolicy: '{\"Statement\":null}'}\n"), "must have a Statement"},
		{"config token expiration", config("tokexp.yaml", "bindings:\n- {namespace: default, serviceAccount: app, policyARNs: ["+policy+"], tokenExpiration: 72h}\n"), `token expiration "72h"`},
		{"config ack unknown service", config("ack.yaml", "bindings:\n- {ack: dynamo}\n"), `ACK service "dynamo": unknown`},
		{"config signing key", config("sk.yaml", "signingKey: "+weakKey+"\n"), "must be RSA of at least 2048 bits"},
		// Day 2: sync and rotate-key.
		{"sync without a cluster", []string{"sync"}, "no cluster is configured"},
		{"sync install with retire", []string{"sync", "--install", "--retire", "kid"}, "--install: not with --retire"},
		{"sync install without a cluster", []string{"sync", "--install"}, "sync --install runs a CronJob in the cluster, and no cluster is configured"},
		{"rotate-key without a cluster", []string{"rotate-key", "stage"}, "rotate-key needs a cluster"},
		{"rotate-key unknown step", []string{"rotate-key", "swap"}, `rotate-key "swap": the steps are stage, promote, retire`},
		{"rotate-key without a step", []string{"rotate-key"}, "rotate-key takes one step, got 0: the steps are stage, promote, retire"},
		{"rotate-key weak new key", []string{"rotate-key", "stage", "--new-key", weakKey}, "must be RSA of at least 2048 bits"},
		{"rotate-key P-224 new key", []string{"rotate-key", "stage", "--new-key", p224Key}, "P-224"},
		{"rotate-key new key with promote", []string{"rotate-key", "promote", "--new-key", weakKey}, "only rotate-key stage takes a key"},
	}
	t.Run("KUBECONFIG missing", func(t *testing.T) {
		t.Setenv("KUBECONFIG", "/nonexistent/kubeconfig")
		if code, _, errOut := e.run("apply"); code == 0 || !strings.Contains(errOut, `KUBECONFIG="/nonexistent/kubeconfig": no such file`) {
			t.Errorf("apply with a missing $KUBECONFIG: exit %d\n%s", code, errOut)
		}
	})
	if len(cases) < 60 {
		t.Fatalf("only %d bad inputs: the issue asks for at least 60", len(cases))
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			e.last = nil
			code, out, errOut := e.run(tc.args...)
			if code == 0 || !strings.Contains(errOut, tc.want) {
				t.Errorf("irsa %q: exit %d, want non-zero with %q in stderr\nstdout: %s\nstderr: %s", tc.args, code, tc.want, out, errOut)
			}
			if e.last != nil {
				if m := e.last.AWS.Calls.Mutating(); len(m) != 0 {
					t.Errorf("irsa %q made mutating AWS calls: %v", tc.args, m)
				}
			}
		})
	}
	c := clients(t)
	ctx := context.Background()
	if _, err := c.S3.HeadBucket(ctx, &s3.HeadBucketInput{Bucket: &e.bucket}); !awsclient.IsNotFound(err) {
		t.Errorf("bad input created the bucket (err %v)", err)
	}
	if r, _ := c.IAM.ListRoles(ctx, &iam.ListRolesInput{PathPrefix: aws.String(roles.Path(e.cluster))}); len(r.Roles) != 0 {
		t.Errorf("bad input created %d roles", len(r.Roles))
	}
	providers, _ := c.IAM.ListOpenIDConnectProviders(ctx, &iam.ListOpenIDConnectProvidersInput{})
	for _, p := range providers.OpenIDConnectProviderList {
		if strings.HasSuffix(aws.ToString(p.Arn), "/"+e.bucket) {
			t.Errorf("bad input created provider %s", aws.ToString(p.Arn))
		}
	}
	fmt.Fprintf(os.Stderr, "bad inputs tried: %d\n", len(cases))
}

func mustBytes(b []byte, err error) []byte {
	if err != nil {
		panic(err)
	}
	return b
}
