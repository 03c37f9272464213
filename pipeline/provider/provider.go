// Package provider is the provider stage: the IAM OIDC identity provider that makes IAM trust tokens from the issuer,
// with the audience as a client ID.
package provider

import (
	"context"
	"crypto/sha1"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"fmt"
	"net"
	"net/url"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/iam"
	iamtypes "github.com/aws/aws-sdk-go-v2/service/iam/types"

	"github.com/irsa-anywhere/irsa/pipeline/awsclient"
	"github.com/irsa-anywhere/irsa/pipeline/config"
	"github.com/irsa-anywhere/irsa/pipeline/documents"
	"github.com/irsa-anywhere/irsa/pipeline/proxy"
	"github.com/irsa-anywhere/irsa/pipeline/stage"
)

// Stage creates and updates the provider.
type Stage struct {
	IAM         *iam.Client
	Region      string
	ClusterName string
	IssuerURL   string
	Audience    string
	// ClientIDs are further client IDs the provider must list besides Audience: the audiences bindings ask for
	// (eks.amazonaws.com/audience). Any other client ID is drift, and apply removes it.
	ClientIDs []string
	// TrustedAudiences, when set, lists the audiences the cluster's roles trust (a role bound with `irsa bind
	// --sa-audience`, whose client ID the user added): an extra client ID among them is in use, not drift. It is asked
	// only when the provider lists a client ID beyond Audience and ClientIDs.
	TrustedAudiences func(ctx context.Context) ([]string, error)
	// Thumbprints, when set, are used as they are; otherwise they are taken from the issuer host's TLS chain.
	Thumbprints []string
	// PublicCA says the issuer's certificate chains to a public CA IAM trusts (CloudFront's default certificate, ACM):
	// without Thumbprints the provider is created with none and its thumbprints are not compared, because IAM then
	// verifies the issuer by its CA and keeps whatever thumbprint it retrieves itself (IAM user guide, "Create an
	// OpenID Connect (OIDC) identity provider in IAM": the thumbprint list is optional).
	PublicCA bool
	// AccountID returns the account the provider lives in.
	AccountID func(ctx context.Context) (string, error)
	// RootCAs verify the issuer host when taking its thumbprint; nil means the system roots.
	RootCAs *x509.CertPool
}

func (s *Stage) Name() string { return stage.Provider }

// ARN is the provider's ARN: IAM names it after the issuer's host and path.
func ARN(partition, account, issuerURL string) string {
	return fmt.Sprintf("arn:%s:iam::%s:oidc-provider/%s", partition, account, documents.HostPath(issuerURL))
}

// Thumbprint returns the SHA-1 fingerprint, in lowercase hex, of the last certificate the issuer's host sends in its
// TLS chain (the top intermediate or root CA), which is how AWS documents obtaining it. IAM no longer relies on it
// for issuers whose CA it trusts (S3 among them), but still requires one.
func Thumbprint(ctx context.Context, issuerURL string, roots *x509.CertPool) (string, error) {
	u, err := url.Parse(issuerURL)
	if err != nil {
		return "", fmt.Errorf("thumbprint of %q: %w", issuerURL, err)
	}
	host := u.Host
	if u.Port() == "" {
		host = net.JoinHostPort(u.Hostname(), "443")
	}
	// Through $HTTPS_PROXY when it applies (NO_PROXY), as the issuer's documents are fetched.
	conn, err := proxy.DialTLS(ctx, host, &tls.Config{ServerName: u.Hostname(), RootCAs: roots, MinVersion: tls.VersionTLS12}, 10*time.Second)
	if err != nil {
		return "", fmt.Errorf("thumbprint of %q: TLS connection to %s: %w (pass --thumbprint to set it by hand)", issuerURL, host, err)
	}
	defer conn.Close()
	certs := conn.ConnectionState().PeerCertificates
	if len(certs) == 0 {
		return "", fmt.Errorf("thumbprint of %q: %s sent no certificate", issuerURL, host)
	}
	sum := sha1.Sum(certs[len(certs)-1].Raw)
	return hex.EncodeToString(sum[:]), nil
}

func (s *Stage) wanted(ctx context.Context) (arn string, thumbprints []string, err error) {
	account, err := s.AccountID(ctx)
	if err != nil {
		return "", nil, err
	}
	arn = ARN(awsclient.Partition(s.Region), account, s.IssuerURL)
	thumbprints = s.Thumbprints
	if len(thumbprints) == 0 && !s.PublicCA {
		tp, err := Thumbprint(ctx, s.IssuerURL, s.RootCAs)
		if err != nil {
			return "", nil, err
		}
		thumbprints = []string{tp}
	}
	for i := range thumbprints {
		thumbprints[i] = strings.ToLower(thumbprints[i])
	}
	sort.Strings(thumbprints)
	return arn, thumbprints, nil
}

func (s *Stage) tags() []iamtypes.Tag {
	return []iamtypes.Tag{
		{Key: aws.String(config.OwnerTagKey), Value: aws.String(s.ClusterName)},
		{Key: aws.String(config.ManagedByTagKey), Value: aws.String(config.ManagedByValue)},
	}
}

