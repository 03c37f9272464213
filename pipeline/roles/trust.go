package roles

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"strings"
	"unicode/utf8"

	"github.com/aws/aws-sdk-go-v2/aws/arn"

	"github.com/irsa-anywhere/irsa/pipeline/documents"
	"github.com/irsa-anywhere/irsa/pipeline/provider"
)

// Trust policy length limits, in characters without white space ("IAM doesn't count white space when calculating the
// size of a policy"), from IAM and AWS STS quotas (https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_iam-quotas.html):
// "Role trust policy length" is 2,048 by default and can be raised to at most 4,096 through Service Quotas (service
// iam, quota L-C07B4B0D, requested in us-east-1).
const (
	DefaultTrustPolicyLength = 2048
	MaxTrustPolicyLength     = 4096
	// TrustPolicyLengthQuotaCode is the Service Quotas code of "Role trust policy length" (service code iam).
	TrustPolicyLengthQuotaCode = "L-C07B4B0D"
)

// Provider is one IAM OIDC provider a role trusts: its ARN (the Federated principal) and its host path (the prefix of
// the :sub and :aud condition keys).
type Provider struct {
	ARN      string `json:"arn"`
	HostPath string `json:"hostPath"`
}

// ProviderFor resolves one trustProviders entry (config.ValidateTrustProvider): an IAM OIDC provider ARN is taken as
// is, an issuer URL becomes the provider ARN IAM gives it in account (provider.ARN).
func ProviderFor(partition, account, ref string) (Provider, error) {
	if strings.HasPrefix(ref, "arn:") {
		a, err := arn.Parse(ref)
		hp, ok := strings.CutPrefix(a.Resource, "oidc-provider/")
		if err != nil || !ok || hp == "" {
			return Provider{}, fmt.Errorf("trust provider %q: not an IAM OIDC provider ARN", ref)
		}
		return Provider{ARN: ref, HostPath: hp}, nil
	}
	return Provider{ARN: provider.ARN(partition, account, ref), HostPath: documents.HostPath(ref)}, nil
}

// Statement admits AssumeRoleWithWebIdentity through p for tokens whose sub is the ServiceAccount and whose aud is
// audience. sid, when not empty, names the statement (irsa's statements on roles it does not own).
func Statement(p Provider, namespace, serviceAccount, audience, sid string) map[string]any {
	st := map[string]any{
		"Effect":    "Allow",
		"Principal": map[string]any{"Federated": p.ARN},
		"Action":    "sts:AssumeRoleWithWebIdentity",
		"Condition": map[string]any{"StringEquals": map[string]string{
			p.HostPath + ":sub": Subject(namespace, serviceAccount),
			p.HostPath + ":aud": audience,
		}},
	}
	if sid != "" {
		st["Sid"] = sid
	}
	return st
}

// TrustPolicyFor is the trust policy of a role irsa owns that serves the ServiceAccount through every provider in
// providers: one statement each, in order (the binding's own cluster first).
func TrustPolicyFor(providers []Provider, namespace, serviceAccount, audience string) string {
	var statements []any
	for _, p := range providers {
		statements = append(statements, Statement(p, namespace, serviceAccount, audience, ""))
	}
	return encodePolicy(map[string]any{"Version": "2012-10-17", "Statement": statements})
}

func encodePolicy(doc any) string {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", "  ")
	_ = enc.Encode(doc)
	return buf.String()
}

// PolicySize is a policy's length as IAM counts it against its quotas: characters, without the white space between
// JSON tokens (white space inside strings counts). A document that is not JSON counts whole.
func PolicySize(doc string) int {
	var compact bytes.Buffer
	if json.Compact(&compact, []byte(doc)) != nil {
		return utf8.RuneCountInString(doc)
	}
	return utf8.RuneCount(compact.Bytes())
}

// SidPrefix starts the Sid of every trust statement irsa adds, for cluster, to a role it does not own. IAM allows only
// ASCII letters and digits in a Sid, so the cluster is a hash: "Irsa" and 8 hex digits.
func SidPrefix(cluster string) string {
	sum := sha256.Sum256([]byte("cluster\x00" + cluster))
	return "Irsa" + hex.EncodeToString(sum[:])[:8]
}

// BindingSid is the Sid prefix of the statements of one binding (NAMESPACE/NAME in cluster) on a role it does not
// own; the statement for its i-th provider is BindingSid + "P" + i.
func BindingSid(cluster, namespace, serviceAccount string) string {
	sum := sha256.Sum256([]byte(namespace + "/" + serviceAccount))
	return SidPrefix(cluster) + hex.EncodeToString(sum[:])[:8]
}

// StatementsFor are the trust statements of one binding on a role it does not own, one per provider, each with its
// Sid.
func StatementsFor(cluster string, providers []Provider, namespace, serviceAccount, audience string) []map[string]any {
	var out []map[string]any
	for i, p := range providers {
		out = append(out, Statement(p, namespace, serviceAccount, audience, fmt.Sprintf("%sP%d", BindingSid(cluster, namespace, serviceAccount), i)))
	}
	return out
}

// trustDoc is a trust policy as a generic document, so that merging irsa's statements keeps every other field and
// statement of a role irsa does not own exactly as it was.
type trustDoc struct {
	fields     map[string]json.RawMessage
	statements []json.RawMessage
}

func parseTrust(doc string) (*trustDoc, error) {
	t := &trustDoc{}
	if err := json.Unmarshal([]byte(doc), &t.fields); err != nil {
		return nil, fmt.Errorf("trust policy is not a JSON object: %w", err)
	}
	raw := bytes.TrimSpace(t.fields["Statement"])
	switch {
	case len(raw) == 0 || string(raw) == "null":
	case raw[0] == '[':
		if err := json.Unmarshal(raw, &t.statements); err != nil {
			return nil, fmt.Errorf("trust policy Statement: %w", err)
		}
	default:
		t.statements = []json.RawMessage{raw}
	}
	return t, nil
}

func sidOf(st json.RawMessage) string {
	var s struct{ Sid string }
	_ = json.Unmarshal(st, &s)
	return s.Sid
}

// split returns the statements whose Sid starts with prefix, and the others.
func (t *trustDoc) split(prefix string) (mine, others []json.RawMessage) {
	for _, st := range t.statements {
		if strings.HasPrefix(sidOf(st), prefix) {
			mine = append(mine, st)
		} else {
			others = append(others, st)
		}
	}
	return mine, others
}

func (t *trustDoc) with(statements []json.RawMessage) string {
	fields := map[string]any{}
	for k, v := range t.fields {
		fields[k] = v
	}
	if statements == nil {
		statements = []json.RawMessage{}
	}
	fields["Statement"] = statements
	return encodePolicy(fields)
}

// MergeTrust replaces, in the trust policy doc of a role irsa does not own, the statements whose Sid starts with
// prefix by want, keeping every other statement and field. changed is false when doc already has exactly want.
func MergeTrust(doc, prefix string, want []map[string]any) (merged string, changed bool, err error) {
	t, err := parseTrust(doc)
	if err != nil {
		return "", false, err
	}
	mine, others := t.split(prefix)
	var wantRaw []json.RawMessage
	for _, st := range want {
		b, _ := json.Marshal(st)
		wantRaw = append(wantRaw, b)
	}
	have, _ := json.Marshal(mine)
	wanted, _ := json.Marshal(wantRaw)
	if documents.SameJSON(string(have), string(wanted)) || (len(mine) == 0 && len(want) == 0) {
		return doc, false, nil
	}
	return t.with(append(others, wantRaw...)), true, nil
}
