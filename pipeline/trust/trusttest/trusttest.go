// Package trusttest serves OIDC issuer documents over HTTPS and mints web identity tokens, good and bad, for tests of
// the verifier (pipeline/trust), the STS gate and irsa doctor. The issuer is an httptest TLS server on loopback, so
// its URLs are https://127.0.0.1:PORT/NAME; its client trusts the server's certificate.
package trusttest

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/tls"
	"encoding/base64"
	"encoding/json"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"

	"github.com/irsa-anywhere/irsa/pipeline/documents"
)

// Server is an HTTPS server whose responses tests set per path.
type Server struct {
	*httptest.Server
	mu     sync.Mutex
	routes map[string]route
	hits   map[string]int
}

type route struct {
	status int
	body   []byte
}

// NewServer starts a TLS server that answers 404 until routes are set; it stops when the test ends. Its certificate
// is httptest's self-signed one, which chains to no CA IAM trusts.
func NewServer(tb testing.TB) *Server {
	return NewServerWithCertificate(tb, nil)
}

// NewServerWithCertificate is NewServer serving cert (leaf first, then the intermediates the server sends); nil means
// httptest's certificate. Its Client trusts the leaf.
func NewServerWithCertificate(tb testing.TB, cert *tls.Certificate) *Server {
	return NewServerOn(tb, nil, cert)
}

// NewServerOn is NewServerWithCertificate listening on l (nil: a loopback port), for issuers that containers reach
// on a Docker network's gateway address.
func NewServerOn(tb testing.TB, l net.Listener, cert *tls.Certificate) *Server {
	tb.Helper()
	s := &Server{routes: map[string]route{}, hits: map[string]int{}}
	s.Server = httptest.NewUnstartedServer(http.HandlerFunc(s.serve))
	if l != nil {
		_ = s.Server.Listener.Close()
		s.Server.Listener = l
	}
	if cert != nil {
		s.Server.TLS = &tls.Config{Certificates: []tls.Certificate{*cert}}
	}
	s.Server.StartTLS()
	tb.Cleanup(s.Close)
	return s
}

func (s *Server) serve(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	rt, ok := s.routes[r.URL.Path]
	s.hits[r.URL.Path]++
	s.mu.Unlock()
	if r.Header.Get("Authorization") != "" || r.Header.Get("Cookie") != "" {
		http.Error(w, "issuer documents are fetched anonymously", http.StatusBadRequest)
		return
	}
	if !ok {
		http.NotFound(w, r)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(rt.status)
	_, _ = w.Write(rt.body)
}

// Handle serves body with status at path.
func (s *Server) Handle(path string, status int, body []byte) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.routes[path] = route{status: status, body: body}
}

// Hits reports how many requests path received.
func (s *Server) Hits(path string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.hits[path]
}

// IssuerURL is the issuer URL for name: https://127.0.0.1:PORT/name.
func (s *Server) IssuerURL(name string) string { return s.URL + "/" + name }

// Issuer describes what Publish serves.
type Issuer struct {
	// Name is the issuer's path on the server.
	Name string
	// DiscoveryIssuer overrides the issuer field of the discovery document (default: the issuer URL).
	DiscoveryIssuer string
	// Keys are published in the JWKS with kid = documents.KeyID.
	Keys []crypto.PublicKey
	// LegacyEmptyKID also publishes every key without kid.
	LegacyEmptyKID bool
	// DiscoveryStatus and JWKSStatus replace 200 (403 for a private object, 404 for a missing one).
	DiscoveryStatus, JWKSStatus int
}

// Publish serves an issuer's discovery document and JWKS and returns its URL.
func (s *Server) Publish(tb testing.TB, is Issuer) string {
	tb.Helper()
	issuerURL := s.IssuerURL(is.Name)
	disc := map[string]any{
		"issuer":                                issuerURL,
		"jwks_uri":                              issuerURL + "/keys.json",
		"response_types_supported":              []string{"id_token"},
		"subject_types_supported":               []string{"public"},
		"id_token_signing_alg_values_supported": []string{"RS256"},
	}
	if is.DiscoveryIssuer != "" {
		disc["issuer"] = is.DiscoveryIssuer
	}
	discBody, err := json.Marshal(disc)
	if err != nil {
		tb.Fatal(err)
	}
	jwks, err := documents.JWKS(is.Keys, documents.JWKSOptions{LegacyEmptyKID: is.LegacyEmptyKID})
	if err != nil {
		tb.Fatalf("build JWKS: %v", err)
	}
	status := func(s int) int {
		if s == 0 {
			return http.StatusOK
		}
		return s
	}
	s.Handle("/"+is.Name+"/.well-known/openid-configuration", status(is.DiscoveryStatus), discBody)
	s.Handle("/"+is.Name+"/keys.json", status(is.JWKSStatus), jwks)
	return issuerURL
}

var (
	keyMu   sync.Mutex
	keyPool []*rsa.PrivateKey
)

// Key returns the i-th test RSA key of the process; keys are generated once and shared, since 2048-bit generation
// is slow.
func Key(tb testing.TB, i int) *rsa.PrivateKey {
	tb.Helper()
	keyMu.Lock()
	defer keyMu.Unlock()
	for len(keyPool) <= i {
		k, err := rsa.GenerateKey(rand.Reader, 2048)
		if err != nil {
			tb.Fatalf("generate RSA key: %v", err)
		}
		keyPool = append(keyPool, k)
	}
	return keyPool[i]
}