type plan struct {
	arn         string
	thumbprints []string
	exists      bool
	addClientID []string
	removeID    []string
	setThumbs   bool
	setTags     bool
	changes     []stage.Change
}

// clientIDs is every client ID the provider must list, sorted.
func (s *Stage) clientIDs() []string {
	ids := append([]string{s.Audience}, s.ClientIDs...)
	sort.Strings(ids)
	return slices.Compact(ids)
}

func (s *Stage) diff(ctx context.Context) (*plan, error) {
	arn, thumbprints, err := s.wanted(ctx)
	if err != nil {
		return nil, err
	}
	p := &plan{arn: arn, thumbprints: thumbprints}
	out, err := s.IAM.GetOpenIDConnectProvider(ctx, &iam.GetOpenIDConnectProviderInput{OpenIDConnectProviderArn: &arn})
	if awsclient.IsNotFound(err) {
		p.changes = append(p.changes, stage.Change{Action: stage.Create, Kind: "iam-oidc-provider", Name: arn,
			Detail: fmt.Sprintf("url %s, client ID %s, thumbprint %s", s.IssuerURL, strings.Join(s.clientIDs(), ","), strings.Join(thumbprints, ","))})
		return p, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read IAM OIDC provider %q: %w", arn, err)
	}
	p.exists = true
	if err := s.checkOwner(arn, out.Tags); err != nil {
		return nil, err
	}
	want := s.clientIDs()
	for _, id := range want {
		if !slices.Contains(out.ClientIDList, id) {
			p.addClientID = append(p.addClientID, id)
			p.changes = append(p.changes, stage.Change{Action: stage.Update, Kind: "iam-oidc-provider", Name: arn, Detail: "add client ID " + id})
		}
	}
	var inUse []string
	for _, id := range out.ClientIDList {
		if !slices.Contains(want, id) && inUse == nil && s.TrustedAudiences != nil {
			if inUse, err = s.TrustedAudiences(ctx); err != nil {
				return nil, err
			}
			inUse = append(inUse, "") // asked once
		}
		if !slices.Contains(want, id) && !slices.Contains(inUse, id) {
			p.removeID = append(p.removeID, id)
			p.changes = append(p.changes, stage.Change{Action: stage.Update, Kind: "iam-oidc-provider", Name: arn, Detail: "remove client ID " + id})
		}
	}
	have := append([]string(nil), out.ThumbprintList...)
	for i := range have {
		have[i] = strings.ToLower(have[i])
	}
	sort.Strings(have)
	if !slices.Equal(have, thumbprints) && (len(thumbprints) > 0 || !s.PublicCA) {
		p.setThumbs = true
		p.changes = append(p.changes, stage.Change{Action: stage.Update, Kind: "iam-oidc-provider", Name: arn,
			Detail: fmt.Sprintf("thumbprints %s -> %s", strings.Join(have, ","), strings.Join(thumbprints, ","))})
	}
	if !hasTag(out.Tags, config.ManagedByTagKey, config.ManagedByValue) {
		p.setTags = true
		p.changes = append(p.changes, stage.Change{Action: stage.Update, Kind: "iam-oidc-provider", Name: arn, Detail: "tags"})
	}
	return p, nil
}

func (s *Stage) Plan(ctx context.Context) ([]stage.Change, error) {
	p, err := s.diff(ctx)
	if err != nil {
		return nil, err
	}
	return p.changes, nil
}

// Apply creates the provider, or brings it to what is wanted. When a call fails, it returns the changes already made
// with the error.
func (s *Stage) Apply(ctx context.Context) ([]stage.Change, error) {
	p, err := s.diff(ctx)
	if err != nil {
		return nil, err
	}
	if !p.exists {
		_, err := s.IAM.CreateOpenIDConnectProvider(ctx, &iam.CreateOpenIDConnectProviderInput{
			Url: &s.IssuerURL, ClientIDList: s.clientIDs(), ThumbprintList: p.thumbprints, Tags: s.tags(),
		})
		if awsclient.ErrorCode(err) != "EntityAlreadyExists" {
			if err != nil {
				return nil, fmt.Errorf("create IAM OIDC provider %q: %w", s.IssuerURL, err)
			}
			return p.changes, nil
		}
		// Missing a moment ago: the SDK retried a create whose response was lost, or another run made it. Adopt it
		// only if it carries this cluster's tag (diff checks), and finish it.
		created := p.changes
		if p, err = s.diff(ctx); err != nil {
			return nil, fmt.Errorf("create IAM OIDC provider %q: it appeared meanwhile: %w", s.IssuerURL, err)
		}
		p.changes = created
	}
	var done []stage.Change
	mark := func(detail string) {
		for _, c := range p.changes {
			if c.Detail == detail || (detail == "thumbprints" && strings.HasPrefix(c.Detail, "thumbprints ")) {
				done = append(done, c)
			}
		}
	}
	for _, id := range p.addClientID {
		if _, err := s.IAM.AddClientIDToOpenIDConnectProvider(ctx, &iam.AddClientIDToOpenIDConnectProviderInput{OpenIDConnectProviderArn: &p.arn, ClientID: aws.String(id)}); err != nil {
			return done, fmt.Errorf("add client ID %q to IAM OIDC provider %q: %w", id, p.arn, err)
		}
		mark("add client ID " + id)
	}
	for _, id := range p.removeID {
		if _, err := s.IAM.RemoveClientIDFromOpenIDConnectProvider(ctx, &iam.RemoveClientIDFromOpenIDConnectProviderInput{OpenIDConnectProviderArn: &p.arn, ClientID: aws.String(id)}); err != nil {
			return done, fmt.Errorf("remove client ID %q from IAM OIDC provider %q: %w", id, p.arn, err)
		}
		mark("remove client ID " + id)
	}
	if p.setThumbs {
		if _, err := s.IAM.UpdateOpenIDConnectProviderThumbprint(ctx, &iam.UpdateOpenIDConnectProviderThumbprintInput{OpenIDConnectProviderArn: &p.arn, ThumbprintList: p.thumbprints}); err != nil {
			return done, fmt.Errorf("update thumbprints of IAM OIDC provider %q: %w", p.arn, err)
		}
		mark("thumbprints")
	}
	if p.setTags {
		if _, err := s.IAM.TagOpenIDConnectProvider(ctx, &iam.TagOpenIDConnectProviderInput{OpenIDConnectProviderArn: &p.arn, Tags: s.tags()}); err != nil {
			return done, fmt.Errorf("tag IAM OIDC provider %q: %w", p.arn, err)
		}
		mark("tags")
	}
	return p.changes, nil
}

