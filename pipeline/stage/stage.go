// Package stage defines what every irsa pipeline stage implements and the changes it reports.
package stage

import "context"

// Action is what a change does to one object.
type Action string

const (
	Create Action = "create"
	Update Action = "update"
	Delete Action = "delete"
)

// Change is one object a stage would change (Plan) or did change (Apply, Delete).
type Change struct {
	Action Action `json:"action"`
	// Kind is the object's type, such as "s3-bucket", "iam-role" or "deployment".
	Kind string `json:"kind"`
	// Name identifies the object: a bucket name, an ARN, "namespace/name".
	Name string `json:"name"`
	// Detail says what differs, for updates.
	Detail string `json:"detail,omitempty"`
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

// Order is every stage name, in an order that respects Needs: reports list stages in it, and a runner that runs one
// stage at a time would run them in it (teardown backwards).
var Order = []string{Keys, Issuer, Provider, Webhook, APIServer, Bindings, Verify}

// Needs is the stage graph: for each stage, the stages whose Apply must have succeeded before its own Apply starts.
// Delete runs along the same edges backwards (a stage is removed only after every stage that needs it). Stages with
// no path between them run concurrently. The edges, and why:
//   - issuer needs keys: the JWKS publishes the keypair the keys stage makes.
//   - provider needs issuer: IAM trusts the issuer URL only once its documents are served.
//   - apiserver needs keys, provider and webhook: the apiserver signs with the key from the keys stage, and must not
//     issue tokens for an issuer STS cannot verify yet. It waits for the webhook because its restart makes
//     kube-controller-manager lose its leader lease (18-24 s measured on a kubeadm node), which would stall the
//     webhook Deployment's rollout if it were still in progress.
//   - bindings need provider and webhook: a role's trust policy names the provider, and a ServiceAccount is bound only
//     once new pods of it get the web identity injected.
//   - verify needs apiserver and bindings: it proves the whole chain with a pod.
var Needs = map[string][]string{
	Keys:      nil,
	Issuer:    {Keys},
	Provider:  {Issuer},
	Webhook:   nil,
	APIServer: {Keys, Provider, Webhook},
	Bindings:  {Provider, Webhook},
	Verify:    {APIServer, Bindings},
}
