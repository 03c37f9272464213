package setup

import (
	"context"
	"crypto"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"slices"
	"strings"
	"time"

	"k8s.io/client-go/kubernetes"

	"github.com/irsa-anywhere/irsa/pipeline/apiserver"
	"github.com/irsa-anywhere/irsa/pipeline/apiserver/manifest"
	"github.com/irsa-anywhere/irsa/pipeline/documents"
	"github.com/irsa-anywhere/irsa/pipeline/issuer"
	"github.com/irsa-anywhere/irsa/pipeline/keys"
	"github.com/irsa-anywhere/irsa/pipeline/rotation"
	"github.com/irsa-anywhere/irsa/pipeline/runner"
	"github.com/irsa-anywhere/irsa/pipeline/stage"
	"github.com/irsa-anywhere/irsa/pipeline/target"
)

// The steps of `irsa rotate-key`.
const (
	RotateStage   = "stage"
	RotatePromote = "promote"
	RotateRetire  = "retire"
)

// RotateSteps are the steps in order.
var RotateSteps = []string{RotateStage, RotatePromote, RotateRetire}

// RotateOptions are the flags of `irsa rotate-key`.
type RotateOptions struct {
	// NewKey is the key to stage (--new-key, checked by CheckNewKey); nil generates one like the current key.
	NewKey crypto.Signer
	// Force lets retire run before the retire time.
	Force bool
	// Plan builds the step for a dry run: an early retire is shown, not refused.
	Plan bool
	// Now is the clock; nil means time.Now.
	Now func() time.Time
}

// Rotation is one rotate-key step, ready to run: the runner that applies it (each stage finds what exists and
// changes only what differs, so a crashed step is finished by running it again) and what the user should know first.
type Rotation struct {
	Runner *runner.Runner
	// Notes are shown before the report: the keys involved, the retire time and how it follows from the cluster.
	Notes []string
	// Removes is what retire takes away, for the confirmation.
	Removes []string
}

// CheckNewKey reads a key given to `rotate-key stage --new-key` with keys.KeyRule (RSA of at least 2048 bits or ECDSA
// P-256/P-384/P-521), before anything connects or writes.
func CheckNewKey(path string) (crypto.Signer, error) {
	k, err := keys.LoadPrivateKey(path)
	if err != nil {
		return nil, fmt.Errorf("--new-key: %w", err)
	}
	return k, nil
}

