package doctor

import (
	"context"
	"fmt"
	"strings"

	"github.com/irsa-anywhere/irsa/pipeline/apiserver"
)

// kubeadmConfig checks that `kubeadm upgrade`, which writes the apiserver manifest again from kube-system/
// kubeadm-config, would keep the issuer flags the apiservers run with. No line on clusters without kubeadm-config.
func (d *doctor) kubeadmConfig(ctx context.Context) {
	const name = "kubeadm-config"
	if d.in.Cluster == nil {
		return
	}
	st, err := apiserver.CheckKubeadmConfig(ctx, d.in.Cluster)
	switch {
	case err != nil:
		d.fail(name, err.Error(), "check that you may read kube-system/kubeadm-config and the kube-apiserver mirror pods")
	case !st.Found:
	case !st.Relevant:
		d.add(Check{Name: name, OK: true, Info: true, Message: "irsa has not changed the apiserver flags, so kubeadm-config needs nothing"})
	case st.Nodes == 0:
		d.fail(name, "no kube-apiserver mirror pod to compare kubeadm-config with", "check that the control-plane nodes' kubelets are running")
	case len(st.Mismatches) > 0:
		d.fail(name, "kubeadm upgrade would change the apiserver: "+strings.Join(st.Mismatches, "; "),
			"run `irsa apply --only apiserver`: it sets kubeadm-config's apiServer.extraArgs to the flags the apiservers run with")
	default:
		d.pass(name, fmt.Sprintf("kubeadm-config matches the running apiserver on %d control-plane node(s): kubeadm upgrade keeps the issuers", st.Nodes))
	}
}
