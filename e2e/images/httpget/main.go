// Command httpget is the e2e cluster's network probe: it GETs each URL over HTTPS, trusting the CA bundles given
// with -ca, prints one line per URL ("GET url: 200 OK") and exits 1 if any request fails. It runs in a pod to show
// that the pod network reaches the AWS emulator and the apiserver's service IP.
package main

import (
	"crypto/tls"
	"crypto/x509"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"time"
)

func main() {
	var cas stringList
	flag.Var(&cas, "ca", "PEM CA bundle to trust (repeatable)")
	timeout := flag.Duration("timeout", 10*time.Second, "per-request timeout")
	flag.Parse()
	pool := x509.NewCertPool()
	for _, f := range cas {
		b, err := os.ReadFile(f)
		if err != nil {
			fmt.Fprintf(os.Stderr, "read CA bundle %s: %v\n", f, err)
			os.Exit(2)
		}
		if !pool.AppendCertsFromPEM(b) {
			fmt.Fprintf(os.Stderr, "CA bundle %s: no PEM certificates\n", f)
			os.Exit(2)
		}
	}
	client := &http.Client{Timeout: *timeout, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	failed := false
	for _, u := range flag.Args() {
		resp, err := client.Get(u)
		if err != nil {
			fmt.Printf("GET %s: error: %v\n", u, err)
			failed = true
			continue
		}
		body, _ := io.ReadAll(io.LimitReader(resp.Body, 200))
		resp.Body.Close()
		fmt.Printf("GET %s: %s %s\n", u, resp.Status, strings.Join(strings.Fields(string(body)), " "))
	}
	if failed {
		os.Exit(1)
	}
}

type stringList []string

func (s *stringList) String() string     { return strings.Join(*s, ",") }
func (s *stringList) Set(v string) error { *s = append(*s, v); return nil }
