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
		// Issuer URL: one rule set.
		{"issuer http", []string{"apply", "--issuer-url", "http://example.com/x"}, "must use https"},
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
		// irsa.yaml.
		{"config missing", []string{"apply", "-f", "/nonexistent/irsa.yaml"}, `read config "/nonexistent/irsa.yaml"`},
		{"config typo", config("typo.yaml", "bukcet: x\n"), "bukcet"},
		{"config webhook replicas", config("replicas.yaml", "webhook:\n  replicas: -3\n"), "webhook.replicas -3: must be at least 1"},
		{"config duplicate binding", config("dup.yaml", "bindings:\n- {namespace: default, serviceAccount: app, policyARNs: ["+policy+"]}\n- {namespace: default, serviceAccount: app, policyARNs: ["+policy+"]}\n"), `binding "default/app" is listed twice`},
		{"config role names collide", config("collide.yaml", "bindings:\n- {namespace: team-a, serviceAccount: reader, policyARNs: ["+policy+"]}\n- {namespace: team, serviceAccount: a-reader, policyARNs: ["+policy+"]}\n"), `both map to IAM role "irsa-` + e.cluster + `-team-a-reader"`},
		{"config policy does not exist", config("nopolicy.yaml", "bindings:\n- {namespace: default, serviceAccount: app, policyARNs: [arn:aws:iam::aws:policy/NoSuchPolicyAnywhere]}\n"), "does not exist"},
		{"config inline policy shape", config("inline.yaml", "bindings:\n- {namespace: default, serviceAccount: app, inlinePolicy: '{\"Statement\":null}'}\n"), "must have a Statement"},
		{"config token expiration", config("tokexp.yaml", "bindings:\n- {namespace: default, serviceAccount: app, policyARNs: ["+policy+"], tokenExpiration: 72h}\n"), `token expiration "72h"`},
		{"config ack unknown service", config("ack.yaml", "bindings:\n- {ack: dynamo}\n"), `ACK service "dynamo": unknown`},
		{"config signing key", config("sk.yaml", "signingKey: "+weakKey+"\n"), "must be RSA of at least 2048 bits"},
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
