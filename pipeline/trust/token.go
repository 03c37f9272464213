package trust

import (
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"
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
}

var allowedAlgorithms = []jose.SignatureAlgorithm{jose.RS256}

// parseToken parses a compact JWS signed with RS256 and reads its claims without verifying them. The claims are
// returned even when the algorithm is refused, so a report can still show them.
func parseToken(token string) (*jose.JSONWebSignature, *Claims, error) {
	token = strings.TrimSpace(token)
	if strings.Count(token, ".") != 2 {
		return nil, nil, fmt.Errorf("not a JWT: want three dot-separated parts, got %d", strings.Count(token, ".")+1)
	}
	jws, err := jose.ParseSignedCompact(token, allowedAlgorithms)
	if err != nil {
		claims, _ := PeekClaims(token)
		return nil, claims, fmt.Errorf("parse JWT (only RS256 is accepted; header %s): %w", peekHeader(token), err)
	}
	if len(jws.Signatures) != 1 {
		return nil, nil, fmt.Errorf("JWT has %d signatures, want 1", len(jws.Signatures))
	}
	claims, err := parseClaims(jws.UnsafePayloadWithoutVerification())
	if err != nil {
		return nil, nil, err
	}
	claims.KeyID = jws.Signatures[0].Protected.KeyID
	return jws, claims, nil
}

// rawClaims is the JSON shape of the claims; amr may be a string or a list.
type rawClaims struct {
	jwt.Claims
	AZP string          `json:"azp"`
	AMR json.RawMessage `json:"amr"`
}

func parseClaims(payload []byte) (*Claims, error) {
	var raw rawClaims
	if err := json.Unmarshal(payload, &raw); err != nil {
		return nil, fmt.Errorf("JWT claims: %w", err)
	}
	amr, err := stringOrList(raw.AMR)
	if err != nil {
		return nil, fmt.Errorf("JWT claim amr: %w", err)
	}
	c := &Claims{
		Issuer: raw.Issuer, Subject: raw.Subject, Audience: raw.Audience, AuthorizedParty: raw.AZP, AMR: amr,
		Expiry: raw.Expiry.Time(), NotBefore: raw.NotBefore.Time(), IssuedAt: raw.IssuedAt.Time(),
	}
	if c.Issuer == "" {
		return nil, fmt.Errorf("JWT has no iss claim")
	}
	return c, nil
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
			KeyID string `json:"kid"`
		}
		if json.Unmarshal(header, &h) == nil {
			c.KeyID = h.KeyID
		}
	}
	return c, nil
}

func peekHeader(token string) string {
	head, _, _ := strings.Cut(token, ".")
	b, err := base64.RawURLEncoding.DecodeString(strings.TrimRight(head, "="))
	if err != nil || len(b) > 512 {
		return "unreadable"
	}
	return string(b)
}

// parseKeySet reads the RSA signing keys of a JWKS. Entries that are not RSA public signing keys are skipped and
// counted, rather than failing the whole set.
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
		if _, ok := k.Key.(*rsa.PublicKey); !ok || (k.Use != "" && k.Use != "sig") || (k.Algorithm != "" && k.Algorithm != string(jose.RS256)) {
			skipped++
			continue
		}
		keys = append(keys, k)
	}
	if len(keys) == 0 {
		return nil, skipped, fmt.Errorf("no RSA signing key (%d entries)", len(set.Keys))
	}
	return keys, skipped, nil
}
