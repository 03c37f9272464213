package doctor

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"

	"github.com/irsa-anywhere/irsa/pipeline/config"
	"github.com/irsa-anywhere/irsa/pipeline/documents"
)

// cloudFrontChecks are the lines of cloudfront hosting: the bucket is not public, the origin access control is
// attached to the origin and signs, the distribution is deployed and serves both documents without a redirect, the
// certificate (with a domain) is issued, valid and covers the domain, and the IAM provider's URL is the issuer.
func (d *doctor) cloudFrontChecks(ctx context.Context) {
	h := d.in.CloudFront
	st, err := h.Inspect(ctx)
	if err != nil {
		d.fail("cloudfront", err.Error(), "check the credentials' cloudfront:List*/Get* and s3:Get* permissions")
		return
	}
	const bucket = "bucket not public"
	switch {
	case st.BlockPublicAccess != [4]bool{true, true, true, true}:
		d.fail(bucket, fmt.Sprintf("bucket %q does not have all four Block Public Access settings on (%v)", h.Bucket, st.BlockPublicAccess),
			"run `irsa apply --only issuer` to turn them on")
	case len(st.PublicStatements) > 0:
		d.fail(bucket, fmt.Sprintf("the policy of bucket %q lets anyone in: %s", h.Bucket, strings.Join(st.PublicStatements, ", ")),
			"remove those statements, or run `irsa apply --only issuer` if they are irsa's from s3-public hosting")
	default:
		d.pass(bucket, "all four Block Public Access settings are on and no statement lets anyone in")
	}

	const oac = "origin access control"
	switch {
	case st.DistributionID == "":
		d.fail(oac, "no CloudFront distribution tagged for this cluster", "run `irsa apply --only issuer`")
	case st.OACID == "":
		d.fail(oac, "no origin access control of irsa's for this cluster", "run `irsa apply --only issuer`")
	case st.OriginOAC != st.OACID:
		d.fail(oac, fmt.Sprintf("the distribution's origin uses origin access control %q, not irsa's %s: CloudFront reads the private bucket unsigned and gets 403", st.OriginOAC, st.OACID),
			"run `irsa apply --only issuer` to attach it")
	case !st.OACSigning:
		d.fail(oac, fmt.Sprintf("origin access control %s does not sign always with SigV4", st.OACID), "run `irsa apply --only issuer`")
	default:
		how := "attached to the origin"
		if !st.OriginOACReported {
			how = "recorded in the distribution's tag (this endpoint does not report the origin's field)"
		}
		d.pass(oac, fmt.Sprintf("%s signs always with SigV4, %s", st.OACID, how))
	}

	const dist = "distribution serves the documents"
	switch {
	case st.DistributionID == "":
		d.fail(dist, "no distribution", "run `irsa apply --only issuer`")
	case !st.Enabled || st.Status != "Deployed":
		d.fail(dist, fmt.Sprintf("distribution %s is %s (enabled %v)", st.DistributionID, st.Status, st.Enabled),
			"wait for it to deploy (run `irsa apply` again: it waits), or enable it")
	default:
		if msg := d.fetchBoth(ctx); msg != "" {
			d.fail(dist, msg, "run `irsa apply --only issuer`; the documents must be served directly with status 200 (STS follows no redirect)")
		} else {
			d.pass(dist, fmt.Sprintf("distribution %s (%s) is deployed and serves both documents as application/json, without a redirect", st.DistributionID, st.DistributionDomain))
		}
	}

	if h.Domain != "" {
		const cert = "certificate"
		now := d.in.Now()
		switch {
		case st.CertificateARN == "":
			d.fail(cert, "no ACM certificate of irsa's for "+h.Domain+" in us-east-1", "run `irsa apply --only issuer`")
		case st.CertificateStatus != "ISSUED":
			d.fail(cert, fmt.Sprintf("ACM certificate %s is %s", st.CertificateARN, st.CertificateStatus), "check the validation record in the hosted zone, then run `irsa apply --only issuer`")
		case !slices.Contains(st.CertificateNames, h.Domain):
			d.fail(cert, fmt.Sprintf("ACM certificate %s covers %v, not %s", st.CertificateARN, st.CertificateNames, h.Domain), "run `irsa apply --only issuer`")
		case !st.CertificateNotAfter.IsZero() && now.After(st.CertificateNotAfter):
			d.fail(cert, fmt.Sprintf("ACM certificate %s expired %s", st.CertificateARN, st.CertificateNotAfter.Format("2006-01-02")), "check ACM's renewal (the validation record must stay)")
		default:
			d.pass(cert, fmt.Sprintf("ACM certificate %s is issued for %s", st.CertificateARN, h.Domain))
		}
	}
}

// providerURL checks that the IAM provider's URL is the issuer (cloudfront hosting: the distribution's, or the
// domain).
func (d *doctor) providerURL() {
	const name = "provider URL"
	if d.provider == nil {
		d.fail(name, "no IAM provider", "run `irsa apply --only provider`")
		return
	}
	if documents.HostPath(d.provider.IssuerURL()) != documents.HostPath(d.in.IssuerURL) {
		d.fail(name, fmt.Sprintf("the IAM provider's URL %s is not the issuer %s", d.provider.IssuerURL(), d.in.IssuerURL), "run `irsa apply --only provider`")
		return
	}
	d.pass(name, "the IAM provider's URL is the issuer "+d.in.IssuerURL)
}

// fetchBoth GETs both documents from the issuer URL as STS does, following no redirect, and says what is wrong.
func (d *doctor) fetchBoth(ctx context.Context) string {
	client := d.in.HTTPClient
	if client == nil {
		client = http.DefaultClient
	}
	c := *client
	c.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	for _, key := range []string{config.DiscoveryKey, config.JWKSKey} {
		u := documents.JoinURL(d.in.IssuerURL, key)
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
		if err != nil {
			return err.Error()
		}
		resp, err := c.Do(req)
		if err != nil {
			return fmt.Sprintf("GET %s: %v", u, err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return fmt.Sprintf("GET %s: %s %s", u, resp.Status, resp.Header.Get("Location"))
		}
		if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
			return fmt.Sprintf("GET %s: Content-Type %q, want application/json", u, ct)
		}
	}
	return ""
}
