package webhook

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"slices"
	"time"
)

// TLSMaterial is the webhook's TLS state as irsa stores it: its own CA (no cert-manager, no CSR API) and the
// serving certificate it signed. PreviousCACert is the CA being rotated out; it stays in the caBundle until it
// expires so a webhook pod still serving a certificate signed by it keeps being trusted during a rollout.
type TLSMaterial struct {
	CACert         []byte
	CAKey          []byte
	PreviousCACert []byte
	ServingCert    []byte
	ServingKey     []byte
}

// CABundle is what the MutatingWebhookConfiguration trusts: the current CA, then the previous one if any.
func (m TLSMaterial) CABundle() []byte {
	return append(slices.Clone(m.CACert), m.PreviousCACert...)
}

// TLSPolicy says how long certificates live and when they are replaced.
type TLSPolicy struct {
	CAValidity, CARenewBefore           time.Duration
	ServingValidity, ServingRenewBefore time.Duration
}

// DefaultTLSPolicy: a 10-year CA rotated in its last year, a 1-year serving certificate renewed in its last 30 days.
var DefaultTLSPolicy = TLSPolicy{
	CAValidity:         10 * 365 * 24 * time.Hour,
	CARenewBefore:      365 * 24 * time.Hour,
	ServingValidity:    365 * 24 * time.Hour,
	ServingRenewBefore: 30 * 24 * time.Hour,
}

// ServingDNSNames are the names the apiserver uses to reach the webhook Service.
func ServingDNSNames(service, namespace string) []string {
	return []string{service + "." + namespace + ".svc", service + "." + namespace + ".svc.cluster.local"}
}

// EnsureTLS returns the TLS material wanted at now, reusing what current holds where it is still good, and the
// reasons for each change (none when the result equals current). It never returns a serving certificate that
// expires after its CA.
func EnsureTLS(current TLSMaterial, dnsNames []string, now time.Time, p TLSPolicy) (TLSMaterial, []string, error) {
	if len(dnsNames) == 0 {
		return TLSMaterial{}, nil, errors.New("webhook TLS: no DNS names for the serving certificate")
	}
	next := current
	var reasons []string

	ca, caKey, err := parseCA(current.CACert, current.CAKey)
	switch {
	case err != nil && len(current.CACert) == 0:
		reasons = append(reasons, "create CA")
		next.PreviousCACert = nil
	case err != nil:
		reasons = append(reasons, fmt.Sprintf("replace unusable CA (%v)", err))
		next.PreviousCACert = nil
	case now.Add(p.CARenewBefore).After(ca.NotAfter):
		reasons = append(reasons, fmt.Sprintf("rotate CA expiring %s, keeping it in caBundle until then", ca.NotAfter.UTC().Format(time.RFC3339)))
		next.PreviousCACert = current.CACert
	}
	if len(reasons) > 0 {
		if ca, caKey, next.CACert, next.CAKey, err = newCA(now, p.CAValidity); err != nil {
			return TLSMaterial{}, nil, err
		}
	}

	if prev := next.PreviousCACert; len(prev) > 0 {
		if c, err := parseCert(prev); err != nil || !now.Before(c.NotAfter) {
			reasons = append(reasons, "drop expired previous CA from caBundle")
			next.PreviousCACert = nil
		}
	}

	if why := servingProblem(current, ca, dnsNames, now, p); why != "" {
		reasons = append(reasons, why)
		if next.ServingCert, next.ServingKey, err = issueServing(ca, caKey, dnsNames, now, p.ServingValidity); err != nil {
			return TLSMaterial{}, nil, err
		}
	}
	return next, reasons, nil
}

// servingProblem says why the current serving certificate can't be kept under ca, or "" if it can.
func servingProblem(current TLSMaterial, ca *x509.Certificate, dnsNames []string, now time.Time, p TLSPolicy) string {
	if len(current.ServingCert) == 0 {
		return "issue serving certificate"
	}
	cert, err := parseCert(current.ServingCert)
	if err != nil {
		return fmt.Sprintf("replace unusable serving certificate (%v)", err)
	}
	key, err := parseKey(current.ServingKey)
	if err != nil || !publicKeysEqual(key.Public(), cert.PublicKey) {
		return "replace serving certificate whose key is missing or does not match"
	}
	if err := cert.CheckSignatureFrom(ca); err != nil {
		return "reissue serving certificate under the current CA"
	}
	if !slices.Equal(sorted(cert.DNSNames), sorted(dnsNames)) {
		return fmt.Sprintf("reissue serving certificate: names %v, want %v", cert.DNSNames, dnsNames)
	}
	if now.Add(p.ServingRenewBefore).After(cert.NotAfter) {
		return fmt.Sprintf("renew serving certificate expiring %s", cert.NotAfter.UTC().Format(time.RFC3339))
	}
	return ""
}

