package config

import (
	"fmt"
	"regexp"
	"strings"
)

// Issuer hosting modes (issuer.hosting, --issuer-hosting).
const (
	// HostingS3Public serves the documents from a bucket whose policy makes exactly them public (the default).
	HostingS3Public = "s3-public"
	// HostingCloudFront serves them through a CloudFront distribution from a private bucket that only the
	// distribution may read (origin access control); the issuer is the distribution's domain, or Domain.
	HostingCloudFront = "cloudfront"
)

// IssuerHostings are the values of issuer.hosting.
var IssuerHostings = []string{HostingS3Public, HostingCloudFront}

// IssuerConfig says how the issuer's documents are served (irsa.yaml's issuer:).
type IssuerConfig struct {
	// Hosting is s3-public (default) or cloudfront.
	Hosting string `json:"hosting,omitempty"`
	// Domain, with cloudfront hosting, is the issuer's own DNS name (the issuer URL is https://Domain): an ACM
	// certificate in us-east-1 validated through DNS and alias records in the Route 53 hosted zone HostedZoneID.
	Domain string `json:"domain,omitempty"`
	// HostedZoneID is the public Route 53 hosted zone of Domain; empty means the zone whose name is the longest
	// suffix of Domain (route53:ListHostedZonesByName).
	HostedZoneID string `json:"hostedZoneID,omitempty"`
}

// hostedZoneIDRE is a Route 53 hosted zone ID (Z and up to 32 upper-case letters and digits), optionally with the
// /hostedzone/ prefix the API returns.
var hostedZoneIDRE = regexp.MustCompile(`^(/hostedzone/)?Z[A-Z0-9]{1,32}$`)

// CloudFront reports whether the issuer is served through CloudFront.
func (c *Config) CloudFront() bool { return c.Issuer.Hosting == HostingCloudFront }

// defaultIssuer fills in the hosting mode and, with cloudfront hosting and a domain, the issuer URL. Without a domain
// the cloudfront issuer URL stays empty here: it is the distribution's domain name, known once it exists (setup finds
// it read-only, or the issuer stage creates it).
func (c *Config) defaultIssuer() {
	if c.Issuer.Hosting == "" {
		c.Issuer.Hosting = HostingS3Public
	}
	c.Issuer.Domain = strings.TrimSuffix(strings.ToLower(c.Issuer.Domain), ".")
	if c.CloudFront() && c.IssuerURL == "" && c.Issuer.Domain != "" {
		c.IssuerURL = "https://" + c.Issuer.Domain
	}
}

// validateIssuer checks issuer.hosting, issuer.domain and issuer.hostedZoneID, and how they agree with issuerURL.
// The cloudfront issuer is https://DOMAIN or https://DISTRIBUTION.cloudfront.net: irsa derives it, so an issuerURL
// of another value is refused.
func (c *Config) validateIssuer() []string {
	var errs []string
	switch c.Issuer.Hosting {
	case HostingS3Public, HostingCloudFront:
	default:
		return []string{fmt.Sprintf("issuer.hosting %q: must be one of %s", c.Issuer.Hosting, strings.Join(IssuerHostings, ", "))}
	}
	if !c.CloudFront() {
		if c.Issuer.Domain != "" || c.Issuer.HostedZoneID != "" {
			errs = append(errs, fmt.Sprintf("issuer.domain %q and issuer.hostedZoneID %q: need issuer.hosting cloudfront (an S3 bucket cannot serve HTTPS for a domain of your own)", c.Issuer.Domain, c.Issuer.HostedZoneID))
		}
		return errs
	}
	if d := c.Issuer.Domain; d != "" {
		if !hostRE.MatchString(d) || !strings.Contains(d, ".") || len(d) > 253 {
			errs = append(errs, fmt.Sprintf("issuer.domain %q: must be a fully qualified lowercase DNS name such as oidc.example.com", d))
		} else if c.IssuerURL != "https://"+d {
			errs = append(errs, fmt.Sprintf("issuerURL %q: with issuer.hosting cloudfront and issuer.domain %q the issuer is https://%s: leave issuerURL empty", c.IssuerURL, d, d))
		}
	} else if c.IssuerURL != "" && !CloudFrontIssuerRE.MatchString(c.IssuerURL) {
		errs = append(errs, fmt.Sprintf("issuerURL %q: with issuer.hosting cloudfront the issuer is the distribution's https://DOMAIN.cloudfront.net: leave issuerURL empty, or set issuer.domain for a URL of your own", c.IssuerURL))
	}
	if z := c.Issuer.HostedZoneID; z != "" {
		if c.Issuer.Domain == "" {
			errs = append(errs, fmt.Sprintf("issuer.hostedZoneID %q: needs issuer.domain", z))
		} else if !hostedZoneIDRE.MatchString(z) {
			errs = append(errs, fmt.Sprintf("issuer.hostedZoneID %q: must be a Route 53 hosted zone ID such as Z0123456789ABCDEFGHIJ", z))
		}
	}
	return errs
}

// CloudFrontIssuerRE matches the issuer URL of a distribution's own domain (https://d111111abcdef8.cloudfront.net).
var CloudFrontIssuerRE = regexp.MustCompile(`^https://[a-z0-9]+\.cloudfront\.net$`)
