// Package issuer is the issuer stage: it builds the issuer's two documents (the OIDC discovery document and the
// JWKS) and hands them to a Host that serves them where STS fetches them anonymously. Each hosting mode is a Host in
// a package of its own (s3public: a bucket whose policy makes exactly the two documents public); the stage, the
// document keys and the documents themselves are the same for all of them.
package issuer

import (
	"context"
	"crypto"
	"fmt"
	"net/url"
	"strings"

	"github.com/irsa-anywhere/irsa/pipeline/config"
	"github.com/irsa-anywhere/irsa/pipeline/documents"
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

// Stage publishes the issuer through its Host.
type Stage struct {
	Host Host
	// IssuerURL is the issuer the discovery document names.
	IssuerURL string
	// DiscoveryKey and JWKSKey are the documents' object keys (ObjectKeys).
	DiscoveryKey, JWKSKey string
	// Keys returns the public keys to publish.
	Keys           func(ctx context.Context) ([]crypto.PublicKey, error)
	LegacyEmptyKID bool
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

// Documents builds the two documents.
func (s *Stage) Documents(ctx context.Context) ([]Document, error) {
	keys, err := s.Keys(ctx)
	if err != nil {
		return nil, err
	}
	// The discovery document advertises the algorithms of the keys (RS256, ES256, ...), as kube-apiserver's does.
	disc, err := documents.DiscoveryDocumentFor(s.IssuerURL, keys)
	if err != nil {
		return nil, err
	}
	jwks, err := documents.JWKS(keys, documents.JWKSOptions{LegacyEmptyKID: s.LegacyEmptyKID})
	if err != nil {
		return nil, err
	}
	return []Document{
		{Key: s.DiscoveryKey, Body: disc, ContentType: "application/json"},
		{Key: s.JWKSKey, Body: jwks, ContentType: "application/json"},
	}, nil
}

// Plan implements stage.Stage.
func (s *Stage) Plan(ctx context.Context) ([]stage.Change, error) {
	docs, err := s.Documents(ctx)
	if err != nil {
		return nil, err
	}
	return s.Host.Plan(ctx, docs)
}

// Apply implements stage.Stage.
func (s *Stage) Apply(ctx context.Context) ([]stage.Change, error) {
	docs, err := s.Documents(ctx)
	if err != nil {
		return nil, err
	}
	changes, err := s.Host.Publish(ctx, docs)
	if err != nil {
		return changes, fmt.Errorf("publish issuer %s: %w", s.IssuerURL, err)
	}
	return changes, nil
}

// Delete implements stage.Stage.
func (s *Stage) Delete(ctx context.Context) ([]stage.Change, error) { return s.Host.Remove(ctx) }
