package apiserver

import (
	"context"

	"github.com/irsa-anywhere/irsa/pipeline/stage"
)

// verifyOnly is the platform of clusters whose apiserver irsa does not configure (kind, external): Plan and Apply
// check that the apiserver already serves the issuer and change nothing; Delete has nothing to undo.
type verifyOnly struct {
	*Stage
	// mismatch is the error when the apiserver serves another issuer: what the user does about it.
	mismatch func(served string) error
}

func (v verifyOnly) Plan(ctx context.Context) ([]stage.Change, error) { return nil, v.check(ctx) }

func (v verifyOnly) Apply(ctx context.Context) ([]stage.Change, error) { return nil, v.check(ctx) }

func (verifyOnly) Delete(context.Context) ([]stage.Change, error) { return nil, nil }

func (v verifyOnly) check(ctx context.Context) error {
	served, err := ServedIssuer(ctx, v.client)
	if err != nil || served == v.opts.IssuerURL {
		return err
	}
	return v.mismatch(served)
}