// Rotate builds one step of the signing-key rotation of a kubeadm cluster whose apiservers sign with irsa's key
// from the key directory (--signing-key generate). The rotation's state is read from what exists, never from memory:
// the key directory (the current key, and the staged one: keys.NextPairIn), the control-plane mirror pods (which key
// each apiserver signs with and accepts) and the published JWKS.
//
//   - stage: the staged key is made (or given), published in the JWKS, then accepted by every apiserver
//     (--service-account-key-file, one restart each) while the current key still signs.
//   - promote: with the staged key published and accepted everywhere, every apiserver signs with it (one restart
//     each), then it becomes the key directory's key; the previous key stays published and accepted.
//   - retire: once the kubelet has replaced every token the previous key signed (rotation.ComputeRetire; refused
//     earlier unless Force), the previous key leaves the JWKS, then every apiserver (one restart each).
//
// Every refusal comes before the first write.
func (e *Env) Rotate(ctx context.Context, step string, o RotateOptions) (*Rotation, error) {
	if o.Now == nil {
		o.Now = time.Now
	}
	if !slices.Contains(RotateSteps, step) {
		return nil, fmt.Errorf("rotate-key %q: the steps are %s, run in that order", step, strings.Join(RotateSteps, ", "))
	}
	if e.Cluster == nil {
		return nil, fmt.Errorf("rotate-key needs a cluster: it changes the keys every kube-apiserver accepts and signs with; give --kubeconfig (or set KUBECONFIG)")
	}
	clusterType := e.Target.Config.ClusterType
	if clusterType == "" {
		var err error
		if clusterType, err = apiserver.DetectClusterType(ctx, e.Cluster.Client); err != nil {
			return nil, err
		}
	}
	switch {
	case clusterType == apiserver.ClusterEKSAnywhere:
		return nil, fmt.Errorf("rotate-key: EKS Anywhere keeps the signing key in its own Secret and rolls the control-plane machines itself, so irsa cannot stage it; do it in three steps: " +
			"(1) put the new key in the cluster's service account key Secret and upgrade the cluster (eksctl anywhere upgrade cluster), " +
			"(2) run `irsa sync` as soon as the new machines serve the new key, so the JWKS publishes it (the previous key stays), " +
			"(3) once no pod holds a token signed by the previous key (24 h after the last machine rolled at the latest, with kube-apiserver's defaults), run `irsa sync --retire KID`")
	case clusterType != apiserver.ClusterKubeadm:
		return nil, fmt.Errorf("rotate-key: cluster type %s: irsa rotates the key only where it installs it (kubeadm); change the key where the cluster is configured, run `irsa sync` to publish the new key, and `irsa sync --retire KID` once no token of the previous key is in use", clusterType)
	}
	if e.Target.SigningKey.Mode != target.SigningKeyGenerate {
		return nil, fmt.Errorf("rotate-key rotates the key irsa keeps in a key directory (--signing-key generate), and this cluster uses --signing-key %s: "+
			"with the cluster's own key, `irsa apply --signing-key generate` moves to irsa's key with the same overlap (published first, the cluster's key stays accepted); "+
			"with a key file, give the new file to --signing-key and run apply (the previous key stays published and accepted), then `irsa sync --retire KID` later",
			e.Target.Config.SigningKey)
	}
	dir := e.Target.SigningKey.Dir
	current, err := keys.LoadPrivateKey(keys.PairIn(dir).PrivateKeyPath)
	if err != nil {
		return nil, fmt.Errorf("rotate-key: no current key to rotate (%w): run `irsa apply --signing-key generate` first", err)
	}
	currentKID, err := keys.KeyID(current.Public())
	if err != nil {
		return nil, err
	}
	r := &Rotation{Notes: []string{"current key: " + currentKID}}
	switch step {
	case RotateStage:
		return r, e.rotateStage(dir, currentKID, o, r)
	case RotatePromote:
		return r, e.rotatePromote(ctx, dir, r)
	default:
		return r, e.rotateRetire(ctx, dir, currentKID, o, r)
	}
}

func (e *Env) rotateStage(dir, currentKID string, o RotateOptions, r *Rotation) error {
	next := keys.NextPairIn(dir)
	staged, err := keys.LoadPrivateKey(next.PrivateKeyPath)
	switch {
	case err == nil:
		kid, _ := keys.KeyID(staged.Public())
		if o.NewKey != nil {
			if given, _ := keys.KeyID(o.NewKey.Public()); given != kid {
				return fmt.Errorf("rotate-key stage: key directory %q already holds a staged key (kid %s), not the given one (kid %s): promote it, or delete %s to stage another", dir, kid, given, next.PrivateKeyPath)
			}
		}
		r.Notes = append(r.Notes, "staged key: "+kid+" (already made: this run finishes the stage)")
	case o.NewKey != nil:
		kid, _ := keys.KeyID(o.NewKey.Public())
		if kid == currentKID {
			return fmt.Errorf("rotate-key stage --new-key: kid %s is the current key: give a new key", kid)
		}
		r.Notes = append(r.Notes, "staged key: "+kid+" (given)")
	default:
		r.Notes = append(r.Notes, "staged key: generated by this run, of the current key's algorithm")
	}
	notYet := func() bool { _, err := os.Stat(next.PrivateKeyPath); return err != nil }
	stages := []stage.Stage{
		&stagedKeyStage{dir: dir, key: o.NewKey},
		&planFallback{Stage: e.IssuerStage(nil), when: notYet, changes: []stage.Change{{Action: stage.Update, Kind: "s3-object", Name: e.Target.Issuer.Bucket + "/" + e.Target.Issuer.JWKSKey, Detail: "JWKS adds the staged key (the current key stays)"}}},
		&lazyStage{name: stage.APIServer, when: notYet,
			changes: []stage.Change{{Action: stage.Update, Kind: "kube-apiserver-manifest", Name: "every control-plane node", Detail: "accepts the staged key (--service-account-key-file); the current key still signs",
				Disruption: "each kube-apiserver restarts once"}},
			build: func() (stage.Stage, error) {
				return e.apiserverWithKey(next.PrivateKeyPath, func(o *apiserver.Options) { o.AcceptOnly = true })
			}},
	}
	r.Runner = &runner.Runner{Stages: stages, Needs: map[string][]string{stage.Issuer: {stage.Keys}, stage.APIServer: {stage.Issuer}}, Log: e.Log}
	return nil
}

