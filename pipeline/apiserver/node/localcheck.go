package node

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/wait"

	"github.com/irsa-anywhere/irsa/pipeline/apiserver/manifest"
)

// In-cluster service account files of the node pod.
const (
	serviceAccountDir = "/var/run/secrets/kubernetes.io/serviceaccount"
	advertiseEndpoint = "kubeadm.kubernetes.io/kube-apiserver.advertise-address.endpoint"
)

// LocalCheck asks the apiserver of this node (not the load-balanced service) which issuer it serves, with the node
// pod's own service account token. It is Options.Verify for the node subcommand.
type LocalCheck struct {
	// URL is the local apiserver, https://host:port.
	URL string
	// ServerName is checked against the serving certificate instead of the URL's host, when set.
	ServerName string
	// CAFile and TokenFile are the pod's service account CA and token.
	CAFile    string
	TokenFile string
	// Timeout bounds the whole check; Interval is the pause between attempts.
	Timeout  time.Duration
	Interval time.Duration
}

// NewLocalCheck finds this node's apiserver in its manifest: kubeadm's advertise-address annotation, else the
// probes' host and --secure-port, else 127.0.0.1:6443 (then the certificate is checked for the name "kubernetes",
// which kubeadm puts in every apiserver certificate).
func NewLocalCheck(manifestBytes []byte, timeout time.Duration) (LocalCheck, error) {
	c := LocalCheck{
		CAFile:    serviceAccountDir + "/ca.crt",
		TokenFile: serviceAccountDir + "/token",
		Timeout:   timeout,
		Interval:  defaultCheckInterval,
	}
	pod, err := manifest.Parse(manifestBytes)
	if err != nil {
		return c, err
	}
	if ep := pod.Annotations[advertiseEndpoint]; ep != "" {
		if _, _, err := net.SplitHostPort(ep); err == nil {
			c.URL = "https://" + ep
			return c, nil
		}
	}
	container, err := manifest.Container(pod)
	if err != nil {
		return c, err
	}
	port := "6443"
	if v := manifest.FlagValues(container, "secure-port"); len(v) > 0 {
		port = v[len(v)-1]
	}
	host := ""
	for _, p := range []*corev1.Probe{container.ReadinessProbe, container.LivenessProbe, container.StartupProbe} {
		if host == "" && p != nil && p.HTTPGet != nil {
			host = p.HTTPGet.Host
		}
	}
	if host == "" {
		host, c.ServerName = "127.0.0.1", "kubernetes"
	}
	if _, err := strconv.Atoi(port); err != nil {
		return c, fmt.Errorf("--secure-port %q: not a port", port)
	}
	c.URL = "https://" + net.JoinHostPort(host, port)
	return c, nil
}

// Verify polls the local apiserver's discovery document until it names want.Issuer first. When the first issuer
// does not change (want.SameIssuer), it also waits to see the apiserver go away (refused connections or 5xx) and
// come back, the only sign an unprivileged client has that it loaded the new manifest: the kubelet stops the old
// apiserver and starts the new one seconds later (~40 s measured on kubeadm), so polling every few hundred
// milliseconds sees the gap. When restoring, the pod's token may carry the issuer being removed: a 401 from an
// apiserver that answers /readyz then proves the restart.
func (c LocalCheck) Verify(ctx context.Context, want Expectation) error {
	client, err := c.httpClient()
	if err != nil {
		return err
	}
	restarted := !want.SameIssuer
	observed := "no answer yet"
	interval := c.Interval
	if interval <= 0 {
		interval = defaultCheckInterval
	}
	err = wait.PollUntilContextTimeout(ctx, interval, c.Timeout, true, func(ctx context.Context) (bool, error) {
		got, status, err := c.get(ctx, client, DiscoveryPath, true)
		if ctx.Err() != nil {
			// The deadline cut this request short: the timeout error reports what was seen before it.
			return false, nil
		}
		switch {
		case err != nil:
			// Not listening: the old apiserver has stopped, the new one is starting.
			restarted = true
			observed = err.Error()
		case status == http.StatusOK:
			var doc struct {
				Issuer string `json:"issuer"`
			}
			switch {
			case json.Unmarshal(got, &doc) != nil:
				observed = fmt.Sprintf("undecodable discovery document %q", truncate(got))
			case doc.Issuer != want.Issuer:
				observed = fmt.Sprintf("issuer %q", doc.Issuer)
			case !restarted:
				observed = fmt.Sprintf("issuer %q from the apiserver that ran before the change (no restart seen yet)", doc.Issuer)
			default:
				return true, nil
			}
		case status == http.StatusUnauthorized && want.Restoring:
			if _, ready, err := c.get(ctx, client, "/readyz", false); err == nil && ready == http.StatusOK {
				return true, nil
			}
			observed = "401 for the pod's token, /readyz not ready"
		default:
			if status >= 500 {
				restarted = true
			}
			observed = fmt.Sprintf("HTTP %d: %s", status, truncate(got))
		}
		return false, nil
	})
	if err != nil {
		return fmt.Errorf("local apiserver %s did not serve issuer %q within %s; last observed: %s", c.URL, want.Issuer, c.Timeout, observed)
	}
	return nil
}

func (c LocalCheck) httpClient() (*http.Client, error) {
	ca, err := os.ReadFile(c.CAFile)
	if err != nil {
		return nil, fmt.Errorf("read service account CA %s: %w", c.CAFile, err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(ca) {
		return nil, fmt.Errorf("service account CA %s: no PEM certificate", c.CAFile)
	}
	return &http.Client{
		Timeout: 10 * time.Second,
		// A new connection per request: a kept-alive one (and HTTP/2's retry after the old apiserver's GOAWAY) could
		// hide the moment the apiserver is down, the sign of its restart.
		Transport: &http.Transport{Proxy: nil, DisableKeepAlives: true, ForceAttemptHTTP2: false,
			TLSClientConfig: &tls.Config{RootCAs: pool, ServerName: c.ServerName, MinVersion: tls.VersionTLS12}},
	}, nil
}

func (c LocalCheck) get(ctx context.Context, client *http.Client, path string, auth bool) ([]byte, int, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, strings.TrimSuffix(c.URL, "/")+path, nil)
	if err != nil {
		return nil, 0, err
	}
	if auth {
		// Read each time: the kubelet rotates the projected token.
		token, err := os.ReadFile(c.TokenFile)
		if err != nil {
			return nil, 0, fmt.Errorf("read service account token %s: %w", c.TokenFile, err)
		}
		req.Header.Set("Authorization", "Bearer "+strings.TrimSpace(string(token)))
	}
	resp, err := client.Do(req)
	if err != nil {
		return nil, 0, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	return body, resp.StatusCode, err
}