func newCA(now time.Time, validity time.Duration) (*x509.Certificate, *ecdsa.PrivateKey, []byte, []byte, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, nil, nil, fmt.Errorf("webhook CA key: %w", err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial(),
		Subject:               pkix.Name{CommonName: "irsa pod-identity-webhook CA " + now.UTC().Format("2006-01-02")},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(validity),
		IsCA:                  true,
		BasicConstraintsValid: true,
		MaxPathLenZero:        true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, nil, nil, nil, fmt.Errorf("webhook CA certificate: %w", err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, nil, nil, nil, err
	}
	keyPEM, err := encodeKey(key)
	if err != nil {
		return nil, nil, nil, nil, err
	}
	return cert, key, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), keyPEM, nil
}

func issueServing(ca *x509.Certificate, caKey crypto.Signer, dnsNames []string, now time.Time, validity time.Duration, ips ...net.IP) ([]byte, []byte, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, fmt.Errorf("webhook serving key: %w", err)
	}
	notAfter := now.Add(validity)
	if notAfter.After(ca.NotAfter) {
		notAfter = ca.NotAfter
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial(),
		Subject:      pkix.Name{CommonName: dnsNames[0]},
		DNSNames:     slices.Clone(dnsNames),
		IPAddresses:  ips,
		NotBefore:    now.Add(-time.Hour),
		NotAfter:     notAfter,
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
	if err != nil {
		return nil, nil, fmt.Errorf("webhook serving certificate for %v: %w", dnsNames, err)
	}
	keyPEM, err := encodeKey(key)
	if err != nil {
		return nil, nil, err
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), keyPEM, nil
}

func parseCA(certPEM, keyPEM []byte) (*x509.Certificate, crypto.Signer, error) {
	cert, err := parseCert(certPEM)
	if err != nil {
		return nil, nil, err
	}
	if !cert.IsCA {
		return nil, nil, errors.New("certificate is not a CA")
	}
	key, err := parseKey(keyPEM)
	if err != nil {
		return nil, nil, err
	}
	if !publicKeysEqual(key.Public(), cert.PublicKey) {
		return nil, nil, errors.New("CA key does not match its certificate")
	}
	return cert, key, nil
}

func parseCert(b []byte) (*x509.Certificate, error) {
	block, _ := pem.Decode(b)
	if block == nil || block.Type != "CERTIFICATE" {
		return nil, errors.New("no PEM certificate")
	}
	return x509.ParseCertificate(block.Bytes)
}

func parseKey(b []byte) (crypto.Signer, error) {
	block, _ := pem.Decode(b)
	if block == nil {
		return nil, errors.New("no PEM key")
	}
	k, err := x509.ParsePKCS8PrivateKey(block.Bytes)
	if err != nil {
		return nil, err
	}
	s, ok := k.(crypto.Signer)
	if !ok {
		return nil, fmt.Errorf("key type %T can't sign", k)
	}
	return s, nil
}

func encodeKey(k *ecdsa.PrivateKey) ([]byte, error) {
	der, err := x509.MarshalPKCS8PrivateKey(k)
	if err != nil {
		return nil, fmt.Errorf("encode key: %w", err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), nil
}

func publicKeysEqual(a, b crypto.PublicKey) bool {
	ea, ok := a.(interface{ Equal(crypto.PublicKey) bool })
	return ok && ea.Equal(b)
}

func serial() *big.Int {
	n, _ := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	return n
}

func sorted(s []string) []string {
	s = slices.Clone(s)
	slices.Sort(s)
	return s
}

// caBundleCerts parses every certificate in a PEM bundle.
func caBundleCerts(bundle []byte) ([]*x509.Certificate, error) {
	var out []*x509.Certificate
	for rest := bytes.TrimSpace(bundle); len(rest) > 0; rest = bytes.TrimSpace(rest) {
		var block *pem.Block
		block, rest = pem.Decode(rest)
		if block == nil {
			return nil, errors.New("trailing data in PEM bundle")
		}
		c, err := x509.ParseCertificate(block.Bytes)
		if err != nil {
			return nil, err
		}
		out = append(out, c)
	}
	return out, nil
}
