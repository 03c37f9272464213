// Package issuer is the issuer stage: it builds the issuer's two documents (the OIDC discovery document and the
// JWKS) and hands them to a Host that serves them where STS fetches them anonymously. Each hosting mode is a Host in
// a package of its own (s3public: a bucket whose policy makes exactly the two documents public); the stage, the
// document keys and the documents themselves are the same for all of them.
package issuer

import (
	"cmp"
	"context"
	"crypto"
	"errors"
	"fmt"
	"net/url"
	"strings"

	"github.com/irsa-anywhere/irsa/pipeline/config"
	"github.com/irsa-anywhere/irsa/pipeline/documents"
	"github.com/irsa-anywhere/irsa/pipeline/keys"
	"github.com/irsa-anywhere/irsa/pipeline/stage"
)

// Document is one issuer document: its object key (relative to where the host keeps them), body and content type.
type Document struct {
	Key         string
	Body        []byte
	ContentType string
}

// Host serves the issuer's documents. Implementations find what exists, change only what differs, and remove only
// what they own ("not found" counts as removed).
type Host interface {
	// Plan returns what Publish would change to serve docs; it writes nothing.
	Plan(ctx context.Context, docs []Document) ([]stage.Change, error)
	// Publish makes the host serve docs.
	Publish(ctx context.Context, docs []Document) ([]stage.Change, error)
	// Remove deletes what the host owns for the cluster.
	Remove(ctx context.Context) ([]stage.Change, error)
}

// Locator is a Host whose issuer URL is known only once the host exists: a CloudFront distribution's domain name
// is chosen by CloudFront when the distribution is created.
type Locator interface {
	Host
	// Locate returns the issuer URL and what had to change to know it. With create false it writes nothing and
	// returns "" when the URL is not known yet, with the changes that would make it known; with create true it makes
	// them and returns the URL.
	Locate(ctx context.Context, create bool) (issuerURL string, changes []stage.Change, err error)
}

// PendingURL stands for an issuer URL not known yet in the documents a plan builds.
const PendingURL = "https://pending.invalid"

// Reader is a Host that can hand back a document it serves. With it the stage merges the JWKS it publishes into the
// one already published (documents.MergeJWKS) instead of replacing it, so a key leaves the issuer only when it is
// retired on purpose. A Host without it has its JWKS replaced.
type Reader interface {
	// Read returns the document at key, or nil and no error when there is none (nor a bucket).
	Read(ctx context.Context, key string) ([]byte, error)
}

// Stage publishes the issuer through its Host.
type Stage struct {
	Host Host
	// IssuerURL is the issuer the discovery document names; empty when the Host is a Locator that has not found it
	// yet.
	IssuerURL string
	// Located, when set, is told the issuer URL a Locator host found or made, before the documents are published:
	// the stages after this one use it (setup passes target.Target.SetIssuerURL).
	Located func(issuerURL string)
	// DiscoveryKey and JWKSKey are the documents' object keys (ObjectKeys).
	DiscoveryKey, JWKSKey string
	// Keys returns the public keys to publish.
	Keys           func(ctx context.Context) ([]crypto.PublicKey, error)
	LegacyEmptyKID bool
	// Retire are kids to remove from the published JWKS although it published them: `irsa sync --retire`, `irsa
	// rotate-key retire`. Every other published key is kept (Reader).
	Retire []string
}

// Name implements stage.Stage.
func (s *Stage) Name() string { return stage.Issuer }

// Prefix is where the documents live in the bucket: the issuer URL's path, less the bucket name when the URL is
// path-style (https://endpoint/bucket).
func Prefix(issuerURL, bucket string) string {
	u, err := url.Parse(issuerURL)
	if err != nil {
		return ""
	}
	p := strings.Trim(u.Path, "/")
	if !strings.HasPrefix(u.Host, bucket+".") {
		p = strings.TrimPrefix(strings.TrimPrefix(p, bucket), "/")
	}
	if p == "" {
		return ""
	}
	return p + "/"
}

// ObjectKeys are the keys of the discovery document and the JWKS in the bucket.
func ObjectKeys(issuerURL, bucket string) (discovery, jwks string) {
	pre := Prefix(issuerURL, bucket)
	return pre + config.DiscoveryKey, pre + config.JWKSKey
}

