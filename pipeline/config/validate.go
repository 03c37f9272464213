package config

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net"
	"net/url"
	"regexp"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws/arn"
	"k8s.io/apimachinery/pkg/util/validation"
)

var (
	regionRE     = regexp.MustCompile(`^[a-z]{2}(-gov|-iso[a-z]*)?-[a-z]+-[0-9]{1,2}$`)
	bucketRE     = regexp.MustCompile(`^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$`)
	roleNameRE   = regexp.MustCompile(`^[\w+=,.@-]{1,64}$`)
	thumbprintRE = regexp.MustCompile(`^[0-9a-fA-F]{40}$`)
	// policyPathRE is IAM's path-and-name of a managed policy, after "policy/" (IAM API reference, Policy).
	policyPathRE = regexp.MustCompile(`^[\w+=,.@/-]+$`)
	accountIDRE  = regexp.MustCompile(`^[0-9]{12}$`)
)

// ClusterTypes are the values of --cluster-type.
var ClusterTypes = []string{"kubeadm", "kind", "eks-anywhere", "external"}

// ValidateClusterName: a DNS-1123 label of at most 63 characters, because it becomes part of role names and labels.
func ValidateClusterName(name string) error {
	if len(validation.IsDNS1123Label(name)) > 0 {
		return fmt.Errorf("cluster name %q: must be 1-63 lowercase letters, digits or '-', starting and ending with a letter or digit", name)
	}
	return nil
}

// ValidateRegion: an AWS region code such as eu-west-1.
func ValidateRegion(region string) error {
	if !regionRE.MatchString(region) {
		return fmt.Errorf("region %q: must be an AWS region code such as us-east-1 or eu-west-1", region)
	}
	return nil
}

// ValidateBucketName applies S3's general purpose bucket naming rules.
func ValidateBucketName(name string) error {
	bad := func(rule string) error { return fmt.Errorf("bucket name %q: %s (S3 bucket naming rules)", name, rule) }
	switch {
	case len(name) < 3 || len(name) > 63:
		return bad("must be 3-63 characters long")
	case !bucketRE.MatchString(name):
		return bad("must use only lowercase letters, digits, '.' and '-', and start and end with a letter or digit")
	case strings.Contains(name, ".."):
		return bad("must not contain two adjacent periods")
	case net.ParseIP(name) != nil:
		return bad("must not be formatted as an IP address")
	case strings.HasPrefix(name, "xn--") || strings.HasPrefix(name, "sthree-") || strings.HasPrefix(name, "amzn-s3-demo-"):
		return bad("must not start with xn--, sthree- or amzn-s3-demo-")
	case strings.HasSuffix(name, "-s3alias") || strings.HasSuffix(name, "--ol-s3") || strings.HasSuffix(name, ".mrap") || strings.HasSuffix(name, "--x-s3"):
		return bad("must not end with -s3alias, --ol-s3, .mrap or --x-s3")
	case strings.Contains(name, "."):
		// Virtual-hosted HTTPS breaks on dotted names: the wildcard certificate *.s3.amazonaws.com covers one label.
		return bad("must not contain '.': the issuer is served over virtual-hosted HTTPS, whose certificate does not cover dotted names")
	}
	return nil
}

// ValidateIssuerURL: https, a host, no query, no fragment, no trailing slash (STS compares iss byte for byte, and
// kube-apiserver does not add one).
func ValidateIssuerURL(raw string) error {
	if raw == "" {
		return fmt.Errorf("issuer URL is empty: set --issuer-url, or --bucket and --region for the bucket's S3 URL")
	}
	u, err := url.Parse(raw)
	if err != nil {
		return fmt.Errorf("issuer URL %q: %w", raw, err)
	}
	switch {
	case u.Scheme != "https":
		return fmt.Errorf("issuer URL %q: must use https (IAM OIDC providers require it)", raw)
	case u.Host == "":
		return fmt.Errorf("issuer URL %q: must have a host", raw)
	case u.RawQuery != "" || u.ForceQuery:
		return fmt.Errorf("issuer URL %q: must not have a query", raw)
	case u.Fragment != "" || strings.Contains(raw, "#"):
		return fmt.Errorf("issuer URL %q: must not have a fragment", raw)
	case u.User != nil:
		return fmt.Errorf("issuer URL %q: must not carry user info", raw)
	case strings.HasSuffix(raw, "/"):
		return fmt.Errorf("issuer URL %q: must not end with '/': tokens carry the issuer exactly and STS compares it byte for byte", raw)
	case u.Host != strings.ToLower(u.Host):
		return fmt.Errorf("issuer URL %q: host must be lowercase: STS compares the issuer byte for byte", raw)
	}
	return nil
}

// ValidateEndpointURL: an http(s) URL with a host, for emulators.
func ValidateEndpointURL(raw string) error {
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return fmt.Errorf("AWS endpoint URL %q: must be an http:// or https:// URL with a host", raw)
	}
	return nil
}

