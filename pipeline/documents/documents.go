// Package documents builds the two documents an OIDC issuer publishes for IRSA: the discovery document and the JSON Web
// Key Set. They are pure functions with deterministic output, so a re-publish uploads nothing when nothing changed.
package documents

import (
	"bytes"
	"crypto"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"net/url"
	"sort"
	"strings"

	jose "github.com/go-jose/go-jose/v4"

	"github.com/irsa-anywhere/irsa/pipeline/config"
)

// KeyID returns the kid kube-apiserver puts in the header of the tokens it signs with key:
// base64url(SHA-256(PKIX DER of the public key)), unpadded.
func KeyID(key crypto.PublicKey) (string, error) {
	der, err := x509.MarshalPKIXPublicKey(key)
	if err != nil {
		return "", fmt.Errorf("marshal public key: %w", err)
	}
	sum := sha256.Sum256(der)
	return base64.RawURLEncoding.EncodeToString(sum[:]), nil
}

// Discovery is the OpenID Connect discovery document STS reads from <issuer>/.well-known/openid-configuration.
type Discovery struct {
	Issuer                           string   `json:"issuer"`
	JWKSURI                          string   `json:"jwks_uri"`
	AuthorizationEndpoint            string   `json:"authorization_endpoint"`
	ResponseTypesSupported           []string `json:"response_types_supported"`
	SubjectTypesSupported            []string `json:"subject_types_supported"`
	IDTokenSigningAlgValuesSupported []string `json:"id_token_signing_alg_values_supported"`
	ClaimsSupported                  []string `json:"claims_supported"`
}

// DiscoveryDocument returns the discovery document for issuerURL, whose JWKS is published at <issuer>/keys.json.
// The issuer field is issuerURL exactly as given (after validation), because STS compares it byte for byte with the
// token's iss claim and the provider URL.
func DiscoveryDocument(issuerURL string) ([]byte, error) {
	if err := config.ValidateIssuerURL(issuerURL); err != nil {
		return nil, err
	}
	d := Discovery{
		Issuer:                           issuerURL,
		JWKSURI:                          JoinURL(issuerURL, config.JWKSKey),
		AuthorizationEndpoint:            "urn:kubernetes:programmatic_authorization",
		ResponseTypesSupported:           []string{"id_token"},
		SubjectTypesSupported:            []string{"public"},
		IDTokenSigningAlgValuesSupported: []string{"RS256"},
		ClaimsSupported:                  []string{"sub", "iss"},
	}
	return marshal(d)
}

// JoinURL appends an object key to the issuer URL with exactly one slash between them.
func JoinURL(issuerURL, key string) string {
	return strings.TrimSuffix(issuerURL, "/") + "/" + strings.TrimPrefix(key, "/")
}

// JWKSOptions changes what JWKS includes.
type JWKSOptions struct {
	// LegacyEmptyKID adds, for every key, a copy with an empty kid: tokens from clusters older than Kubernetes 1.16
	// carry no kid, and the upstream self-hosted guide publishes such a copy for them.
	LegacyEmptyKID bool
}

// JWKS returns the key set for keys: RSA public keys, with kid = KeyID, use "sig" and alg RS256, sorted by kid and
// deduplicated so the output is the same whatever the input order.
func JWKS(keys []crypto.PublicKey, opts JWKSOptions) ([]byte, error) {
	set, err := KeySet(keys, opts)
	if err != nil {
		return nil, err
	}
	return marshal(set)
}

