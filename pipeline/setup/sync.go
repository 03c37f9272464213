package setup

import (
	"context"
	"crypto"
	"fmt"
	"slices"

	"github.com/irsa-anywhere/irsa/pipeline/issuer"
	"github.com/irsa-anywhere/irsa/pipeline/keys"
	"github.com/irsa-anywhere/irsa/pipeline/runner"
	"github.com/irsa-anywhere/irsa/pipeline/stage"
)

// IssuerStage is the issuer stage: the keys of KeySource merged into the JWKS the issuer already publishes (keys
// published before stay, so an issuer that outlives a cluster keeps its predecessor's keys), less the kids in retire.
func (e *Env) IssuerStage(retire []string) *issuer.Stage {
	t := e.Target
	return &issuer.Stage{
		Host: e.IssuerHost(), IssuerURL: t.Issuer.URL, DiscoveryKey: t.Issuer.DiscoveryKey, JWKSKey: t.Issuer.JWKSKey,
		Keys: e.keysWithout(retire), LegacyEmptyKID: t.Config.LegacyEmptyKID, Retire: retire, Located: t.SetIssuerURL,
	}
}

// keysWithout is KeySource's keys less those whose kid is in retire: a key `rotate-key retire` removes from the JWKS
// before the apiservers stop serving it (sync refuses such a kid before it gets here).
func (e *Env) keysWithout(retire []string) func(context.Context) ([]crypto.PublicKey, error) {
	load := e.KeySource().Load
	return func(ctx context.Context) ([]crypto.PublicKey, error) {
		ks, err := load(ctx)
		if err != nil || len(retire) == 0 {
			return ks, err
		}
		return slices.DeleteFunc(ks, func(k crypto.PublicKey) bool {
			kid, err := keys.KeyID(k)
			return err == nil && slices.Contains(retire, kid)
		}), nil
	}
}

// SyncRunner is `irsa sync`: the issuer stage alone, which makes the published JWKS the keys the cluster serves at
// /openid/v1/jwks (and the key directory's and --public-key's) plus the keys already published, less retire. It needs
// a cluster, and refuses, before any write, to retire a key the cluster still serves or irsa is given: tokens signed
// with it would fail in STS (a key leaves the apiservers first, with `irsa rotate-key retire`).
func (e *Env) SyncRunner(ctx context.Context, retire []string) (*runner.Runner, error) {
	if e.Cluster == nil {
		return nil, fmt.Errorf("sync publishes the keys the cluster serves, and no cluster is configured: give --kubeconfig (or set KUBECONFIG)")
	}
	if err := e.checkRetire(ctx, retire); err != nil {
		return nil, err
	}
	return &runner.Runner{Stages: []stage.Stage{e.IssuerStage(retire)}, Needs: map[string][]string{stage.Issuer: nil}, Log: e.Log}, nil
}

// checkRetire refuses kids that are empty or that irsa would publish anyway (served by the cluster, in the key
// directory, given with --public-key).
func (e *Env) checkRetire(ctx context.Context, retire []string) error {
	if len(retire) == 0 {
		return nil
	}
	wanted, err := e.KeySource().Load(ctx)
	if err != nil {
		return err
	}
	var kids []string
	for _, k := range wanted {
		kid, err := keys.KeyID(k)
		if err != nil {
			return err
		}
		kids = append(kids, kid)
	}
	for _, r := range retire {
		switch {
		case r == "":
			return fmt.Errorf("--retire %q: give the kid of a published key (irsa doctor lists them)", r)
		case slices.Contains(kids, r):
			return fmt.Errorf("--retire %s: the cluster still serves this key (or the key directory or --public-key holds it), so it may sign tokens that STS would then refuse: take it off the apiservers first with `irsa rotate-key retire`", r)
		}
	}
	return nil
}