// Documents builds the two documents: the JWKS is the keys of Keys merged into the JWKS already published (when
// the Host is a Reader) less Retire, and the discovery document advertises the algorithms of the merged keys.
func (s *Stage) Documents(ctx context.Context) ([]Document, documents.Merged, error) {
	var merged documents.Merged
	keys, err := s.Keys(ctx)
	if err != nil {
		return nil, merged, err
	}
	var published []byte
	if r, ok := s.Host.(Reader); ok {
		if published, err = r.Read(ctx, s.JWKSKey); err != nil {
			return nil, merged, fmt.Errorf("read the published JWKS %s: %w", s.JWKSKey, err)
		}
	}
	if merged, err = documents.MergeJWKS(published, keys, s.Retire, documents.JWKSOptions{LegacyEmptyKID: s.LegacyEmptyKID}); err != nil {
		return nil, merged, err
	}
	// The discovery document advertises the algorithms of the keys (RS256, ES256, ...), as kube-apiserver's does.
	disc, err := documents.DiscoveryDocumentFor(s.IssuerURL, merged.PublicKeys())
	if err != nil {
		return nil, merged, err
	}
	jwks, err := documents.MarshalKeySet(merged.Set)
	if err != nil {
		return nil, merged, err
	}
	return []Document{
		{Key: s.DiscoveryKey, Body: disc, ContentType: "application/json"},
		{Key: s.JWKSKey, Body: jwks, ContentType: "application/json"},
	}, merged, nil
}

// describe adds to the JWKS object's change which kids it adds, keeps and retires.
func (s *Stage) describe(changes []stage.Change, m documents.Merged) []stage.Change {
	var parts []string
	for _, p := range []struct {
		what string
		kids []string
	}{{"adds", m.Added}, {"retires", m.Retired}, {"keeps published", m.Retained}, {"strips private fields of", m.Stripped}} {
		if len(p.kids) > 0 {
			parts = append(parts, p.what+" "+strings.Join(p.kids, ", "))
		}
	}
	if len(parts) == 0 {
		return changes
	}
	for i, c := range changes {
		if c.Name == s.JWKSKey || strings.HasSuffix(c.Name, "/"+s.JWKSKey) {
			changes[i].Detail = strings.TrimPrefix(c.Detail+"; JWKS "+strings.Join(parts, "; "), "; ")
		}
	}
	return changes
}

// locate asks a Locator host for the issuer URL (see Locator) and passes a URL it learns to Located.
func (s *Stage) locate(ctx context.Context, create bool) ([]stage.Change, error) {
	l, ok := s.Host.(Locator)
	if !ok {
		return nil, nil
	}
	u, changes, err := l.Locate(ctx, create)
	if err != nil {
		return changes, err
	}
	if u != "" && u != s.IssuerURL {
		s.IssuerURL = u
		if s.Located != nil {
			s.Located(u)
		}
	}
	return changes, nil
}

// Plan implements stage.Stage.
func (s *Stage) Plan(ctx context.Context) ([]stage.Change, error) {
	changes, err := s.locate(ctx, false)
	if err != nil {
		return nil, err
	}
	docs, merged, err := s.withURL(cmp.Or(s.IssuerURL, PendingURL)).Documents(ctx)
	if errors.Is(err, keys.ErrKeysPending) {
		// A first run with a new key directory: the keys stage, which runs first, makes the key.
		return append(changes, stage.Change{Action: stage.Create, Kind: "issuer-documents", Name: s.DiscoveryKey + ", " + s.JWKSKey,
			Detail: "published with the public key the keys stage makes"}), nil
	}
	if err != nil {
		return nil, err
	}
	more, err := s.Host.Plan(ctx, docs)
	return append(changes, s.describe(more, merged)...), err
}

func (s *Stage) withURL(u string) *Stage {
	c := *s
	c.IssuerURL = u
	return &c
}

// Apply implements stage.Stage.
func (s *Stage) Apply(ctx context.Context) ([]stage.Change, error) {
	located, err := s.locate(ctx, true)
	if err != nil {
		return located, fmt.Errorf("publish issuer: %w", err)
	}
	docs, merged, err := s.Documents(ctx)
	if err != nil {
		return located, err
	}
	changes, err := s.Host.Publish(ctx, docs)
	changes = append(located, s.describe(changes, merged)...)
	if err != nil {
		return changes, fmt.Errorf("publish issuer %s: %w", s.IssuerURL, err)
	}
	return changes, nil
}

// Delete implements stage.Stage.
func (s *Stage) Delete(ctx context.Context) ([]stage.Change, error) { return s.Host.Remove(ctx) }