func (e *Env) rotatePromote(ctx context.Context, dir string, r *Rotation) error {
	next := keys.NextPairIn(dir)
	staged, err := keys.LoadPrivateKey(next.PrivateKeyPath)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			r.Notes = append(r.Notes, "no staged key in "+dir+": nothing to promote (run `irsa rotate-key stage` first; a promote that completed leaves none)")
			r.Runner = &runner.Runner{Needs: map[string][]string{}, Log: e.Log}
			return nil
		}
		return err
	}
	kid, err := keys.KeyID(staged.Public())
	if err != nil {
		return err
	}
	r.Notes = append(r.Notes, "staged key: "+kid)
	published, err := e.publishedKIDs(ctx)
	if err != nil {
		return err
	}
	if !slices.Contains(published, kid) {
		return fmt.Errorf("rotate-key promote: the staged key %s is not published in %s yet, so STS would refuse the tokens it signs: run `irsa rotate-key stage` (again)", kid, e.Target.Issuer.URL)
	}
	var notAccepting []string
	_, err = readSettled(ctx, e.Cluster.Client, func(st rotation.State) bool {
		notAccepting = nil
		for _, n := range st.Nodes {
			if !slices.ContainsFunc(n.KeyFiles, func(f string) bool { return strings.Contains(f, manifest.KeyFilePrefix+kid[:16]) }) && n.SigningKID != kid {
				notAccepting = append(notAccepting, n.Node)
			}
		}
		return len(notAccepting) == 0
	})
	if err != nil {
		return err
	}
	if len(notAccepting) > 0 {
		return fmt.Errorf("rotate-key promote: the apiserver on %s does not accept the staged key %s yet, so tokens it signed elsewhere would fail there: run `irsa rotate-key stage` (again)", strings.Join(notAccepting, ", "), kid)
	}
	stages := []stage.Stage{
		&lazyStage{name: stage.APIServer, build: func() (stage.Stage, error) { return e.apiserverWithKey(next.PrivateKeyPath, nil) }},
		&promoteKeyStage{dir: dir},
	}
	r.Runner = &runner.Runner{Stages: stages, Needs: map[string][]string{stage.Keys: {stage.APIServer}}, Log: e.Log}
	return nil
}

