// Package rotation holds the rules of irsa's service account signing-key rotation (`irsa rotate-key stage`, `promote`,
// `retire`): when a previous key can be retired, computed from the cluster's own token settings, and what the
// cluster says about the rotation (which key every apiserver signs with, since when, which of irsa's previous keys
// it still accepts). Everything here reads; the steps themselves are built by pipeline/setup from the issuer and
// apiserver stages.
package rotation

import (
	"fmt"
	"strings"
	"time"
)

// Rules of the kubelet and kube-apiserver that bound how long a token signed by a previous key can be in use.
const (
	// DefaultProjectedExpiration is a serviceAccountToken projection's lifetime when expirationSeconds is unset.
	DefaultProjectedExpiration = time.Hour
	// WarnOnlyExpirationSeconds is what the ServiceAccount admission plugin asks for the kube-api-access token of
	// every pod; with --service-account-extend-token-expiration (default true) the apiserver extends a token asked
	// with exactly this lifetime, for the API's own audiences, to ExtendedExpiration (k8s.io/kubernetes
	// pkg/serviceaccount WarnOnlyBoundTokenExpirationSeconds, ExpirationExtensionSeconds;
	// pkg/registry/core/serviceaccount/storage/token.go), capped by --service-account-max-token-expiration.
	WarnOnlyExpirationSeconds = 3607
	ExtendedExpiration        = 365 * 24 * time.Hour
	// KubeletMaxTokenAge and KubeletRefreshFraction: the kubelet replaces a projected token once it is older than 80%
	// of its lifetime or older than 24 hours, plus up to KubeletJitter (k8s.io/kubernetes pkg/kubelet/token
	// token_manager.go; the expirationSeconds field's API documentation).
	KubeletMaxTokenAge     = 24 * time.Hour
	KubeletRefreshFraction = 0.8
	KubeletJitter          = 10 * time.Second
)

// ProjectedToken is one serviceAccountToken projection of a running pod.
type ProjectedToken struct {
	// Pod is namespace/name.
	Pod string
	// Audience is the projection's audience; empty means the apiserver's own (--api-audiences).
	Audience string
	// ExpirationSeconds is the projection's expirationSeconds; 0 means unset (DefaultProjectedExpiration).
	ExpirationSeconds int64
}

// TokenSettings are the cluster's settings that bound a token's life.
type TokenSettings struct {
	// MaxTokenExpiration is --service-account-max-token-expiration; 0 means unset.
	MaxTokenExpiration time.Duration
	// ExtendTokenExpiration is --service-account-extend-token-expiration (kube-apiserver's default: true).
	ExtendTokenExpiration bool
	// Projected are the token projections of the running pods.
	Projected []ProjectedToken
}

// Lifetime is how long the apiserver makes a token the kubelet asks for p, with its settings.
func (s TokenSettings) Lifetime(p ProjectedToken) time.Duration {
	asked := time.Duration(p.ExpirationSeconds) * time.Second
	if p.ExpirationSeconds == 0 {
		asked = DefaultProjectedExpiration
	}
	life := asked
	if s.ExtendTokenExpiration && p.ExpirationSeconds == WarnOnlyExpirationSeconds && p.Audience == "" {
		life = ExtendedExpiration
	}
	if s.MaxTokenExpiration > 0 && life > s.MaxTokenExpiration {
		life = s.MaxTokenExpiration
	}
	return life
}

// InUse is how long after it was issued a token for p can still be in use in its pod: until the kubelet has
// replaced it, at 80% of its lifetime or 24 hours, whichever comes first, plus the kubelet's jitter. Clients read the
// token file again when they need it (the AWS SDKs do, at every credential refresh).
func (s TokenSettings) InUse(p ProjectedToken) time.Duration {
	life := s.Lifetime(p)
	refresh := time.Duration(float64(life) * KubeletRefreshFraction)
	return min(refresh, KubeletMaxTokenAge) + KubeletJitter
}

// RetireTime is when a previous key can leave the apiservers and the JWKS.
type RetireTime struct {
	// PromotedAt is when the last apiserver started signing with the current key; the previous key signed nothing
	// after it.
	PromotedAt time.Time
	// SafeAt is when the kubelet has replaced every token the previous key signed for a running pod.
	SafeAt time.Time
	// Longest is the projection that sets SafeAt (none when no pod projects a token).
	Longest *ProjectedToken
	// Reason says how SafeAt follows from the settings, in one paragraph.
	Reason string
}

// ComputeRetire works out when no token signed before promotedAt can still be in use by a running pod: promotedAt
// plus the longest InUse of the pods' projections. Tokens made with the TokenRequest API outside the kubelet (kubectl
// create token) are not in pods; they stay valid up to --service-account-max-token-expiration, and the Reason says so.
func ComputeRetire(promotedAt time.Time, s TokenSettings) RetireTime {
	rt := RetireTime{PromotedAt: promotedAt, SafeAt: promotedAt}
	var longest time.Duration
	for i, p := range s.Projected {
		if d := s.InUse(p); d > longest || rt.Longest == nil {
			longest, rt.Longest = d, &s.Projected[i]
		}
	}
	rt.SafeAt = promotedAt.Add(longest)
	var b strings.Builder
	fmt.Fprintf(&b, "every apiserver signs with the current key since %s", promotedAt.UTC().Format(time.RFC3339))
	if rt.Longest == nil {
		b.WriteString("; no running pod projects a service account token")
	} else {
		p := *rt.Longest
		aud := p.Audience
		if aud == "" {
			aud = "the API's"
		}
		asked := "unset (1h)"
		if p.ExpirationSeconds > 0 {
			asked = fmt.Sprintf("%ds", p.ExpirationSeconds)
		}
		fmt.Fprintf(&b, "; the longest-lived projected token (pod %s, audience %s, expirationSeconds %s) lives %s", p.Pod, aud, asked, s.Lifetime(p))
		if s.ExtendTokenExpiration && p.ExpirationSeconds == WarnOnlyExpirationSeconds && p.Audience == "" {
			b.WriteString(" (extended by --service-account-extend-token-expiration)")
		}
		fmt.Fprintf(&b, " and the kubelet replaces it after %s (80%% of its lifetime or 24h, plus %s jitter)", s.InUse(p), KubeletJitter)
	}
	if s.MaxTokenExpiration > 0 {
		fmt.Fprintf(&b, "; tokens made outside pods (TokenRequest, kubectl create token) live at most %s (--service-account-max-token-expiration)", s.MaxTokenExpiration)
	} else {
		b.WriteString("; tokens made outside pods (TokenRequest, kubectl create token) are not bounded: --service-account-max-token-expiration is unset")
	}
	rt.Reason = b.String()
	return rt
}
