// Package faultproxy is a test helper: an HTTPS reverse proxy in front of moto_server that injects the faults a real
// network gives AWS clients, so tests can prove irsa converges under them. It can drop the response of a chosen
// request after the request has reached moto (the write happened, the client never hears of it and retries), the
// fault that leaves half-made objects behind. The proxy stands in for the network, which is the one thing a test on
// loopback cannot make fail on demand; AWS itself is the real moto_server.
package faultproxy

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"
)

// Request is what a Rule sees of a request.
type Request struct {
	Method string
	// Path is the URL path: /BUCKET for path-style S3 bucket calls, / for IAM and STS.
	Path     string
	RawQuery string
	Body     []byte
}

// Action is the Query-protocol action (IAM, STS) of the request, such as "CreateRole"; empty for S3.
func (r Request) Action() string {
	v, err := url.ParseQuery(string(r.Body))
	if err != nil {
		return ""
	}
	return v.Get("Action")
}

// Match says whether a fault applies to a request.
type Match func(Request) bool

// Mutating says whether r can change something: any S3 method but GET and HEAD, any Query action but Get*, List*
// and STS's GetCallerIdentity.
func (r Request) Mutating() bool {
	if a := r.Action(); a != "" {
		return !strings.HasPrefix(a, "Get") && !strings.HasPrefix(a, "List")
	}
	return r.Method != http.MethodGet && r.Method != http.MethodHead
}

// NthMutating matches the n-th mutating request (counting from 1) the proxy sees after the match is made.
func NthMutating(n int) Match {
	var mu sync.Mutex
	seen := 0
	return func(r Request) bool {
		if !r.Mutating() {
			return false
		}
		mu.Lock()
		defer mu.Unlock()
		seen++
		return seen == n
	}
}

// IAMAction matches the Query-protocol action name.
func IAMAction(name string) Match { return func(r Request) bool { return r.Action() == name } }

// CreateBucket matches S3 CreateBucket of bucket (path-style PUT /BUCKET with no sub-resource).
func CreateBucket(bucket string) Match {
	return func(r Request) bool {
		return r.Method == http.MethodPut && strings.Trim(r.Path, "/") == bucket && r.RawQuery == ""
	}
}

// Proxy forwards every request to its upstream and injects the faults it was told to.
type Proxy struct {
	// URL is the proxy's https endpoint.
	URL string

	upstream *url.URL
	client   *http.Client
	srv      *http.Server
	mu       sync.Mutex
	drops    []*drop
	// Dropped counts the responses dropped so far.
	dropped int
	// flaky, when set, picks the requests Flaky faults; throttled counts its throttles.
	flaky     *rand.Rand
	rate      float64
	throttled int
	requests  int
}

type drop struct {
	match Match
	left  int
	// fail, when set, answers instead of forwarding; hook, when set, runs before forwarding.
	fail *failure
	hook func()
}

type failure struct {
	status int
	body   string
	// reset closes the client's connection instead of answering.
	reset bool
}

// Start runs a proxy to upstream (moto's https URL) on a free loopback port until the test ends. certFile and keyFile
// are the proxy's serving certificate (moto's own will do: it covers 127.0.0.1); roots verify upstream.
func Start(tb testing.TB, upstream, certFile, keyFile string, roots *x509.CertPool) *Proxy {
	tb.Helper()
	u, err := url.Parse(upstream)
	if err != nil {
		tb.Fatalf("faultproxy: upstream %q: %v", upstream, err)
	}
	cert, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		tb.Fatalf("faultproxy: load certificate: %v", err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatalf("faultproxy: listen: %v", err)
	}
	p := &Proxy{
		URL:      "https://" + l.Addr().String(),
		upstream: u,
		client: &http.Client{Timeout: 60 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: roots}},
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }},
	}
	// HTTP/1.1 only: dropping a response needs the connection (an HTTP/2 stream cannot be hijacked).
	p.srv = &http.Server{Handler: p, TLSConfig: &tls.Config{Certificates: []tls.Certificate{cert}},
		TLSNextProto: map[string]func(*http.Server, *tls.Conn, http.Handler){}}
	go func() { _ = p.srv.ServeTLS(l, "", "") }()
	tb.Cleanup(func() { _ = p.srv.Close() })
	return p
}

// DropResponse makes the proxy forward the next n requests that match and then, instead of answering, reset the
// client's connection: the request took effect upstream, the client sees a connection reset (which AWS SDKs retry).
func (p *Proxy) DropResponse(m Match, n int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.drops = append(p.drops, &drop{match: m, left: n})
}

// Fail makes the proxy answer the next n requests that match with status and body instead of forwarding them, as AWS
// answers a refused call (body is the service's XML error document).
func (p *Proxy) Fail(m Match, n, status int, body string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.drops = append(p.drops, &drop{match: m, left: n, fail: &failure{status: status, body: body}})
}

// OnRequest runs f when the next request that matches arrives, before it is forwarded (a test cancels a run there,
// as Ctrl-C would).
func (p *Proxy) OnRequest(m Match, f func()) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.drops = append(p.drops, &drop{match: m, left: 1, hook: f})
}