func (e *Env) rotateRetire(ctx context.Context, dir, currentKID string, o RotateOptions, r *Rotation) error {
	if staged, err := keys.LoadPrivateKey(keys.NextPairIn(dir).PrivateKeyPath); err == nil {
		kid, _ := keys.KeyID(staged.Public())
		return fmt.Errorf("rotate-key retire: the staged key %s is not promoted yet, and retiring now would leave the current key alone: run `irsa rotate-key promote` first", kid)
	}
	st, err := readSettled(ctx, e.Cluster.Client, func(st rotation.State) bool { return len(st.NotSigningWith(currentKID)) == 0 })
	if err != nil {
		return err
	}
	if nodes := st.NotSigningWith(currentKID); len(nodes) > 0 {
		return fmt.Errorf("rotate-key retire: the apiserver on %s does not sign with the current key %s, so retiring the others could retire the key it signs with: run `irsa rotate-key promote` (or `irsa apply`) first", strings.Join(nodes, ", "), currentKID)
	}
	served, err := apiserver.ServedKeys(ctx, e.Cluster.Client)
	if err != nil {
		return err
	}
	var servedKIDs []string
	for _, k := range served.Keys {
		servedKIDs = append(servedKIDs, k.KeyID)
	}
	old := st.PreviousKIDs(currentKID, servedKIDs)
	if len(old) == 0 {
		r.Notes = append(r.Notes, "no previous irsa key is accepted by the apiservers: nothing to retire (a key only the JWKS still publishes, such as a predecessor cluster's, leaves with `irsa sync --retire KID`)")
		r.Runner = &runner.Runner{Needs: map[string][]string{}, Log: e.Log}
		return nil
	}
	rt := rotation.ComputeRetire(st.PromotedAt(), st.Settings)
	now := o.Now()
	when := "reached"
	if now.Before(rt.SafeAt) {
		when = "in " + rt.SafeAt.Sub(now).Round(time.Minute).String()
	}
	r.Notes = append(r.Notes, "previous key(s): "+strings.Join(old, ", "),
		fmt.Sprintf("retire time: %s (%s): %s", rt.SafeAt.UTC().Format(time.RFC3339), when, rt.Reason))
	if now.Before(rt.SafeAt) && !o.Force && !o.Plan {
		return fmt.Errorf("rotate-key retire: not before %s (%s): pods may still hold tokens signed by %s, which would fail in STS with InvalidIdentityToken and at the apiserver; run it then, or with --force to accept that",
			rt.SafeAt.UTC().Format(time.RFC3339), when, strings.Join(old, ", "))
	}
	for _, kid := range old {
		r.Removes = append(r.Removes, "key "+kid+" from the JWKS of "+e.Target.Issuer.URL+" and from every kube-apiserver (one restart each): tokens it signed fail with InvalidIdentityToken")
	}
	current := keys.PairIn(dir).PrivateKeyPath
	stages := []stage.Stage{
		e.IssuerStage(old),
		&lazyStage{name: stage.APIServer, build: func() (stage.Stage, error) {
			return e.apiserverWithKey(current, func(o *apiserver.Options) { o.RetireOtherKeys = true })
		}},
	}
	// The JWKS first: until the apiservers drop the key, the mirror pods still say which key to retire, so a run
	// that stops between the two finds it again.
	r.Runner = &runner.Runner{Stages: stages, Needs: map[string][]string{stage.APIServer: {stage.Issuer}}, Log: e.Log}
	return nil
}

// MirrorSettle is how long a step waits for the mirror pods to show what the previous step wrote: the kubelet
// replaces a static pod's mirror pod some seconds after the apiserver restarted with the new manifest.
var MirrorSettle = 60 * time.Second

// readSettled reads the rotation state until ok says it is what the previous step leaves, or MirrorSettle passes;
// it returns the last state read either way (the caller refuses with the reason).
func readSettled(ctx context.Context, client kubernetes.Interface, ok func(rotation.State) bool) (rotation.State, error) {
	deadline := time.Now().Add(MirrorSettle)
	for {
		st, err := rotation.Read(ctx, client)
		if err != nil || ok(st) || time.Now().After(deadline) {
			return st, err
		}
		select {
		case <-ctx.Done():
			return st, ctx.Err()
		case <-time.After(2 * time.Second):
		}
	}
}

// publishedKIDs are the kids of the JWKS the issuer publishes now (none when there is none).
func (e *Env) publishedKIDs(ctx context.Context) ([]string, error) {
	reader, ok := e.IssuerHost().(issuer.Reader)
	if !ok {
		return nil, fmt.Errorf("the issuer's hosting cannot read back its JWKS")
	}
	body, err := reader.Read(ctx, e.Target.Issuer.JWKSKey)
	if err != nil || body == nil {
		return nil, err
	}
	return documents.PublishedKIDs(body)
}

