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

// Names of the stages in the order the runner runs them.
const (
	Keys      = "keys"
	Issuer    = "issuer"
	Provider  = "provider"
	APIServer = "apiserver"
	Webhook   = "webhook"
	Bindings  = "bindings"
	Verify    = "verify"
)

// Order is every stage name in run order; teardown runs it backwards.
var Order = []string{Keys, Issuer, Provider, APIServer, Webhook, Bindings, Verify}
