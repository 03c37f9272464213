// Package connectproxy is an HTTP CONNECT proxy on loopback for tests: it counts the tunnels it opens by target and
// sends every one to 127.0.0.1 on the target's port, so a test can name hosts (moto.localhost, example.com) that
// only the proxy resolves, and no traffic leaves the machine.
package connectproxy

import (
	"io"
	"net"
	"net/http"
	"sync"
	"testing"
)

// Proxy is a running CONNECT proxy.
type Proxy struct {
	// URL is http://127.0.0.1:PORT, the value for HTTPS_PROXY.
	URL string
	// Refuse, when set, answers every CONNECT with this status instead of opening the tunnel.
	Refuse int

	mu      sync.Mutex
	tunnels map[string]int
}

// Start runs a proxy until the test ends.
func Start(t testing.TB) *Proxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &Proxy{URL: "http://" + ln.Addr().String(), tunnels: map[string]int{}}
	srv := &http.Server{Handler: http.HandlerFunc(p.serve)}
	t.Cleanup(func() { srv.Close() })
	go srv.Serve(ln)
	return p
}

// Tunnels returns how many tunnels were asked for, by target host:port.
func (p *Proxy) Tunnels() map[string]int {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := map[string]int{}
	for k, v := range p.tunnels {
		out[k] = v
	}
	return out
}

func (p *Proxy) serve(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodConnect {
		http.Error(w, "CONNECT only", http.StatusMethodNotAllowed)
		return
	}
	p.mu.Lock()
	p.tunnels[r.Host]++
	refuse := p.Refuse
	p.mu.Unlock()
	if refuse != 0 {
		http.Error(w, "refused by the test proxy", refuse)
		return
	}
	_, port, err := net.SplitHostPort(r.Host)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	upstream, err := net.Dial("tcp", net.JoinHostPort("127.0.0.1", port))
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadGateway)
		return
	}
	hj, ok := w.(http.Hijacker)
	if !ok {
		upstream.Close()
		http.Error(w, "no hijacking", http.StatusInternalServerError)
		return
	}
	client, buf, err := hj.Hijack()
	if err != nil {
		upstream.Close()
		return
	}
	if _, err := io.WriteString(client, "HTTP/1.1 200 Connection established\r\n\r\n"); err != nil {
		upstream.Close()
		client.Close()
		return
	}
	if n := buf.Reader.Buffered(); n > 0 {
		data, _ := buf.Reader.Peek(n)
		upstream.Write(data)
	}
	go func() { io.Copy(upstream, client); upstream.Close() }()
	io.Copy(client, upstream)
	client.Close()
}
