package trust

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	jose "github.com/go-jose/go-jose/v4"
)

// Claims are the claims STS reads from a web identity token.
type Claims struct {
	Issuer          string    `json:"iss"`
	Subject         string    `json:"sub"`
	Audience        []string  `json:"aud"`
	AuthorizedParty string    `json:"azp,omitempty"`
	AMR             []string  `json:"amr,omitempty"`
	Expiry          time.Time `json:"exp,omitzero"`
	NotBefore       time.Time `json:"nbf,omitzero"`
	IssuedAt        time.Time `json:"iat,omitzero"`
	// KeyID is the kid of the token's protected header.
	KeyID string `json:"kid,omitempty"`
	// Algorithm is the alg of the token's protected header.
	Algorithm string `json:"alg,omitempty"`
}

// Algorithms are the signature algorithms STS accepts for OIDC tokens (AssumeRoleWithWebIdentity, WebIdentityToken:
// "signed using either RSA keys (RS256, RS384, or RS512) or ECDSA keys (ES256, ES384, or ES512)"). Everything else,
// alg none, HMAC and RSA-PSS included, is refused.
var Algorithms = []jose.SignatureAlgorithm{jose.RS256, jose.RS384, jose.RS512, jose.ES256, jose.ES384, jose.ES512}

const algorithmList = "RS256, RS384, RS512, ES256, ES384 or ES512"

// parseToken parses a compact JWS signed with one of Algorithms and reads its claims without verifying them. The
// claims are returned even when the algorithm is refused, so a report can still show them.
func parseToken(token string) (*jose.JSONWebSignature, *Claims, error) {
	token = strings.TrimSpace(token)
	if n := strings.Count(token, "."); n != 2 {
		return nil, nil, fmt.Errorf("not a JWT: want three dot-separated parts, got %d", n+1)
	}
	jws, err := jose.ParseSignedCompact(token, Algorithms)
	if err != nil {
		claims, _ := PeekClaims(token)
		if alg := headerAlg(token); alg != "" && !slices.Contains(Algorithms, jose.SignatureAlgorithm(alg)) {
			return nil, claims, fmt.Errorf("alg %q is not one STS accepts (%s)", alg, algorithmList)
		}
		return nil, claims, fmt.Errorf("parse JWT (header %s): %w", peekHeader(token), err)
	}
	if len(jws.Signatures) != 1 {
		return nil, nil, fmt.Errorf("JWT has %d signatures, want 1", len(jws.Signatures))
	}
	claims, err := parseClaims(jws.UnsafePayloadWithoutVerification())
	if err != nil {
		return nil, nil, err
	}
	claims.KeyID = jws.Signatures[0].Protected.KeyID
	claims.Algorithm = jws.Signatures[0].Protected.Algorithm
	return jws, claims, nil
}

// rawClaims is the JSON shape of the claims: aud and amr may be a string or a list; the NumericDate claims are kept
// raw so that a non-integer is refused, as STS refuses it.
type rawClaims struct {
	Issuer    string          `json:"iss"`
	Subject   string          `json:"sub"`
	Audience  json.RawMessage `json:"aud"`
	AZP       string          `json:"azp"`
	AMR       json.RawMessage `json:"amr"`
	Expiry    json.RawMessage `json:"exp"`
	NotBefore json.RawMessage `json:"nbf"`
	IssuedAt  json.RawMessage `json:"iat"`
}

func parseClaims(payload []byte) (*Claims, error) {
	var raw rawClaims
	if err := json.Unmarshal(payload, &raw); err != nil {
		return nil, fmt.Errorf("JWT claims: %w", err)
	}
	aud, err := stringOrList(raw.Audience)
	if err != nil {
		return nil, fmt.Errorf("JWT claim aud: %w", err)
	}
	amr, err := stringOrList(raw.AMR)
	if err != nil {
		return nil, fmt.Errorf("JWT claim amr: %w", err)
	}
	c := &Claims{Issuer: raw.Issuer, Subject: raw.Subject, Audience: aud, AuthorizedParty: raw.AZP, AMR: amr}
	for _, d := range []struct {
		name string
		raw  json.RawMessage
		to   *time.Time
	}{{"exp", raw.Expiry, &c.Expiry}, {"nbf", raw.NotBefore, &c.NotBefore}, {"iat", raw.IssuedAt, &c.IssuedAt}} {
		if *d.to, err = numericDate(d.raw); err != nil {
			return nil, fmt.Errorf("JWT claim %s: %w", d.name, err)
		}
	}
	if c.Issuer == "" {
		return nil, fmt.Errorf("JWT has no iss claim")
	}
	return c, nil
}

