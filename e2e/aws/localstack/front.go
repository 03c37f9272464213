package localstack

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"time"
)

// front is the HTTPS server in front of the emulator, on one or more addresses.
type front struct {
	servers []*http.Server
	addrs   []string
	done    []chan struct{}
}

// reverseProxy forwards to the emulator unchanged, keeping the client's Host: SigV4 signatures cover it and
// emulators build S3 URLs from it.
func reverseProxy(target string) http.Handler {
	u, _ := url.Parse(target) // built by start from a loopback address and a port
	return &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.SetURL(u)
			pr.Out.Host = pr.In.Host
		},
	}
}

// serveFront listens on each address and serves h over TLS with the PEM certificate and key.
func serveFront(h http.Handler, certPEM, keyPEM []byte, addrs []string) (*front, error) {
	pair, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		return nil, fmt.Errorf("load front certificate: %w", err)
	}
	f := &front{}
	for _, addr := range addrs {
		l, err := net.Listen("tcp", addr)
		if err != nil {
			return nil, errors.Join(fmt.Errorf("listen on %s: %w", addr, err), f.close(context.Background()))
		}
		srv := &http.Server{
			Handler:           h,
			TLSConfig:         &tls.Config{Certificates: []tls.Certificate{pair}, MinVersion: tls.VersionTLS12},
			ReadHeaderTimeout: 30 * time.Second,
		}
		done := make(chan struct{})
		go func() {
			defer close(done)
			_ = srv.ServeTLS(l, "", "") // returns http.ErrServerClosed on close
		}()
		f.servers = append(f.servers, srv)
		f.addrs = append(f.addrs, l.Addr().String())
		f.done = append(f.done, done)
	}
	return f, nil
}

func (f *front) close(ctx context.Context) error {
	var errs []error
	for i, srv := range f.servers {
		if err := srv.Shutdown(ctx); err != nil {
			errs = append(errs, fmt.Errorf("stop HTTPS front on %s: %w", f.addrs[i], err))
		}
		<-f.done[i]
	}
	return errors.Join(errs...)
}
