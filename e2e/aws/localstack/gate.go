package localstack

import (
	"context"
	"crypto/tls"
	"log/slog"
	"net/http"

	"github.com/irsa-anywhere/irsa/pipeline/stsgate"
)

// STSGate puts the strict STS gate (pipeline/stsgate) in front of the emulator: AssumeRoleWithWebIdentity is
// checked the way AWS STS checks it, reading the provider and role from the emulator's own IAM and the issuer
// documents through the front; every other request goes to the emulator unchanged. logger may be nil.
func STSGate(logger *slog.Logger) GateFunc {
	return func(_ context.Context, t GateTarget) (http.Handler, error) {
		return stsgate.New(stsgate.Options{
			Backend: t.Backend,
			Region:  t.Region,
			IssuerClient: &http.Client{Transport: &http.Transport{
				TLSClientConfig: &tls.Config{RootCAs: t.IssuerCA, MinVersion: tls.VersionTLS12},
			}},
			Logger: logger,
		})
	}
}
