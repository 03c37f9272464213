// Package proxy makes the connections irsa opens itself (the thumbprint's TLS dial, the issuer fetches of doctor and
// the STS gate, the AWS SDK's client) honour HTTPS_PROXY, HTTP_PROXY and NO_PROXY (and their lower-case forms), as
// curl, the AWS CLI and kubectl do.
//
// The variables are read each time a client is built, not once per process as http.ProxyFromEnvironment caches them,
// so a client built after they change (a test, a long-lived process) sees them. The rules are
// golang.org/x/net/http/httpproxy's, the ones net/http documents: HTTPS_PROXY for https URLs, HTTP_PROXY for http,
// NO_PROXY a list of hosts, domains (".example.com" or "example.com" covers subdomains), IPs and CIDRs to reach
// directly, "*" for all; requests to localhost and loopback addresses never use a proxy.
package proxy

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"time"

	"golang.org/x/net/http/httpproxy"
)

// FromEnvironment returns the proxy function of the current environment, for http.Transport.Proxy.
func FromEnvironment() func(*http.Request) (*url.URL, error) {
	f := httpproxy.FromEnvironment().ProxyFunc()
	return func(r *http.Request) (*url.URL, error) { return f(r.URL) }
}

// Transport is a clone of http.DefaultTransport that trusts roots (nil: the system roots) and goes through the
// environment's proxy.
func Transport(roots *x509.CertPool) *http.Transport {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.Proxy = FromEnvironment()
	tr.TLSClientConfig = &tls.Config{RootCAs: roots, MinVersion: tls.VersionTLS12}
	return tr
}

// DialTLS opens a TLS connection to hostport (host:port of an https URL) with cfg, through the environment's HTTPS
// proxy when it names one for this host: an HTTP CONNECT tunnel (RFC 9110, section 9.3.6), with the proxy URL's user
// info as Basic proxy credentials. TLS runs end to end, so the peer's chain is the host's, not the proxy's.
func DialTLS(ctx context.Context, hostport string, cfg *tls.Config, timeout time.Duration) (*tls.Conn, error) {
	proxyURL, err := httpproxy.FromEnvironment().ProxyFunc()(&url.URL{Scheme: "https", Host: hostport})
	if err != nil {
		return nil, fmt.Errorf("proxy for %s: %w", hostport, err)
	}
	if proxyURL == nil {
		d := tls.Dialer{NetDialer: &net.Dialer{Timeout: timeout}, Config: cfg}
		conn, err := d.DialContext(ctx, "tcp", hostport)
		if err != nil {
			return nil, err
		}
		return conn.(*tls.Conn), nil
	}
	raw, err := tunnel(ctx, proxyURL, hostport, timeout)
	if err != nil {
		return nil, err
	}
	conn := tls.Client(raw, cfg)
	hctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	if err := conn.HandshakeContext(hctx); err != nil {
		raw.Close()
		return nil, fmt.Errorf("TLS handshake with %s through proxy %s: %w", hostport, proxyURL.Redacted(), err)
	}
	return conn, nil
}

// tunnel asks the proxy at proxyURL for a CONNECT tunnel to hostport.
func tunnel(ctx context.Context, proxyURL *url.URL, hostport string, timeout time.Duration) (net.Conn, error) {
	addr := proxyURL.Host
	if proxyURL.Port() == "" {
		port := "80"
		if proxyURL.Scheme == "https" {
			port = "443"
		}
		addr = net.JoinHostPort(proxyURL.Hostname(), port)
	}
	d := &net.Dialer{Timeout: timeout}
	var conn net.Conn
	var err error
	if proxyURL.Scheme == "https" {
		conn, err = (&tls.Dialer{NetDialer: d, Config: &tls.Config{ServerName: proxyURL.Hostname(), MinVersion: tls.VersionTLS12}}).DialContext(ctx, "tcp", addr)
	} else {
		conn, err = d.DialContext(ctx, "tcp", addr)
	}
	if err != nil {
		return nil, fmt.Errorf("connect to proxy %s: %w", proxyURL.Redacted(), err)
	}
	_ = conn.SetDeadline(time.Now().Add(timeout))
	req := &http.Request{Method: http.MethodConnect, URL: &url.URL{Opaque: hostport}, Host: hostport, Header: http.Header{}}
	if u := proxyURL.User; u != nil {
		pw, _ := u.Password()
		req.Header.Set("Proxy-Authorization", "Basic "+base64.StdEncoding.EncodeToString([]byte(u.Username()+":"+pw)))
	}
	if err := req.Write(conn); err != nil {
		conn.Close()
		return nil, fmt.Errorf("CONNECT %s through proxy %s: %w", hostport, proxyURL.Redacted(), err)
	}
	br := bufio.NewReader(conn)
	resp, err := http.ReadResponse(br, req)
	if err != nil {
		conn.Close()
		return nil, fmt.Errorf("CONNECT %s through proxy %s: %w", hostport, proxyURL.Redacted(), err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		conn.Close()
		return nil, fmt.Errorf("CONNECT %s through proxy %s: %s", hostport, proxyURL.Redacted(), resp.Status)
	}
	if br.Buffered() > 0 {
		conn.Close()
		return nil, fmt.Errorf("CONNECT %s through proxy %s: the proxy sent data before the tunnel opened", hostport, proxyURL.Redacted())
	}
	_ = conn.SetDeadline(time.Time{})
	return conn, nil
}