// ValidateAudience: IAM client IDs are 1-255 characters.
func ValidateAudience(aud string) error {
	if aud == "" || len(aud) > 255 || strings.ContainsAny(aud, " \t\n,") {
		return fmt.Errorf("audience %q: must be 1-255 characters without spaces or commas (it is an IAM client ID)", aud)
	}
	return nil
}

// ValidateThumbprint: 40 hex digits (SHA-1).
func ValidateThumbprint(tp string) error {
	if !thumbprintRE.MatchString(tp) {
		return fmt.Errorf("thumbprint %q: must be 40 hexadecimal digits (the SHA-1 of a certificate)", tp)
	}
	return nil
}

// ValidateClusterType: one of ClusterTypes.
func ValidateClusterType(t string) error {
	for _, ct := range ClusterTypes {
		if t == ct {
			return nil
		}
	}
	return fmt.Errorf("cluster type %q: must be one of %s", t, strings.Join(ClusterTypes, ", "))
}

// ValidateRoleName applies IAM's role name rules.
func ValidateRoleName(name string) error {
	if !roleNameRE.MatchString(name) {
		return fmt.Errorf("role name %q: must be 1-64 characters of letters, digits and +=,.@_- (IAM role name rules)", name)
	}
	return nil
}

// ValidatePolicyARN: an IAM managed policy ARN, arn:PARTITION:iam::aws|ACCOUNT:policy/[PATH/]NAME, as parsed by the
// AWS SDK's arn package.
func ValidatePolicyARN(policyARN string) error {
	a, err := arn.Parse(policyARN)
	name, isPolicy := strings.CutPrefix(a.Resource, "policy/")
	if err != nil || !strings.HasPrefix(a.Partition, "aws") || a.Service != "iam" || a.Region != "" ||
		(a.AccountID != "aws" && !accountIDRE.MatchString(a.AccountID)) || !isPolicy || !policyPathRE.MatchString(name) {
		return fmt.Errorf("policy ARN %q: must look like arn:aws:iam::aws:policy/NAME or arn:aws:iam::123456789012:policy/NAME", policyARN)
	}
	return nil
}

// ValidatePolicyDocument: a JSON object with a Statement.
func ValidatePolicyDocument(doc string) error {
	var p struct {
		Version   string          `json:"Version"`
		Statement json.RawMessage `json:"Statement"`
	}
	if err := json.Unmarshal([]byte(doc), &p); err != nil {
		return fmt.Errorf("inline policy: not valid JSON: %w", err)
	}
	if len(p.Statement) == 0 {
		return fmt.Errorf("inline policy: must have a Statement")
	}
	return nil
}

// ValidateDNS1123Label: a Kubernetes namespace name (apimachinery's IsDNS1123Label, the rule the apiserver applies).
func ValidateDNS1123Label(what, v string) error {
	if len(validation.IsDNS1123Label(v)) > 0 {
		return fmt.Errorf("%s %q: must be a DNS-1123 label (1-63 lowercase letters, digits or '-', starting and ending with a letter or digit)", what, v)
	}
	return nil
}

// ValidateDNS1123Subdomain: a Kubernetes object name such as a ServiceAccount (apimachinery's IsDNS1123Subdomain).
func ValidateDNS1123Subdomain(what, v string) error {
	if len(validation.IsDNS1123Subdomain(v)) > 0 {
		return fmt.Errorf("%s %q: must be a DNS-1123 subdomain (lowercase letters, digits, '-' and '.', at most 253 characters)", what, v)
	}
	return nil
}

// ParseServiceAccountRef splits "NAMESPACE/NAME" and validates both halves.
func ParseServiceAccountRef(ref string) (namespace, name string, err error) {
	ns, sa, ok := strings.Cut(ref, "/")
	if !ok || strings.Contains(sa, "/") {
		return "", "", fmt.Errorf("service account %q: must be NAMESPACE/NAME", ref)
	}
	if err := ValidateDNS1123Label("namespace", ns); err != nil {
		return "", "", fmt.Errorf("service account %q: %w", ref, err)
	}
	if err := ValidateDNS1123Subdomain("service account name", sa); err != nil {
		return "", "", fmt.Errorf("service account %q: %w", ref, err)
	}
	return ns, sa, nil
}

// RoleNameFor is the default role name for a binding: irsa-CLUSTER-NS-SA, shortened with a hash to fit IAM's 64.
func RoleNameFor(cluster, namespace, serviceAccount string) string {
	name := "irsa-" + cluster + "-" + namespace + "-" + serviceAccount
	if len(name) <= 64 {
		return name
	}
	sum := sha256.Sum256([]byte(name))
	return name[:55] + "-" + hex.EncodeToString(sum[:])[:8]
}
