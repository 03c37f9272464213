// Package motoserver starts a real moto_server on a free loopback port for tests, over HTTPS with a CA of its own,
// because IAM OIDC issuers and the strict STS gate need https URLs. A test that needs moto fails when it is
// missing: it never skips.
package motoserver

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/util/wait"

	"github.com/irsa-anywhere/irsa/internal/testpki"
)

// Server is a running moto_server.
type Server struct {
	// URL is the https endpoint, such as https://127.0.0.1:40123.
	URL string
	// CAFile is a PEM file with the CA that signed the server's certificate; CAPool holds the same CA.
	CAFile string
	CAPool *x509.CertPool
	// CertFile and KeyFile are the server's certificate and key (also valid for another server on the same host,
	// such as a gate in front of moto).
	CertFile, KeyFile string
	// HTTPClient trusts CAPool.
	HTTPClient *http.Client
	cmd        *exec.Cmd
	exited     chan struct{}
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

// StartProcess runs moto_server on a free loopback port with its certificate files in dir. The caller must call
// Stop.
func StartProcess(dir string) (*Server, error) {
	return StartWithOptions(dir, Options{})
}

// Options changes where moto_server listens and how it is run. The zero value is StartProcess's behaviour.
type Options struct {
	// Host is the address moto_server binds and its certificate covers (with 127.0.0.1 and localhost); default
	// 127.0.0.1. It must be reachable from this process for the readiness check.
	Host string
	// Port is the port to bind; default a free loopback port (then Host must be 127.0.0.1).
	Port int
	// Wrapper is prepended to the command line, such as ["nsenter", "--net=/run/netns/x", "--"] to run moto_server
	// in another network namespace. It must exec moto_server (Stop signals its PID).
	Wrapper []string
	// Env is added to moto_server's environment.
	Env []string
}

// StartWithOptions runs moto_server as opts say, with its certificate files in dir. The caller must call Stop.
func StartWithOptions(dir string, opts Options) (*Server, error) {
	bin, err := Binary()
	if err != nil {
		return nil, err
	}
	host := opts.Host
	if host == "" {
		host = "127.0.0.1"
	}
	hostIP := net.ParseIP(host)
	if hostIP == nil {
		return nil, fmt.Errorf("moto_server host %q: not an IP address", host)
	}
	if opts.Port == 0 && !hostIP.IsLoopback() {
		return nil, fmt.Errorf("moto_server host %s: set Port (a free port is only picked on loopback)", host)
	}
	ca, err := testpki.NewCA("irsa test CA")
	if err != nil {
		return nil, err
	}
	certPEM, keyPEM, err := ca.Issue(pkix.Name{CommonName: host}, []string{"localhost", "*.localhost", "127.0.0.1", "::1", host})
	if err != nil {
		return nil, err
	}
	caPEM := ca.PEM
	s := &Server{CAFile: filepath.Join(dir, "moto-ca.pem"), log: &bytes.Buffer{}}
	certFile, keyFile := filepath.Join(dir, "moto-cert.pem"), filepath.Join(dir, "moto-key.pem")
	s.CertFile, s.KeyFile = certFile, keyFile
	for f, b := range map[string][]byte{s.CAFile: caPEM, certFile: certPEM, keyFile: keyPEM} {
		if err := os.WriteFile(f, b, 0o600); err != nil {
			return nil, err
		}
	}
	// Pods read the CA through a ConfigMap or a host path: it is public.
	if err := os.Chmod(s.CAFile, 0o644); err != nil {
		return nil, err
	}
	s.CAPool = x509.NewCertPool()
	s.CAPool.AppendCertsFromPEM(caPEM)
	s.HTTPClient = &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: s.CAPool}}}

	attempts := 3
	if opts.Port != 0 {
		attempts = 1
	}
	for attempt := 0; attempt < attempts; attempt++ {
		port := opts.Port
		if port == 0 {
			if port, err = freePort(); err != nil {
				return nil, err
			}
		}
		s.URL = "https://" + net.JoinHostPort(host, strconv.Itoa(port))
		argv := append(append([]string{}, opts.Wrapper...), bin, "-H", host, "-p", strconv.Itoa(port), "-c", certFile, "-k", keyFile)
		s.cmd = exec.Command(argv[0], argv[1:]...)
		s.cmd.Env = append(append(os.Environ(), "MOTO_IAM_LOAD_MANAGED_POLICIES=true"), opts.Env...)
		s.cmd.Stdout, s.cmd.Stderr = s.log, s.log
		if err := s.cmd.Start(); err != nil {
			return nil, fmt.Errorf("run %s: %w", bin, err)
		}
		if err := s.waitReady(30 * time.Second); err == nil {
			return s, nil
		}
		s.Stop()
	}
	return nil, fmt.Errorf("moto_server did not become ready at %s; output:\n%s", s.URL, s.log.String())
}

// PID is moto_server's process ID.
func (s *Server) PID() int {
	if s.cmd == nil || s.cmd.Process == nil {
		return 0
	}
	return s.cmd.Process.Pid
}

// waitReady asks moto's API every 100 ms until it answers, moto_server exits or the timeout passes.
func (s *Server) waitReady(timeout time.Duration) error {
	exited := make(chan struct{})
	s.exited = exited
	go func() { _ = s.cmd.Wait(); close(exited) }()
	err := wait.PollUntilContextTimeout(context.Background(), 100*time.Millisecond, timeout, true, func(ctx context.Context) (bool, error) {
		select {
		case <-exited:
			return false, fmt.Errorf("moto_server exited")
		default:
		}
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, s.URL+"/moto-api/", nil)
		if err != nil {
			return false, err
		}
		resp, err := s.HTTPClient.Do(req)
		if err != nil {
			return false, nil
		}
		resp.Body.Close()
		return true, nil
	})
	if wait.Interrupted(err) {
		return fmt.Errorf("moto_server not ready after %s", timeout)
	}
	return err
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

// Stop ends the moto_server process and waits (up to 10 s) until it is gone.
func (s *Server) Stop() {
	if s.cmd != nil && s.cmd.Process != nil {
		_ = s.cmd.Process.Kill()
		if s.exited != nil {
			select {
			case <-s.exited:
			case <-time.After(10 * time.Second):
			}
		}
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
