package doctor

import (
	"context"
	"fmt"
	"strings"

	"github.com/irsa-anywhere/irsa/pipeline/heal"
)

// podChecks (doctor --pods) looks at the running pods of every ServiceAccount irsa bound: one line per pod that runs
// without the web identity (the webhook failed open when it was created), or one line saying all have it.
func (d *doctor) podChecks(ctx context.Context) {
	const name = "running pods"
	if d.in.Cluster == nil {
		d.fail(name, "no cluster configured", "give --kubeconfig so the pods can be checked")
		return
	}
	findings, checked, err := heal.Find(ctx, d.in.Cluster)
	if err != nil {
		d.fail(name, err.Error(), "check that you may list service accounts, pods and replicasets in every namespace")
		return
	}
	if len(findings) == 0 {
		d.pass(name, fmt.Sprintf("all %d running pod(s) of ServiceAccounts irsa bound have AWS_ROLE_ARN, AWS_WEB_IDENTITY_TOKEN_FILE and the projected token", checked))
		return
	}
	for _, f := range findings {
		d.fail("pod "+f.Pod, fmt.Sprintf("ServiceAccount %s, owner %s: lacks %s", f.ServiceAccount, f.Owner, strings.Join(f.Missing, ", ")), f.Advice())
	}
}
