package cli

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"time"

	"github.com/spf13/cobra"

	"github.com/irsa-anywhere/irsa/pipeline/config"
	"github.com/irsa-anywhere/irsa/pipeline/proxy"
	"github.com/irsa-anywhere/irsa/pipeline/setup"
	"github.com/irsa-anywhere/irsa/pipeline/stsgate"
)

func init() { extraCommands = append(extraCommands, newSTSGateCommand) }

func newSTSGateCommand(g *globalOptions) *cobra.Command {
	var backend, listen, backendCA, issuerCA, iamCA, tlsCert, tlsKey string
	cmd := &cobra.Command{
		Use:   "sts-gate --backend URL --listen 127.0.0.1:PORT",
		Short: "A proxy that makes an AWS emulator's STS check web identity tokens as AWS does",
		Long: `moto, LocalStack and floci accept any token for AssumeRoleWithWebIdentity. sts-gate sits in front of them:
AssumeRoleWithWebIdentity requests are checked as STS checks them (the request parameters, ProviderId, issuer
discovery and JWKS fetched anonymously, the thumbprint when the issuer's certificate does not chain to a CA IAM
trusts, kid, an RS256/384/512 or ES256/384/512 signature, integer dates, lifetime, audience among the provider's client
IDs, the role's trust policy and MaxSessionDuration) against the provider and role read from the emulator's IAM, and
refused with AWS's error codes (ValidationError, InvalidIdentityToken, IDPCommunicationError, ExpiredTokenException,
AccessDenied, ...). Every other request is forwarded unchanged; GET /_irsa/sts-gate/health answers 200.
--issuer-ca lets the gate reach an issuer behind a private CA; as on AWS, such an issuer then needs its thumbprint in
the IAM OIDC provider. Every rule: docs/sts-gate.md.

  irsa sts-gate --backend https://127.0.0.1:4566 --listen 127.0.0.1:4567
  AWS_ENDPOINT_URL_STS=http://127.0.0.1:4567 your-test`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := config.ValidateEndpointURL(backend); err != nil {
				return fmt.Errorf("--backend: %w", err)
			}
			opts := stsgate.Options{Backend: backend, Logger: g.logger(), Region: cmp.Or(g.region, os.Getenv("AWS_REGION"), "us-east-1")}
			var err error
			if _, opts.BackendCA, err = setup.LoadCABundle(backendCA); err != nil {
				return err
			}
			_, issuerPool, err := setup.LoadCABundle(issuerCA)
			if err != nil {
				return err
			}
			opts.IssuerClient = &http.Client{Timeout: 10 * time.Second, Transport: proxy.Transport(issuerPool)}
			if _, opts.IAMTrustedRoots, err = setup.LoadCABundle(iamCA); err != nil {
				return err
			}
			gate, err := stsgate.New(opts)
			if err != nil {
				return err
			}
			ln, err := net.Listen("tcp", listen)
			if err != nil {
				return fmt.Errorf("listen on %q: %w", listen, err)
			}
			srv := &http.Server{Handler: gate, ReadHeaderTimeout: 10 * time.Second}
			scheme := "http"
			if tlsCert != "" {
				scheme = "https"
			}
			fmt.Fprintf(g.stderr, "sts-gate: listening on %s://%s, backend %s\n", scheme, ln.Addr(), backend)
			go func() {
				<-cmd.Context().Done()
				ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
				defer cancel()
				_ = srv.Shutdown(ctx)
			}()
			if tlsCert != "" {
				err = srv.ServeTLS(ln, tlsCert, tlsKey)
			} else {
				err = srv.Serve(ln)
			}
			if errors.Is(err, http.ErrServerClosed) {
				return nil
			}
			return err
		},
	}
	f := cmd.Flags()
	f.StringVar(&backend, "backend", "", "the emulator's endpoint, such as https://127.0.0.1:4566")
	f.StringVar(&listen, "listen", "127.0.0.1:4567", "address to listen on")
	f.StringVar(&backendCA, "backend-ca", "", "PEM CA bundle for the backend (default: system roots)")
	f.StringVar(&issuerCA, "issuer-ca", "", "PEM CA bundle for fetching issuer documents (default: system roots)")
	f.StringVar(&iamCA, "iam-trusted-ca", "", "PEM CA bundle IAM is taken to trust besides the system roots: issuers behind it need no thumbprint (to stand in for a public CA in tests)")
	f.StringVar(&tlsCert, "tls-cert", "", "serve HTTPS with this certificate")
	f.StringVar(&tlsKey, "tls-key", "", "key of --tls-cert")
	f.StringVar(&g.region, "region", "", "region in the gate's answers (default: $AWS_REGION, or us-east-1)")
	return cmd
}
