package moto

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/credentials"

	"github.com/irsa-anywhere/irsa/internal/cloudfrontedge"
	"github.com/irsa-anywhere/irsa/pipeline/awsclient"
)

// startEdge serves the strict CloudFront stand-in (internal/cloudfrontedge) on loopback, reading distributions and
// objects from moto as CloudFront would from AWS.
func (b *Backend) startEdge(ctx context.Context) error {
	ca, err := os.ReadFile(b.server.CAFile)
	if err != nil {
		return err
	}
	c, err := awsclient.New(ctx, awsclient.Options{Region: b.opts.Region, EndpointURL: b.server.URL, CABundle: ca,
		Credentials: credentials.NewStaticCredentialsProvider("testing", "testing", "")})
	if err != nil {
		return fmt.Errorf("cloudfront edge: %w", err)
	}
	edge := &cloudfrontedge.Edge{CloudFront: c.CloudFront, S3: c.S3, Log: b.opts.GateLogger,
		Anonymous: func(ctx context.Context, bucket, key string) (*http.Response, error) {
			req, err := http.NewRequestWithContext(ctx, http.MethodGet, b.server.URL+"/"+bucket+"/"+key, nil)
			if err != nil {
				return nil, err
			}
			return b.server.HTTPClient.Do(req)
		}}
	if b.edge, err = cloudfrontedge.Start(edge, ""); err != nil {
		return err
	}
	return nil
}

// gateIssuerClient is the strict STS gate's client for issuer documents: a distribution's domain
// (*.cloudfront.net) reaches the edge, as DNS would send it to CloudFront, and everything else is dialled as it is;
// both moto's CA and the edge's are trusted. iamRoots are the CAs IAM trusts on its own: the system roots and the
// edge's CA, which plays the public CA CloudFront's certificates chain to (so no thumbprint is needed for it).
func (b *Backend) gateIssuerClient() (client *http.Client, iamRoots *x509.CertPool) {
	roots := b.server.CAPool.Clone()
	roots.AddCert(b.edge.CA.Cert)
	iamRoots, _ = x509.SystemCertPool()
	if iamRoots == nil {
		iamRoots = x509.NewCertPool()
	}
	iamRoots.AddCert(b.edge.CA.Cert)
	d := &net.Dialer{Timeout: 5 * time.Second}
	return &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{
		TLSClientConfig: &tls.Config{RootCAs: roots, MinVersion: tls.VersionTLS12},
		DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			if host, _, _ := net.SplitHostPort(addr); strings.HasSuffix(host, ".cloudfront.net") {
				addr = b.edge.Addr
			}
			return d.DialContext(ctx, network, addr)
		},
	}}, iamRoots
}