// Delete removes the provider if irsa owns it for this cluster, and every other IAM OIDC provider of the account tagged
// for this cluster (an earlier issuer URL's): teardown finds what the cluster owns by its tags, not by today's
// configuration.
func (s *Stage) Delete(ctx context.Context) ([]stage.Change, error) {
	account, err := s.AccountID(ctx)
	if err != nil {
		return nil, err
	}
	arns := []string{ARN(awsclient.Partition(s.Region), account, s.IssuerURL)}
	list, err := s.IAM.ListOpenIDConnectProviders(ctx, &iam.ListOpenIDConnectProvidersInput{})
	if err != nil {
		return nil, fmt.Errorf("list IAM OIDC providers (to find the ones tagged %s=%s): %w", config.OwnerTagKey, s.ClusterName, err)
	}
	for _, p := range list.OpenIDConnectProviderList {
		if a := aws.ToString(p.Arn); !slices.Contains(arns, a) {
			arns = append(arns, a)
		}
	}
	var changes []stage.Change
	for i, arn := range arns {
		out, err := s.IAM.GetOpenIDConnectProvider(ctx, &iam.GetOpenIDConnectProviderInput{OpenIDConnectProviderArn: &arn})
		if awsclient.IsNotFound(err) {
			continue
		}
		if err != nil {
			return changes, fmt.Errorf("read IAM OIDC provider %q: %w", arn, err)
		}
		if !hasTag(out.Tags, config.OwnerTagKey, s.ClusterName) {
			if i == 0 {
				changes = append(changes, stage.Change{Action: stage.Keep, Kind: "iam-oidc-provider", Name: arn, Detail: "not tagged " + config.OwnerTagKey + "=" + s.ClusterName})
			}
			continue
		}
		if _, err := s.IAM.DeleteOpenIDConnectProvider(ctx, &iam.DeleteOpenIDConnectProviderInput{OpenIDConnectProviderArn: &arn}); err != nil && !awsclient.IsNotFound(err) {
			return changes, fmt.Errorf("delete IAM OIDC provider %q: %w", arn, err)
		}
		changes = append(changes, stage.Change{Action: stage.Delete, Kind: "iam-oidc-provider", Name: arn})
	}
	return changes, nil
}

func (s *Stage) checkOwner(arn string, tags []iamtypes.Tag) error {
	if !hasTag(tags, config.OwnerTagKey, s.ClusterName) {
		return fmt.Errorf("IAM OIDC provider %q exists but is not owned by irsa cluster %q (no tag %s=%s): delete it, or tag it if it belongs to this cluster", arn, s.ClusterName, config.OwnerTagKey, s.ClusterName)
	}
	return nil
}

// CheckOwned is the ownership check apply, plan and teardown make on the provider, for commands that only look
// (doctor): nil when it is missing or tagged for this cluster, the error apply would stop with otherwise.
func (s *Stage) CheckOwned(ctx context.Context) error {
	account, err := s.AccountID(ctx)
	if err != nil {
		return err
	}
	arn := ARN(awsclient.Partition(s.Region), account, s.IssuerURL)
	out, err := s.IAM.GetOpenIDConnectProvider(ctx, &iam.GetOpenIDConnectProviderInput{OpenIDConnectProviderArn: &arn})
	if awsclient.IsNotFound(err) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("read IAM OIDC provider %q: %w", arn, err)
	}
	return s.checkOwner(arn, out.Tags)
}

func hasTag(tags []iamtypes.Tag, key, value string) bool {
	for _, t := range tags {
		if aws.ToString(t.Key) == key && aws.ToString(t.Value) == value {
			return true
		}
	}
	return false
}
