package proxy

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/irsa-anywhere/irsa/internal/connectproxy"
)

// example.com is named only to the proxy, which sends every tunnel to 127.0.0.1: nothing leaves the machine.
func TestThroughTheEnvironmentsProxy(t *testing.T) {
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.Write([]byte("ok")) }))
	t.Cleanup(srv.Close)
	_, port, _ := net.SplitHostPort(strings.TrimPrefix(srv.URL, "https://"))
	target := net.JoinHostPort("example.com", port)
	roots := x509.NewCertPool()
	roots.AddCert(srv.Certificate())
	p := connectproxy.Start(t)
	t.Setenv("HTTPS_PROXY", p.URL)
	t.Setenv("NO_PROXY", "")

	conn, err := DialTLS(context.Background(), target, &tls.Config{ServerName: "example.com", RootCAs: roots}, 5*time.Second)
	if err != nil {
		t.Fatalf("DialTLS through the proxy: %v", err)
	}
	if certs := conn.ConnectionState().PeerCertificates; len(certs) == 0 || !certs[0].Equal(srv.Certificate()) {
		t.Errorf("the chain is not the server's: TLS must run end to end")
	}
	conn.Close()

	resp, err := (&http.Client{Transport: Transport(roots), Timeout: 5 * time.Second}).Get("https://" + target + "/")
	if err != nil {
		t.Fatalf("GET through Transport: %v", err)
	}
	resp.Body.Close()
	if n := p.Tunnels()[target]; n != 2 {
		t.Errorf("the proxy opened %d tunnels to %s, want 2 (the dial and the GET)", n, target)
	}

	// The variables are read when a client is built, not once per process.
	t.Setenv("NO_PROXY", "example.com")
	if u, _ := FromEnvironment()(&http.Request{URL: &url.URL{Scheme: "https", Host: target}}); u != nil {
		t.Errorf("NO_PROXY=example.com: proxy %s, want none", u)
	}
	t.Setenv("NO_PROXY", "")
	p.Refuse = http.StatusProxyAuthRequired
	_, err = DialTLS(context.Background(), target, &tls.Config{ServerName: "example.com", RootCAs: roots}, 5*time.Second)
	if err == nil || !strings.Contains(err.Error(), "407") || !strings.Contains(err.Error(), p.URL) {
		t.Errorf("a refusing proxy: err = %v, want the proxy and its 407", err)
	}
}
