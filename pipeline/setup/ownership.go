package setup

import (
	"context"
	"fmt"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws/arn"

	"github.com/irsa-anywhere/irsa/pipeline/config"
	"github.com/irsa-anywhere/irsa/pipeline/issuer/s3public"
)

// CheckOwnership makes, for commands that only look (doctor), the ownership checks apply, plan and teardown make: the
// issuer bucket's tag (or that apply would adopt it), the provider's tag and, when roleARN is given, that the role is
// tagged for the cluster, under its IAM path and tagged with namespace/serviceAccount, the ServiceAccount it serves.
// It returns one error per object apply would refuse to manage.
func (e *Env) CheckOwnership(ctx context.Context, roleARN, namespace, serviceAccount string) []error {
	var errs []error
	if host, ok := e.IssuerHost().(*s3public.Host); ok {
		if err := host.CheckOwned(ctx); err != nil {
			errs = append(errs, err)
		}
	}
	if err := e.ProviderStage().CheckOwned(ctx); err != nil {
		errs = append(errs, err)
	}
	if roleARN != "" {
		parsed, err := arn.Parse(roleARN)
		if err != nil || !strings.HasPrefix(parsed.Resource, "role/") {
			return append(errs, fmt.Errorf("%q is not an IAM role ARN", roleARN))
		}
		name := parsed.Resource[strings.LastIndex(parsed.Resource, "/")+1:]
		b := config.Binding{Namespace: namespace, ServiceAccount: serviceAccount, RoleName: name}
		if err := e.RoleManager().CheckOwned(ctx, b); err != nil {
			errs = append(errs, err)
		}
	}
	return errs
}

// KMSDefault returns the issuer bucket's default encryption when it is a KMS key, "" otherwise (see
// s3public.Host.KMSDefault).
func (e *Env) KMSDefault(ctx context.Context) (string, error) {
	if host, ok := e.IssuerHost().(*s3public.Host); ok {
		return host.KMSDefault(ctx)
	}
	return "", nil
}