// KeySet is JWKS as a value.
func KeySet(keys []crypto.PublicKey, opts JWKSOptions) (jose.JSONWebKeySet, error) {
	if len(keys) == 0 {
		return jose.JSONWebKeySet{}, fmt.Errorf("build JWKS: no public keys given")
	}
	byKID := map[string]jose.JSONWebKey{}
	for i, k := range keys {
		rk, ok := k.(*rsa.PublicKey)
		if !ok {
			return jose.JSONWebKeySet{}, fmt.Errorf("build JWKS: key %d is %T: service account keys must be RSA (kube-apiserver signs with RS256)", i, k)
		}
		kid, err := KeyID(rk)
		if err != nil {
			return jose.JSONWebKeySet{}, err
		}
		byKID[kid] = jose.JSONWebKey{Key: rk, KeyID: kid, Algorithm: string(jose.RS256), Use: "sig"}
	}
	kids := make([]string, 0, len(byKID))
	for kid := range byKID {
		kids = append(kids, kid)
	}
	sort.Strings(kids)
	var set jose.JSONWebKeySet
	for _, kid := range kids {
		set.Keys = append(set.Keys, byKID[kid])
	}
	if opts.LegacyEmptyKID {
		for _, kid := range kids {
			k := byKID[kid]
			k.KeyID = ""
			set.Keys = append(set.Keys, k)
		}
	}
	return set, nil
}

// ParsePublicKeyPEM reads RSA public keys from PEM: PKIX "PUBLIC KEY", PKCS#1 "RSA PUBLIC KEY", a certificate, or a
// private key (its public half). name identifies the source in errors.
func ParsePublicKeyPEM(name string, data []byte) ([]crypto.PublicKey, error) {
	var keys []crypto.PublicKey
	rest := data
	for {
		var block *pem.Block
		block, rest = pem.Decode(rest)
		if block == nil {
			break
		}
		var (
			key any
			err error
		)
		switch block.Type {
		case "PUBLIC KEY":
			key, err = x509.ParsePKIXPublicKey(block.Bytes)
		case "RSA PUBLIC KEY":
			key, err = x509.ParsePKCS1PublicKey(block.Bytes)
		case "CERTIFICATE":
			var c *x509.Certificate
			if c, err = x509.ParseCertificate(block.Bytes); err == nil {
				key = c.PublicKey
			}
		case "RSA PRIVATE KEY":
			var p *rsa.PrivateKey
			if p, err = x509.ParsePKCS1PrivateKey(block.Bytes); err == nil {
				key = &p.PublicKey
			}
		case "PRIVATE KEY":
			var p any
			if p, err = x509.ParsePKCS8PrivateKey(block.Bytes); err == nil {
				if s, ok := p.(crypto.Signer); ok {
					key = s.Public()
				}
			}
		default:
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("parse %s block in %s: %w", block.Type, name, err)
		}
		rk, ok := key.(*rsa.PublicKey)
		if !ok {
			return nil, fmt.Errorf("key in %s is %T: service account keys must be RSA", name, key)
		}
		keys = append(keys, rk)
	}
	if len(keys) == 0 {
		return nil, fmt.Errorf("no PEM public key found in %s", name)
	}
	return keys, nil
}

// ParseJWKS reads the RSA keys of a JWKS, as served by kube-apiserver at /openid/v1/jwks.
func ParseJWKS(data []byte) ([]crypto.PublicKey, error) {
	var set jose.JSONWebKeySet
	if err := json.Unmarshal(data, &set); err != nil {
		return nil, fmt.Errorf("parse JWKS: %w", err)
	}
	var keys []crypto.PublicKey
	for _, k := range set.Keys {
		if rk, ok := k.Key.(*rsa.PublicKey); ok {
			keys = append(keys, rk)
		}
	}
	return keys, nil
}

// HostPath is the issuer URL without its scheme, the prefix of IAM condition keys (host/path:sub, host/path:aud)
// and the name in the provider ARN.
func HostPath(issuerURL string) string {
	u, err := url.Parse(issuerURL)
	if err != nil || u.Host == "" {
		return strings.TrimPrefix(strings.TrimPrefix(issuerURL, "https://"), "http://")
	}
	return u.Host + strings.TrimSuffix(u.EscapedPath(), "/")
}

func marshal(v any) ([]byte, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetIndent("", "  ")
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// SameJSON reports whether two JSON documents are equal once parsed: AWS hands policies back reformatted.
func SameJSON(a, b string) bool {
	var x, y any
	if json.Unmarshal([]byte(a), &x) != nil || json.Unmarshal([]byte(b), &y) != nil {
		return false
	}
	xb, _ := json.Marshal(x)
	yb, _ := json.Marshal(y)
	return bytes.Equal(xb, yb)
}
