package setup

import (
	"fmt"
	"net/http"
	"slices"
	"sync"
)

// RequestCounter counts the requests made to the cluster's API: reads (GET, and dry-run requests, which persist
// nothing) and writes (every other request), so a caller can tell a no-op run from one that changed something.
type RequestCounter struct {
	mu     sync.Mutex
	reads  int
	writes []string
}

// Reads is how many requests persisted nothing.
func (c *RequestCounter) Reads() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.reads
}

// Writes lists the requests that could change something, as "METHOD path", sorted.
func (c *RequestCounter) Writes() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := slices.Clone(c.writes)
	slices.Sort(out)
	return out
}

func (c *RequestCounter) wrap(rt http.RoundTripper) http.RoundTripper {
	return roundTripperFunc(func(req *http.Request) (*http.Response, error) {
		c.mu.Lock()
		switch {
		case req.Method == http.MethodGet || req.Method == http.MethodHead || req.URL.Query().Get("dryRun") != "":
			c.reads++
		default:
			c.writes = append(c.writes, fmt.Sprintf("%s %s", req.Method, req.URL.Path))
		}
		c.mu.Unlock()
		return rt.RoundTrip(req)
	})
}

type roundTripperFunc func(*http.Request) (*http.Response, error)

func (f roundTripperFunc) RoundTrip(req *http.Request) (*http.Response, error) { return f(req) }
