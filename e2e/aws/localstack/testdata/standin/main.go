// Command standin is a tiny static HTTP server used as a stand-in emulator image in the docker-tagged tests:
// no image can be pulled on the build machines, so the tests build this one FROM scratch. It answers /health
// with "ok" and every other path with what it received. With -get URL it is a client instead: it fetches URL
// (trusting the PEM CA in $STANDIN_CA for https) and prints the body, exiting non-zero on any failure.
package main

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"time"
)

func main() {
	listen := flag.String("listen", ":8080", "address to serve on")
	get := flag.String("get", "", "fetch this URL instead of serving")
	flag.Parse()
	if *get != "" {
		if err := fetch(*get); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		return
	}
	http.HandleFunc("/health", func(w http.ResponseWriter, r *http.Request) { fmt.Fprint(w, "ok") })
	http.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		_ = json.NewEncoder(w).Encode(map[string]string{
			"method":   r.Method,
			"path":     r.URL.Path,
			"host":     r.Host,
			"greeting": os.Getenv("STANDIN_GREETING"),
		})
	})
	srv := &http.Server{Addr: *listen, ReadHeaderTimeout: 10 * time.Second}
	if err := srv.ListenAndServe(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}

func fetch(url string) error {
	pool := x509.NewCertPool()
	if ca := os.Getenv("STANDIN_CA"); ca != "" && !pool.AppendCertsFromPEM([]byte(ca)) {
		return fmt.Errorf("STANDIN_CA: no PEM certificate")
	}
	c := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	resp, err := c.Get(url)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return err
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: %s: %s", url, resp.Status, body)
	}
	fmt.Printf("%s\n", body)
	return nil
}
