package target

import (
	"github.com/irsa-anywhere/irsa/pipeline/config"
	"github.com/irsa-anywhere/irsa/pipeline/documents"
	"github.com/irsa-anywhere/irsa/pipeline/issuer"
	"github.com/irsa-anywhere/irsa/pipeline/provider"
)

// SetIssuerURL sets the issuer URL and every fact derived from it (host path, JWKS URL, object keys, provider ARN,
// and Config.IssuerURL, so both agree). Resolve calls it; so does a run whose issuer URL is known only once the
// issuer stage has made its host (cloudfront hosting without a domain: the distribution's domain name), before the
// stages that use the URL are built. An empty URL means not known yet: Pending reports it.
func (t *Target) SetIssuerURL(u string) {
	t.Config.IssuerURL = u
	t.Issuer.URL = u
	t.Issuer.HostPath, t.Issuer.JWKSURL, t.ProviderARN = "", "", ""
	if u != "" {
		t.Issuer.HostPath = documents.HostPath(u)
		t.Issuer.JWKSURL = documents.JoinURL(u, config.JWKSKey)
		if t.AccountID != "" {
			t.ProviderARN = provider.ARN(t.Partition, t.AccountID, u)
		}
	}
	t.Issuer.DiscoveryKey, t.Issuer.JWKSKey = issuer.ObjectKeys(u, t.Issuer.Bucket)
}

// Pending reports whether the issuer URL is not known yet (cloudfront hosting before its distribution exists).
func (t *Target) Pending() bool { return t.Issuer.URL == "" }
