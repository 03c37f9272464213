package trust

import (
	"context"
	"crypto/sha1" //nolint:gosec // IAM thumbprints are SHA-1 by definition.
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"sync"
	"time"
)

// maxDocumentSize bounds what is read from an issuer: discovery documents and key sets are a few KiB.
const maxDocumentSize = 1 << 20

// document is one fetched discovery document or key set.
type document struct {
	body []byte
	// thumbprint is the SHA-1 (hex, lower case) of the last certificate the server sent: the top of its chain, which is
	// what IAM thumbprints name.
	thumbprint string
	// chainTrusted is true when the server's chain verifies against the CAs IAM trusts (Options.IAMTrustedRoots).
	chainTrusted bool
	at           time.Time
}

// fetchError is a failed fetch, classified the way STS reports it.
type fetchError struct {
	url    string
	status int
	code   string
	err    error
}

func (e *fetchError) Error() string {
	if e.status != 0 {
		return fmt.Sprintf("GET %s: HTTP %d", e.url, e.status)
	}
	return fmt.Sprintf("GET %s: %v", e.url, e.err)
}

func (e *fetchError) Unwrap() error { return e.err }

// documentCache keeps fetched documents for a short time, like STS does, so a burst of AssumeRoleWithWebIdentity calls
// fetches each document once. Failures are not cached: the next call tries again.
type documentCache struct {
	mu      sync.Mutex
	ttl     time.Duration
	entries map[string]document
}

func (c *documentCache) get(u string, now time.Time) (document, bool) {
	if c.ttl <= 0 {
		return document{}, false
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	d, ok := c.entries[u]
	if !ok || now.Sub(d.at) >= c.ttl {
		return document{}, false
	}
	return d, true
}

func (c *documentCache) put(u string, d document) {
	if c.ttl <= 0 {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.entries == nil {
		c.entries = map[string]document{}
	}
	c.entries[u] = d
}

// fetch GETs u anonymously over HTTPS, from the cache when it is fresh.
func (v *Verifier) fetch(ctx context.Context, u string) (document, bool, *fetchError) {
	now := v.now()
	if d, ok := v.cache.get(u, now); ok {
		return d, true, nil
	}
	parsed, err := url.Parse(u)
	if err != nil || parsed.Scheme != "https" || parsed.Host == "" {
		return document{}, false, &fetchError{url: u, code: CodeInvalidIdentityToken,
			err: fmt.Errorf("not an https URL: STS only fetches issuer documents over HTTPS")}
	}
	ctx, cancel := context.WithTimeout(ctx, v.fetchTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return document{}, false, &fetchError{url: u, code: CodeInvalidIdentityToken, err: err}
	}
	req.Header.Set("Accept", "application/json")
	resp, err := v.client.Do(req)
	if err != nil {
		return document{}, false, classifyFetchError(u, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, maxDocumentSize))
		return document{}, false, &fetchError{url: u, status: resp.StatusCode, code: CodeInvalidIdentityToken}
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxDocumentSize+1))
	if err != nil {
		return document{}, false, classifyFetchError(u, err)
	}
	if len(body) > maxDocumentSize {
		return document{}, false, &fetchError{url: u, code: CodeInvalidIdentityToken,
			err: fmt.Errorf("document larger than %d bytes", maxDocumentSize)}
	}
	d := document{body: body, at: now}
	if resp.TLS != nil && len(resp.TLS.PeerCertificates) > 0 {
		chain := resp.TLS.PeerCertificates
		d.thumbprint = Thumbprint(chain[len(chain)-1])
		d.chainTrusted = v.trustedByIAM(chain, parsed.Hostname())
	}
	v.cache.put(u, d)
	return d, false, nil
}

// trustedByIAM reports whether the served chain verifies, for host, against the CAs IAM trusts on its own.
// The wall clock is used, not Options.Now: the certificate is checked as served at the moment of the fetch.
func (v *Verifier) trustedByIAM(chain []*x509.Certificate, host string) bool {
	inter := x509.NewCertPool()
	for _, c := range chain[1:] {
		inter.AddCert(c)
	}
	_, err := chain[0].Verify(x509.VerifyOptions{Roots: v.iamRoots, Intermediates: inter, DNSName: host})
	return err == nil
}

// Thumbprint is the IAM thumbprint of a certificate: hex SHA-1 of its DER, lower case.
func Thumbprint(cert *x509.Certificate) string {
	sum := sha1.Sum(cert.Raw) //nolint:gosec // IAM thumbprints are SHA-1 by definition.
	return hex.EncodeToString(sum[:])
}

// classifyFetchError maps a transport error to STS's code: an unreachable issuer is IDPCommunicationError; a
// certificate STS cannot trust or an issuer slower than STS waits (5 s) is InvalidIdentityToken.
func classifyFetchError(u string, err error) *fetchError {
	fe := &fetchError{url: u, err: err, code: CodeIDPCommunicationError}
	var (
		unknownAuthority x509.UnknownAuthorityError
		hostname         x509.HostnameError
		invalid          x509.CertificateInvalidError
		verify           *tls.CertificateVerificationError
		netErr           net.Error
	)
	switch {
	case errors.As(err, &unknownAuthority), errors.As(err, &hostname), errors.As(err, &invalid), errors.As(err, &verify):
		fe.code = CodeInvalidIdentityToken
	case errors.Is(err, context.DeadlineExceeded), errors.As(err, &netErr) && netErr.Timeout():
		fe.code = CodeInvalidIdentityToken
	}
	return fe
}
