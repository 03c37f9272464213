package config

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/aws/aws-sdk-go-v2/aws/arn"
	"k8s.io/apimachinery/pkg/util/validation"
)

var (
	regionRE     = regexp.MustCompile(`^[a-z]{2}(-gov|-iso[a-z]*)?-[a-z]+-[0-9]{1,2}$`)
	bucketRE     = regexp.MustCompile(`^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$`)
	roleNameRE   = regexp.MustCompile(`^[\w+=,.@-]{1,64}$`)
	thumbprintRE = regexp.MustCompile(`^[0-9a-fA-F]{40}$`)
	// hostRE is a DNS name (issuer hosts); pathSegmentRE a segment of an issuer path (ValidateIssuerURL).
	hostRE        = regexp.MustCompile(`^[a-z0-9]([a-z0-9-]*[a-z0-9])?(\.[a-z0-9]([a-z0-9-]*[a-z0-9])?)*$`)
	pathSegmentRE = regexp.MustCompile(`^[A-Za-z0-9._~-]+$`)
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

// ValidateIssuerURL is the one rule set for issuer URLs, used by every command and stage: https, a lowercase ASCII
// host (an internationalised name must be given in its xn-- form) with an optional port 1-65535, no user info, query,
// fragment or trailing slash, at most 255 characters (IAM CreateOpenIDConnectProvider Url), and a path whose segments
// use only letters, digits and -._~ (S3 object keys and IAM provider names agree on these without escaping: a space,
// a '%' or a non-ASCII byte would be escaped differently by each, and a dot or empty segment names documents nobody can
// fetch). STS compares the token's iss with the provider byte for byte, and kube-apiserver adds nothing to it.
func ValidateIssuerURL(raw string) error {
	if raw == "" {
		return fmt.Errorf("issuer URL is empty: set --issuer-url, or --bucket and --region for the bucket's S3 URL")
	}
	bad := func(rule string) error { return fmt.Errorf("issuer URL %q: %s", raw, rule) }
	if len(raw) > 255 {
		return bad(fmt.Sprintf("is %d characters, IAM allows at most 255", len(raw)))
	}
	for _, r := range raw {
		if r > unicode.MaxASCII || unicode.IsControl(r) || r == ' ' {
			return bad(fmt.Sprintf("contains %q: only printable ASCII without spaces is allowed (write an internationalised host in its xn-- form)", r))
		}
	}
	u, err := url.Parse(raw)
	if err != nil {
		return bad(err.Error())
	}
	switch {
	case u.Scheme != "https":
		return bad("must use https (IAM OIDC providers require it)")
	case u.Hostname() == "":
		return bad("must have a host")
	case u.RawQuery != "" || u.ForceQuery:
		return bad("must not have a query")
	case u.Fragment != "" || strings.Contains(raw, "#"):
		return bad("must not have a fragment")
	case u.User != nil:
		return bad("must not carry user info")
	case strings.HasSuffix(raw, "/"):
		return bad("must not end with '/': tokens carry the issuer exactly and STS compares it byte for byte")
	case u.Host != strings.ToLower(u.Host):
		return bad("host must be lowercase: STS compares the issuer byte for byte")
	}
	if p := u.Port(); p != "" || strings.HasSuffix(u.Host, ":") {
		n, err := strconv.Atoi(p)
		if err != nil || n < 1 || n > 65535 {
			return bad(fmt.Sprintf("port %q: must be 1-65535", p))
		}
	}
	if h := u.Hostname(); net.ParseIP(h) == nil && !hostRE.MatchString(h) {
		return bad(fmt.Sprintf("host %q: must be a DNS name of letters, digits, '-' and '.', or an IP address", h))
	}
	if u.Path != "" {
		for _, seg := range strings.Split(strings.TrimPrefix(u.Path, "/"), "/") {
			switch {
			case seg == "":
				return bad("path has an empty segment ('//'): S3 and IAM would name different documents")
			case seg == "." || seg == "..":
				return bad(fmt.Sprintf("path segment %q: dot segments are resolved away by HTTP clients, so the documents could not be fetched", seg))
			case !pathSegmentRE.MatchString(seg):
				return bad(fmt.Sprintf("path segment %q: must use only letters, digits and -._~ (S3 and IAM would escape anything else differently)", seg))
			}
		}
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

// ValidateAudience: an IAM client ID (1-255 characters, IAM CreateOpenIDConnectProvider ClientIDList), printable,
// without spaces or commas (the webhook's --token-audience and kube-apiserver's --api-audiences are comma lists).
func ValidateAudience(aud string) error {
	if aud == "" || len(aud) > 255 || strings.ContainsAny(aud, " \t\n,") || strings.IndexFunc(aud, func(r rune) bool { return !unicode.IsPrint(r) }) >= 0 {
		return fmt.Errorf("audience %q: must be 1-255 printable characters without spaces or commas (it is an IAM client ID)", aud)
	}
	return nil
}

// MaxThumbprints is how many thumbprints an IAM OIDC provider holds (IAM CreateOpenIDConnectProvider ThumbprintList).
const MaxThumbprints = 5

// ValidateThumbprints checks the list and each thumbprint.
func ValidateThumbprints(tps []string) error {
	if len(tps) > MaxThumbprints {
		return fmt.Errorf("thumbprints: %d given, an IAM OIDC provider holds at most %d", len(tps), MaxThumbprints)
	}
	seen := map[string]bool{}
	for _, tp := range tps {
		if err := ValidateThumbprint(tp); err != nil {
			return err
		}
		if seen[strings.ToLower(tp)] {
			return fmt.Errorf("thumbprint %q: listed twice", tp)
		}
		seen[strings.ToLower(tp)] = true
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

// MaxRolePolicySize is IAM's limit on a role's inline policies, in characters, white space not counted (IAM and STS
// quotas: "Role policy size cannot exceed 10,240 characters").
const MaxRolePolicySize = 10240

// ValidatePolicyDocument checks an inline policy as IAM would before accepting it: a JSON object whose Statement is a
// statement or a non-empty list of them, each with Effect Allow or Deny, Action or NotAction, and Resource or
// NotResource (a role's permission policy has no Principal), within MaxRolePolicySize.
func ValidatePolicyDocument(doc string) error {
	var compact bytes.Buffer
	if err := json.Compact(&compact, []byte(doc)); err != nil {
		return fmt.Errorf("inline policy: not valid JSON: %w", err)
	}
	if n := utf8.RuneCount(compact.Bytes()); n > MaxRolePolicySize {
		return fmt.Errorf("inline policy: %d characters without white space, IAM allows %d per role", n, MaxRolePolicySize)
	}
	var p struct {
		Version   *string         `json:"Version"`
		Statement json.RawMessage `json:"Statement"`
	}
	if err := json.Unmarshal([]byte(doc), &p); err != nil {
		return fmt.Errorf("inline policy: must be a JSON object with a Statement: %w", err)
	}
	if p.Version != nil && *p.Version != "2012-10-17" && *p.Version != "2008-10-17" {
		return fmt.Errorf("inline policy: Version %q: must be 2012-10-17", *p.Version)
	}
	var list []map[string]json.RawMessage
	raw := bytes.TrimSpace(p.Statement)
	switch {
	case len(raw) == 0 || string(raw) == "null":
		return fmt.Errorf("inline policy: must have a Statement (an object or a non-empty list of objects)")
	case raw[0] == '[':
		if err := json.Unmarshal(raw, &list); err != nil {
			return fmt.Errorf("inline policy: Statement must be a list of objects: %w", err)
		}
	default:
		var one map[string]json.RawMessage
		if err := json.Unmarshal(raw, &one); err != nil {
			return fmt.Errorf("inline policy: Statement must be an object or a list of objects: %w", err)
		}
		list = append(list, one)
	}
	if len(list) == 0 {
		return fmt.Errorf("inline policy: Statement is empty: give at least one statement")
	}
	for i, st := range list {
		var effect string
		if err := json.Unmarshal(st["Effect"], &effect); err != nil || (effect != "Allow" && effect != "Deny") {
			return fmt.Errorf("inline policy: statement %d: Effect must be \"Allow\" or \"Deny\"", i+1)
		}
		if !present(st, "Action") && !present(st, "NotAction") {
			return fmt.Errorf("inline policy: statement %d: needs Action or NotAction", i+1)
		}
		if !present(st, "Resource") && !present(st, "NotResource") {
			return fmt.Errorf("inline policy: statement %d: needs Resource or NotResource", i+1)
		}
		if present(st, "Principal") || present(st, "NotPrincipal") {
			return fmt.Errorf("inline policy: statement %d: a role's permission policy cannot have a Principal", i+1)
		}
	}
	return nil
}

func present(st map[string]json.RawMessage, key string) bool {
	v, ok := st[key]
	return ok && len(v) > 0 && string(v) != "null" && string(v) != "[]" && string(v) != `""`
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
