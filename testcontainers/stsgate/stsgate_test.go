package stsgate_test

import (
	"context"
	"strings"
	"testing"

	"github.com/testcontainers/testcontainers-go"

	"github.com/irsa-anywhere/irsa/testcontainers/stsgate"
)

// TestRunRefusesBadOptions checks the options before any container exists: no daemon is needed.
func TestRunRefusesBadOptions(t *testing.T) {
	t.Parallel()
	for name, c := range map[string]struct {
		opts []stsgate.Option
		want string
	}{
		"no backend":         {nil, "WithBackend"},
		"empty backend":      {[]stsgate.Option{stsgate.WithBackend("")}, "empty URL"},
		"issuer CA not PEM":  {[]stsgate.Option{stsgate.WithBackend("http://moto:5000"), stsgate.WithIssuerCA([]byte("x"))}, "WithIssuerCA"},
		"backend CA not PEM": {[]stsgate.Option{stsgate.WithBackend("http://moto:5000"), stsgate.WithBackendCA(nil)}, "WithBackendCA"},
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			var opts []testcontainers.ContainerCustomizer
			for _, o := range c.opts {
				opts = append(opts, o)
			}
			ctr, err := stsgate.Run(context.Background(), "irsa.local/test/sts-gate:none", opts...)
			if ctr != nil || err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("Run: %v, %v; want no container and an error containing %q", ctr, err, c.want)
			}
		})
	}
}
