// Package node is the part of the apiserver stage that runs ON a kubeadm control-plane node, inside the short-lived
// node pod (`irsa node patch-apiserver`, `irsa node restore-apiserver`): it writes the manifest the manifest package
// computes, with an atomic write, a backup of the original and irsa's signing key files (Patch, Restore), asks this
// node's own apiserver whether it came back with the new issuer (LocalCheck) and puts the previous files back when
// it did not. Run is the whole subcommand; it prints one JSON Result line for the stage to read from the pod's log.
//
// Nothing here talks to the cluster through a kubeconfig: the operator-side code that starts the node pods is
// pipeline/apiserver (kubeadm.go, nodepod.go).
package node

import "time"

// The node subcommands the node pod runs (`irsa node patch-apiserver`, `irsa node restore-apiserver`); Run
// implements them.
const (
	PatchCommand   = "patch-apiserver"
	RestoreCommand = "restore-apiserver"
)

// DiscoveryPath is where kube-apiserver serves its OIDC discovery document (ServiceAccountIssuerDiscovery).
const DiscoveryPath = "/.well-known/openid-configuration"

// defaultCheckInterval is how often LocalCheck asks the local apiserver when its Interval is unset.
const defaultCheckInterval = 2 * time.Second

// truncate shortens a response body for an error message.
func truncate(b []byte) string {
	const limit = 200
	if len(b) > limit {
		return string(b[:limit]) + "..."
	}
	return string(b)
}