var (
	ecMu   sync.Mutex
	ecPool = map[elliptic.Curve]*ecdsa.PrivateKey{}
)

// ECKey returns the test ECDSA key of the process on curve (P-256, P-384 or P-521), generated once.
func ECKey(tb testing.TB, curve elliptic.Curve) *ecdsa.PrivateKey {
	tb.Helper()
	ecMu.Lock()
	defer ecMu.Unlock()
	if k := ecPool[curve]; k != nil {
		return k
	}
	k, err := ecdsa.GenerateKey(curve, rand.Reader)
	if err != nil {
		tb.Fatalf("generate ECDSA key: %v", err)
	}
	ecPool[curve] = k
	return k
}

// KeyID is documents.KeyID, failing the test on error.
func KeyID(tb testing.TB, key crypto.PublicKey) string {
	tb.Helper()
	kid, err := documents.KeyID(key)
	if err != nil {
		tb.Fatal(err)
	}
	return kid
}

// ServiceAccountClaims are the claims kube-apiserver puts in a projected token for namespace/name.
func ServiceAccountClaims(issuer, namespace, name, audience string, now time.Time) map[string]any {
	return map[string]any{
		"iss": issuer,
		"sub": "system:serviceaccount:" + namespace + ":" + name,
		"aud": []string{audience},
		"iat": now.Unix(),
		"nbf": now.Unix(),
		"exp": now.Add(time.Hour).Unix(),
		"kubernetes.io": map[string]any{
			"namespace":      namespace,
			"serviceaccount": map[string]any{"name": name, "uid": "00000000-0000-0000-0000-000000000001"},
		},
	}
}

// Sign returns a compact RS256 JWS of claims with kid in its header (none when kid is empty).
func Sign(tb testing.TB, key *rsa.PrivateKey, kid string, claims map[string]any) string {
	tb.Helper()
	return SignWith(tb, key, jose.RS256, kid, claims)
}

// SignWith returns a compact JWS of claims signed by key with alg (RS256/384/512 and PS256 for an RSA key,
// ES256/384/512 for an ECDSA key on the matching curve).
func SignWith(tb testing.TB, key crypto.Signer, alg jose.SignatureAlgorithm, kid string, claims map[string]any) string {
	tb.Helper()
	payload, err := json.Marshal(claims)
	if err != nil {
		tb.Fatal(err)
	}
	return SignPayload(tb, key, alg, kid, payload)
}

// SignPayload signs payload as it is, for claims json.Marshal would not write (1.7e9, 1700000000.5).
func SignPayload(tb testing.TB, key crypto.Signer, alg jose.SignatureAlgorithm, kid string, payload []byte) string {
	tb.Helper()
	opts := (&jose.SignerOptions{}).WithType("JWT")
	if kid != "" {
		opts = opts.WithHeader("kid", kid)
	}
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: alg, Key: key}, opts)
	if err != nil {
		tb.Fatal(err)
	}
	jws, err := signer.Sign(payload)
	if err != nil {
		tb.Fatal(err)
	}
	token, err := jws.CompactSerialize()
	if err != nil {
		tb.Fatal(err)
	}
	return token
}

// SignHS256 returns a token MAC'd with HS256 under secret: the algorithm-confusion attack, where the secret is the
// issuer's public key.
func SignHS256(tb testing.TB, secret []byte, kid string, claims map[string]any) string {
	tb.Helper()
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.HS256, Key: secret},
		(&jose.SignerOptions{}).WithType("JWT").WithHeader("kid", kid))
	if err != nil {
		tb.Fatal(err)
	}
	payload, _ := json.Marshal(claims)
	jws, err := signer.Sign(payload)
	if err != nil {
		tb.Fatal(err)
	}
	token, err := jws.CompactSerialize()
	if err != nil {
		tb.Fatal(err)
	}
	return token
}

// Unsigned returns a token with alg "none" and an empty signature.
func Unsigned(tb testing.TB, kid string, claims map[string]any) string {
	tb.Helper()
	header, _ := json.Marshal(map[string]string{"alg": "none", "typ": "JWT", "kid": kid})
	payload, _ := json.Marshal(claims)
	return b64(header) + "." + b64(payload) + "."
}

// Tamper replaces the payload of a signed token with claims, keeping the original header and signature.
func Tamper(tb testing.TB, token string, claims map[string]any) string {
	tb.Helper()
	parts := strings.Split(token, ".")
	if len(parts) != 3 {
		tb.Fatalf("not a JWT: %q", token)
	}
	payload, _ := json.Marshal(claims)
	return parts[0] + "." + b64(payload) + "." + parts[2]
}

func b64(b []byte) string { return base64.RawURLEncoding.EncodeToString(b) }

// With returns a copy of claims with the given keys set (a nil value deletes the key).
func With(claims map[string]any, kv ...any) map[string]any {
	out := make(map[string]any, len(claims))
	for k, v := range claims {
		out[k] = v
	}
	for i := 0; i+1 < len(kv); i += 2 {
		k := kv[i].(string)
		if kv[i+1] == nil {
			delete(out, k)
			continue
		}
		out[k] = kv[i+1]
	}
	return out
}
