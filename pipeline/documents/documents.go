// Package documents builds the two documents an OIDC issuer publishes for IRSA: the discovery document and the JSON Web
// Key Set. They are pure functions with deterministic output, so a re-publish uploads nothing when nothing changed.
package documents

import (
	"bytes"
	"crypto"
	"encoding/json"
	"fmt"
	"net/url"
	"sort"
	"strings"

	jose "github.com/go-jose/go-jose/v4"

	"github.com/irsa-anywhere/irsa/pipeline/config"
	"github.com/irsa-anywhere/irsa/pipeline/keys"
)

// KeyID returns the kid kube-apiserver puts in the header of the tokens it signs with key:
// base64url(SHA-256(PKIX DER of the public key)), unpadded. It is keys.KeyID.
func KeyID(key crypto.PublicKey) (string, error) { return keys.KeyID(key) }

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

// DiscoveryDocument returns the discovery document for issuerURL, whose JWKS is published at <issuer>/keys.json,
// advertising RS256 (kube-apiserver's default key). The issuer field is issuerURL exactly as given (after
// validation), because STS compares it byte for byte with the token's iss claim and the provider URL.
func DiscoveryDocument(issuerURL string) ([]byte, error) {
	return DiscoveryDocumentFor(issuerURL, nil)
}

// DiscoveryDocumentFor is DiscoveryDocument whose id_token_signing_alg_values_supported lists the algorithms of
// signingKeys, sorted (RS256 when there are none), as kube-apiserver's own discovery document does
// (k8s.io/kubernetes pkg/serviceaccount/openidmetadata.go). Keys that break keys.KeyRule are an error.
func DiscoveryDocumentFor(issuerURL string, signingKeys []crypto.PublicKey) ([]byte, error) {
	if err := config.ValidateIssuerURL(issuerURL); err != nil {
		return nil, err
	}
	algs := map[string]bool{}
	for i, k := range signingKeys {
		alg, err := keys.AlgorithmOf(k)
		if err != nil {
			return nil, fmt.Errorf("build discovery document: key %d: %w", i, err)
		}
		algs[string(alg)] = true
	}
	if len(algs) == 0 {
		algs[string(keys.RS256)] = true
	}
	supported := make([]string, 0, len(algs))
	for a := range algs {
		supported = append(supported, a)
	}
	sort.Strings(supported)
	d := Discovery{
		Issuer:                           issuerURL,
		JWKSURI:                          JoinURL(issuerURL, config.JWKSKey),
		AuthorizationEndpoint:            "urn:kubernetes:programmatic_authorization",
		ResponseTypesSupported:           []string{"id_token"},
		SubjectTypesSupported:            []string{"public"},
		IDTokenSigningAlgValuesSupported: supported,
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

// JWKS returns the key set for keys: RSA or ECDSA public keys (keys.KeyRule), each with kid = KeyID, use "sig" and
// the alg kube-apiserver signs with for it (RS256, ES256, ES384, ES512), sorted by kid and deduplicated so the output
// is the same whatever the input order. An EC key is published with crv, x and y, as kube-apiserver serves it.
func JWKS(keys []crypto.PublicKey, opts JWKSOptions) ([]byte, error) {
	set, err := KeySet(keys, opts)
	if err != nil {
		return nil, err
	}
	return marshal(set)
}

// KeySet is JWKS as a value.
func KeySet(publicKeys []crypto.PublicKey, opts JWKSOptions) (jose.JSONWebKeySet, error) {
	if len(publicKeys) == 0 {
		return jose.JSONWebKeySet{}, fmt.Errorf("build JWKS: no public keys given")
	}
	byKID := map[string]jose.JSONWebKey{}
	for i, k := range publicKeys {
		alg, err := keys.AlgorithmOf(k)
		if err != nil {
			return jose.JSONWebKeySet{}, fmt.Errorf("build JWKS: key %d: %w", i, err)
		}
		kid, err := KeyID(k)
		if err != nil {
			return jose.JSONWebKeySet{}, err
		}
		byKID[kid] = jose.JSONWebKey{Key: k, KeyID: kid, Algorithm: string(alg), Use: "sig"}
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

// ParsePublicKeyPEM reads public keys from PEM (keys.ParsePublicKeys: PKIX, PKCS#1, a certificate or a private key),
// each satisfying keys.KeyRule. name identifies the source in errors.
func ParsePublicKeyPEM(name string, data []byte) ([]crypto.PublicKey, error) {
	ks, err := keys.ParsePublicKeys(data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	return ks, nil
}

// ParseJWKS reads the signing keys of a JWKS, as served by kube-apiserver at /openid/v1/jwks: RSA and ECDSA keys
// that satisfy keys.KeyRule. Other entries (encryption keys, symmetric keys, other curves) are skipped.
func ParseJWKS(data []byte) ([]crypto.PublicKey, error) {
	var set jose.JSONWebKeySet
	if err := json.Unmarshal(data, &set); err != nil {
		return nil, fmt.Errorf("parse JWKS: %w", err)
	}
	var out []crypto.PublicKey
	for _, k := range set.Keys {
		if k.Use != "" && k.Use != "sig" {
			continue
		}
		if _, err := keys.AlgorithmOf(k.Key); err == nil {
			out = append(out, k.Key)
		}
	}
	return out, nil
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