// numericDate reads a NumericDate claim. STS requires an integer ("Timestamps in the token must be formatted as either
// an integer or a long integer"): a fraction, an exponent or a string is refused. Absent or null is the zero time.
func numericDate(raw json.RawMessage) (time.Time, error) {
	if len(raw) == 0 || string(raw) == "null" {
		return time.Time{}, nil
	}
	s := string(raw)
	digits := strings.TrimPrefix(s, "-")
	if digits == "" || len(digits) > 18 || strings.IndexFunc(digits, func(r rune) bool { return r < '0' || r > '9' }) >= 0 {
		shown := s
		if len(shown) > 40 {
			shown = shown[:40] + "..."
		}
		return time.Time{}, fmt.Errorf("%s is not an integer: STS requires NumericDate claims as integer seconds since the epoch", shown)
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		return time.Time{}, fmt.Errorf("%s: %w", s, err)
	}
	return time.Unix(n, 0), nil
}

// PeekClaims decodes a JWT's claims without checking anything: not the algorithm, not the signature. It is how a
// caller finds which issuer, and so which IAM provider, a token claims to come from before verifying it.
func PeekClaims(token string) (*Claims, error) {
	parts := strings.Split(strings.TrimSpace(token), ".")
	if len(parts) != 3 {
		return nil, fmt.Errorf("not a JWT: want three dot-separated parts, got %d", len(parts))
	}
	payload, err := base64.RawURLEncoding.DecodeString(strings.TrimRight(parts[1], "="))
	if err != nil {
		return nil, fmt.Errorf("JWT payload: %w", err)
	}
	c, err := parseClaims(payload)
	if err != nil {
		return nil, err
	}
	if header, err := base64.RawURLEncoding.DecodeString(strings.TrimRight(parts[0], "=")); err == nil {
		var h struct {
			KeyID     string `json:"kid"`
			Algorithm string `json:"alg"`
		}
		if json.Unmarshal(header, &h) == nil {
			c.KeyID, c.Algorithm = h.KeyID, h.Algorithm
		}
	}
	return c, nil
}

// headerAlg is the alg of a compact JWS's header, or "" when it cannot be read.
func headerAlg(token string) string {
	head, _, _ := strings.Cut(token, ".")
	b, err := base64.RawURLEncoding.DecodeString(strings.TrimRight(head, "="))
	if err != nil {
		return ""
	}
	var h struct {
		Algorithm string `json:"alg"`
	}
	if json.Unmarshal(b, &h) != nil {
		return ""
	}
	return h.Algorithm
}

func peekHeader(token string) string {
	head, _, _ := strings.Cut(token, ".")
	b, err := base64.RawURLEncoding.DecodeString(strings.TrimRight(head, "="))
	if err != nil || len(b) > 512 {
		return "unreadable"
	}
	return string(b)
}

// parseKeySet reads the signing keys of a JWKS that STS can verify with: RSA keys and ECDSA keys on P-256, P-384 or
// P-521, with use "sig" or none and an alg among Algorithms or none. Other entries are skipped and counted, rather
// than failing the whole set.
func parseKeySet(body []byte) ([]jose.JSONWebKey, int, error) {
	var set struct {
		Keys []json.RawMessage `json:"keys"`
	}
	if err := json.Unmarshal(body, &set); err != nil {
		return nil, 0, fmt.Errorf("not a JSON Web Key Set: %w", err)
	}
	var keys []jose.JSONWebKey
	skipped := 0
	for _, raw := range set.Keys {
		var k jose.JSONWebKey
		if err := json.Unmarshal(raw, &k); err != nil {
			skipped++
			continue
		}
		usable := false
		switch pk := k.Key.(type) {
		case *rsa.PublicKey:
			usable = true
		case *ecdsa.PublicKey:
			usable = pk.Curve == elliptic.P256() || pk.Curve == elliptic.P384() || pk.Curve == elliptic.P521()
		}
		if !usable || (k.Use != "" && k.Use != "sig") || (k.Algorithm != "" && !slices.Contains(Algorithms, jose.SignatureAlgorithm(k.Algorithm))) {
			skipped++
			continue
		}
		keys = append(keys, k)
	}
	if len(keys) == 0 {
		return nil, skipped, fmt.Errorf("no RSA or ECDSA signing key (%d entries)", len(set.Keys))
	}
	return keys, skipped, nil
}