// apiserverWithKey is the apiserver stage with the private key at path, changed by edit.
func (e *Env) apiserverWithKey(path string, edit func(*apiserver.Options)) (stage.Stage, error) {
	pem, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("signing key: %w", err)
	}
	opts := e.apiserverOptions()
	opts.SigningKey = pem
	if edit != nil {
		edit(&opts)
	}
	return apiserver.New(e.Cluster.Client, e.Cluster.Rest, opts)
}

// stagedKeyStage makes the staged keypair (keys.StageNext).
type stagedKeyStage struct {
	dir string
	key crypto.Signer
}

func (s *stagedKeyStage) Name() string { return stage.Keys }

func (s *stagedKeyStage) Plan(context.Context) ([]stage.Change, error) {
	if _, err := os.Stat(keys.NextPairIn(s.dir).PrivateKeyPath); err == nil {
		return nil, nil
	}
	return []stage.Change{{Action: stage.Create, Kind: "keypair", Name: keys.NextPairIn(s.dir).PrivateKeyPath, Detail: "staged signing key"}}, nil
}

func (s *stagedKeyStage) Apply(context.Context) ([]stage.Change, error) {
	key, created, err := keys.StageNext(s.dir, s.key, "")
	if err != nil || !created {
		return nil, err
	}
	kid, _ := keys.KeyID(key.Public())
	return []stage.Change{{Action: stage.Create, Kind: "keypair", Name: keys.NextPairIn(s.dir).PrivateKeyPath, Detail: "staged signing key " + kid}}, nil
}

func (s *stagedKeyStage) Delete(context.Context) ([]stage.Change, error) { return nil, nil }

// promoteKeyStage makes the staged keypair the key directory's keypair (keys.PromoteNext), once every apiserver signs
// with it.
type promoteKeyStage struct{ dir string }

func (s *promoteKeyStage) Name() string { return stage.Keys }

func (s *promoteKeyStage) Plan(context.Context) ([]stage.Change, error) {
	return []stage.Change{{Action: stage.Update, Kind: "keypair", Name: keys.PairIn(s.dir).PrivateKeyPath, Detail: "becomes the staged key (" + keys.NextPrivateKeyFile + ")"}}, nil
}

func (s *promoteKeyStage) Apply(context.Context) ([]stage.Change, error) {
	moved, err := keys.PromoteNext(s.dir)
	if err != nil || !moved {
		return nil, err
	}
	return s.Plan(context.Background())
}

func (s *promoteKeyStage) Delete(context.Context) ([]stage.Change, error) { return nil, nil }

// lazyStage builds its stage when it runs, because it needs a key an earlier stage of the run makes. Until then
// (when says so) its plan is changes.
type lazyStage struct {
	name    string
	build   func() (stage.Stage, error)
	when    func() bool
	changes []stage.Change
}

func (s *lazyStage) Name() string { return s.name }

func (s *lazyStage) Plan(ctx context.Context) ([]stage.Change, error) {
	if s.when != nil && s.when() {
		return s.changes, nil
	}
	st, err := s.build()
	if err != nil {
		return nil, err
	}
	return st.Plan(ctx)
}

func (s *lazyStage) Apply(ctx context.Context) ([]stage.Change, error) {
	st, err := s.build()
	if err != nil {
		return nil, err
	}
	return st.Apply(ctx)
}

func (s *lazyStage) Delete(context.Context) ([]stage.Change, error) { return nil, nil }

// planFallback is a stage whose plan is changes while when says an earlier stage has not made its input yet.
type planFallback struct {
	stage.Stage
	when    func() bool
	changes []stage.Change
}

func (s *planFallback) Plan(ctx context.Context) ([]stage.Change, error) {
	if s.when() {
		return s.changes, nil
	}
	return s.Stage.Plan(ctx)
}
