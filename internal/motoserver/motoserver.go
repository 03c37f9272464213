// Package motoserver starts a real moto_server on a free loopback port for tests, over HTTPS with a CA of its own,
// because IAM OIDC issuers and the strict STS gate need https URLs. A test that needs moto fails when it is
// missing: it never skips.
package motoserver

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
	"time"
)

// Server is a running moto_server.
type Server struct {
	// URL is the https endpoint, such as https://127.0.0.1:40123.
	URL string
	// CAFile is a PEM file with the CA that signed the server's certificate; CAPool holds the same CA.
	CAFile string
	CAPool *x509.CertPool
	// HTTPClient trusts CAPool.
	HTTPClient *http.Client
	cmd        *exec.Cmd
	log        *bytes.Buffer
}

// Binary finds moto_server, preferring the real pyenv binary over the slow shim.
func Binary() (string, error) {
	if p := os.Getenv("MOTO_SERVER"); p != "" {
		return p, nil
	}
	root := os.Getenv("PYENV_ROOT")
	if root == "" {
		root = filepath.Join(os.Getenv("HOME"), ".pyenv")
	}
	if m, _ := filepath.Glob(filepath.Join(root, "versions", "*", "bin", "moto_server")); len(m) > 0 {
		return m[len(m)-1], nil
	}
	if p, err := exec.LookPath("moto_server"); err == nil {
		return p, nil
	}
	return "", fmt.Errorf("moto_server not found: install moto[server] 5.2.1 (pip install 'moto[server]==5.2.1') or set MOTO_SERVER")
}

// Start runs moto_server until the test ends.
func Start(tb testing.TB) *Server {
	tb.Helper()
	s, err := StartProcess(tb.TempDir())
	if err != nil {
		tb.Fatalf("start moto_server: %v", err)
	}
	tb.Cleanup(s.Stop)
	return s
}

// StartProcess runs moto_server with its certificate files in dir. The caller must call Stop.
func StartProcess(dir string) (*Server, error) {
	bin, err := Binary()
	if err != nil {
		return nil, err
	}
	caPEM, certPEM, keyPEM, err := selfSignedChain()
	if err != nil {
		return nil, err
	}
	s := &Server{CAFile: filepath.Join(dir, "moto-ca.pem"), log: &bytes.Buffer{}}
	certFile, keyFile := filepath.Join(dir, "moto-cert.pem"), filepath.Join(dir, "moto-key.pem")
	for f, b := range map[string][]byte{s.CAFile: caPEM, certFile: certPEM, keyFile: keyPEM} {
		if err := os.WriteFile(f, b, 0o600); err != nil {
			return nil, err
		}
	}
	s.CAPool = x509.NewCertPool()
	s.CAPool.AppendCertsFromPEM(caPEM)
	s.HTTPClient = &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: s.CAPool}}}

	for attempt := 0; attempt < 3; attempt++ {
		port, err := freePort()
		if err != nil {
			return nil, err
		}
		s.URL = "https://127.0.0.1:" + strconv.Itoa(port)
		s.cmd = exec.Command(bin, "-H", "127.0.0.1", "-p", strconv.Itoa(port), "-c", certFile, "-k", keyFile)
		s.cmd.Env = append(os.Environ(), "MOTO_IAM_LOAD_MANAGED_POLICIES=true")
		s.cmd.Stdout, s.cmd.Stderr = s.log, s.log
		if err := s.cmd.Start(); err != nil {
			return nil, fmt.Errorf("run %s: %w", bin, err)
		}
		if err := s.waitReady(30 * time.Second); err == nil {
			return s, nil
		}
		s.Stop()
	}
	return nil, fmt.Errorf("moto_server did not become ready; output:\n%s", s.log.String())
}

func (s *Server) waitReady(timeout time.Duration) error {
	exited := make(chan struct{})
	go func() { _ = s.cmd.Wait(); close(exited) }()
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		select {
		case <-exited:
			return fmt.Errorf("moto_server exited")
		default:
		}
		resp, err := s.HTTPClient.Get(s.URL + "/moto-api/")
		if err == nil {
			resp.Body.Close()
			return nil
		}
		time.Sleep(100 * time.Millisecond)
	}
	return fmt.Errorf("timeout")
}

// Reset wipes all of moto's state.
func (s *Server) Reset(ctx context.Context) error {
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, s.URL+"/moto-api/reset", nil)
	resp, err := s.HTTPClient.Do(req)
	if err != nil {
		return err
	}
	return resp.Body.Close()
}

// Stop ends the moto_server process.
func (s *Server) Stop() {
	if s.cmd != nil && s.cmd.Process != nil {
		_ = s.cmd.Process.Kill()
	}
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

func selfSignedChain() (caPEM, certPEM, keyPEM []byte, err error) {
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, nil, err
	}
	now := time.Now()
	caTmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "irsa test CA"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		return nil, nil, nil, err
	}
	caCert, _ := x509.ParseCertificate(caDER)
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "127.0.0.1"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(24 * time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		DNSNames: []string{"localhost", "*.localhost"}, IPAddresses: []net.IP{net.ParseIP("127.0.0.1"), net.ParseIP("::1")},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, caCert, &key.PublicKey, caKey)
	if err != nil {
		return nil, nil, nil, err
	}
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		return nil, nil, nil, err
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER}),
		pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER}), nil
}