// KillBefore runs f when the next request that matches arrives and then resets the client's connection without
// forwarding the request: the run is stopped (f cancels it) before the request reached AWS. OnRequest is the other
// side of the boundary: the request is forwarded after f, so it takes effect while the run is stopped.
func (p *Proxy) KillBefore(m Match, f func()) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.drops = append(p.drops, &drop{match: m, left: 1, hook: f, fail: &failure{reset: true}})
}

// Flaky makes the proxy fault a fraction rate (0-1) of all later requests, chosen by a generator seeded with seed (a
// failing run can be replayed): half of the faulted ones are throttled (answered, without forwarding, with the
// service's throttling error: 400 Throttling for IAM and STS, 503 SlowDown for S3, both of which AWS SDKs retry with
// backoff), the other half have their response lost (forwarded, then the connection reset).
func (p *Proxy) Flaky(rate float64, seed uint64) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.flaky, p.rate = rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15)), rate
}

// Counts are what the proxy saw and did.
type Counts struct{ Requests, Throttled, Dropped int }

// Counts returns the requests seen, throttled and with their response dropped so far.
func (p *Proxy) Counts() Counts {
	p.mu.Lock()
	defer p.mu.Unlock()
	return Counts{p.requests, p.throttled, p.dropped}
}

// flakyFault draws the fault Flaky gives r: throttle, drop or none.
func (p *Proxy) flakyFault(r Request) (throttle *failure, drop bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.requests++
	if p.flaky == nil || p.flaky.Float64() >= p.rate {
		return nil, false
	}
	if p.flaky.IntN(2) == 0 {
		p.dropped++
		return nil, true
	}
	p.throttled++
	if r.Action() != "" {
		return &failure{status: http.StatusBadRequest, body: `<ErrorResponse><Error><Type>Sender</Type><Code>Throttling</Code><Message>Rate exceeded (faultproxy)</Message></Error><RequestId>faultproxy</RequestId></ErrorResponse>`}, false
	}
	return &failure{status: http.StatusServiceUnavailable, body: `<?xml version="1.0" encoding="UTF-8"?><Error><Code>SlowDown</Code><Message>Please reduce your request rate. (faultproxy)</Message></Error>`}, false
}

// Dropped is how many responses the proxy has dropped.
func (p *Proxy) Dropped() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.dropped
}

// before applies the hooks and failures that match r, and says whether r gets an injected failure instead of an answer.
func (p *Proxy) before(r Request) *failure {
	p.mu.Lock()
	var hooks []func()
	var fail *failure
	for _, d := range p.drops {
		if d.left > 0 && (d.hook != nil || d.fail != nil) && d.match(r) {
			d.left--
			if d.hook != nil {
				hooks = append(hooks, d.hook)
			}
			if d.fail != nil && fail == nil {
				fail = d.fail
			}
		}
	}
	p.mu.Unlock()
	for _, h := range hooks {
		h()
	}
	return fail
}

func (p *Proxy) shouldDrop(r Request) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, d := range p.drops {
		if d.left > 0 && d.hook == nil && d.fail == nil && d.match(r) {
			d.left--
			p.dropped++
			return true
		}
	}
	return false
}

// ServeHTTP implements http.Handler.
func (p *Proxy) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(r.Body)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadGateway)
		return
	}
	req := Request{Method: r.Method, Path: r.URL.Path, RawQuery: r.URL.RawQuery, Body: body}
	throttle, flakyDrop := p.flakyFault(req)
	f := p.before(req)
	if f == nil {
		f = throttle
	}
	if f != nil {
		if f.reset {
			reset(w)
			return
		}
		w.Header().Set("Content-Type", "application/xml")
		w.WriteHeader(f.status)
		_, _ = io.WriteString(w, f.body)
		return
	}
	out, err := http.NewRequestWithContext(r.Context(), r.Method, p.upstream.ResolveReference(&url.URL{Path: r.URL.Path, RawQuery: r.URL.RawQuery}).String(), bytes.NewReader(body))
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadGateway)
		return
	}
	out.Header = r.Header.Clone()
	out.ContentLength = int64(len(body))
	resp, err := p.client.Do(out)
	if err != nil {
		http.Error(w, fmt.Sprintf("faultproxy: upstream: %v", err), http.StatusBadGateway)
		return
	}
	defer resp.Body.Close()
	respBody, _ := io.ReadAll(resp.Body)
	if flakyDrop || p.shouldDrop(req) {
		reset(w)
		return
	}
	for k, v := range resp.Header {
		w.Header()[k] = v
	}
	w.WriteHeader(resp.StatusCode)
	_, _ = w.Write(respBody)
}

// reset closes the client's connection with a TCP RST, so the client sees "connection reset by peer".
func reset(w http.ResponseWriter) {
	conn, _, err := http.NewResponseController(w).Hijack()
	if err != nil {
		return
	}
	if tc, ok := conn.(*tls.Conn); ok {
		if nc, ok := tc.NetConn().(*net.TCPConn); ok {
			_ = nc.SetLinger(0)
			_ = nc.Close()
			return
		}
	}
	_ = conn.Close()
}
