// Package stage defines what every irsa pipeline stage implements and the changes it reports.
package stage

import "context"

// Action is what a change does to one object.
type Action string

const (
	Create Action = "create"
	Update Action = "update"
	Delete Action = "delete"
	// Keep reports an object a teardown left in place on purpose (not irsa's, or holding what irsa did not write);
	// Detail says why. It is not a change.
	Keep Action = "keep"
)

// Changed reports whether changes hold anything but Keep entries.
func Changed(changes []Change) bool {
	for _, c := range changes {
		if c.Action != Keep {
			return true
		}
	}
	return false
}

// Change is one object a stage would change (Plan) or did change (Apply, Delete).
type Change struct {
	Action Action `json:"action"`
	// Kind is the object's type, such as "s3-bucket", "iam-role" or "deployment".
	Kind string `json:"kind"`
	// Name identifies the object: a bucket name, an ARN, "namespace/name".
	Name string `json:"name"`
	// Detail says what differs, for updates.
	Detail string `json:"detail,omitempty"`
	// Disruption says what the change interrupts, when it does (an apiserver restart, machines rolling); plan shows
	// it before apply does it.
	Disruption string `json:"disruption,omitempty"`
}

// Stage is one idempotent step of the pipeline.
//
// Plan lists what Apply would change and writes nothing. Apply finds what exists, diffs it against what is wanted
// and changes only what differs, so a second Apply returns no changes. Delete removes only what the stage owns
// (found by ownership tags or labels); an object that is already gone counts as deleted.
type Stage interface {
	Name() string
	Plan(ctx context.Context) ([]Change, error)
	Apply(ctx context.Context) ([]Change, error)
	Delete(ctx context.Context) ([]Change, error)
}

// Preparer is a stage with work it can do before the stages it needs have run. In apply mode, the runner calls
// Prepare once the stages in PrepareNeeds have succeeded and something in the run has changed, and before the stages
// in PrepareBefore start; Apply then finds the work done. A failed Prepare stops nothing: Apply prepares again.
// If Apply does not run after a Prepare (a stage it needs failed), the runner calls Delete to remove what Prepare made.
type Preparer interface {
	Prepare(ctx context.Context) ([]Change, error)
}

// PrepareNeeds and PrepareBefore place each Preparer's Prepare in the graph. The verify stage binds its
// ServiceAccount before the apiserver restarts: right after a restart the webhook's informer takes 20-30 s to
// reconnect and would not see a ServiceAccount made then (measured on a kubeadm node).
var (
	PrepareNeeds  = map[string][]string{Verify: {Provider, Webhook, Bindings}}
	PrepareBefore = map[string][]string{Verify: {APIServer}}
)

// Names of the stages, in the order reports list them.
const (
	Keys      = "keys"
	Issuer    = "issuer"
	Provider  = "provider"
	APIServer = "apiserver"
	Webhook   = "webhook"
	Bindings  = "bindings"
	Verify    = "verify"
)

// Order is every stage name, in an order that respects Needs: reports list stages in it.
var Order = []string{Keys, Issuer, Provider, Webhook, Bindings, APIServer, Verify}

// Needs is the stage graph for plan and apply: for each stage, the stages whose Apply must have succeeded before its
// own starts. Stages with no path between them run concurrently. The edges, and why:
//   - issuer needs keys: the JWKS publishes the keypair the keys stage makes.
//   - provider needs issuer: IAM trusts the issuer URL only once its documents are served.
//   - bindings need provider and webhook: a role's trust policy names the provider, and a ServiceAccount is bound only
//     once new pods of it get the web identity injected.
//   - apiserver needs keys, provider, webhook and bindings: the apiserver signs with the key from the keys stage, and
//     must not issue tokens for an issuer STS cannot verify yet. Its restart is the one disruptive step (the API is
//     unreachable for 10-20 s, and kube-controller-manager loses its leader lease for 18-24 s, measured on a kubeadm
//     node), so every other stage that talks to the cluster finishes before it.
//   - verify needs apiserver and bindings: it proves the whole chain with a pod.
var Needs = map[string][]string{
	Keys:      nil,
	Issuer:    {Keys},
	Provider:  {Issuer},
	Webhook:   nil,
	Bindings:  {Provider, Webhook},
	APIServer: {Keys, Provider, Webhook, Bindings},
	Verify:    {APIServer, Bindings},
}

// DeleteNeeds is the stage graph for teardown: for each stage, the stages whose Delete must have succeeded before its
// own starts. It is not simply Needs reversed: the cluster objects (verify leftovers, ServiceAccount annotations, the
// webhook) go before the apiserver restart, so their removal is not stalled by it; the apiserver gets its original
// issuer back before the provider and the issuer documents go, so it never issues a token nobody can verify.
var DeleteNeeds = map[string][]string{
	Verify:    nil,
	Bindings:  {Verify},
	Webhook:   nil,
	APIServer: {Verify, Bindings, Webhook},
	Provider:  {APIServer, Bindings},
	Issuer:    {Provider, APIServer},
	Keys:      {Issuer},
}
